//! `coworkctl update apply URL`: fetch a bundle into the update state
//! directory, where the writer can read it. Trust comes from the bundle's
//! signature, not from the transport; still, only https:// is accepted (and
//! http:// on loopback, for a local mirror or a test), with the system's roots
//! plus an optional `[update] ca_file` for a LAN mirror with its own CA.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The URL as it may be logged and audited: scheme, host, port and path; no
/// user info and no query (either may carry a token).
pub fn redacted(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        url.path()
    )
}

/// Whether `arg` names a URL rather than a file.
pub fn is_url(arg: &str) -> bool {
    arg.starts_with("https://") || arg.starts_with("http://")
}

/// Parses and checks the URL: https://, or http:// to a loopback address.
pub fn check_url(arg: &str) -> Result<reqwest::Url, String> {
    crate::net::parse_url(arg, "https", "http")
}

/// GET `url` with the system's roots plus `extra_root_pem`: the response, once
/// its status says success.
async fn get(
    url: &reqwest::Url,
    extra_root_pem: Option<&[u8]>,
    read_timeout: Option<Duration>,
) -> Result<reqwest::Response, String> {
    let mut builder = crate::net::client_builder(extra_root_pem)
        .map_err(|e| format!("[update] ca_file: {e}"))?
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("coworkd/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = read_timeout {
        builder = builder.read_timeout(t);
    }
    let client = builder
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let shown = redacted(url);
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("fetching {shown}: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!(
            "fetching {shown}: the server answered {}",
            resp.status()
        ));
    }
    Ok(resp)
}

/// Fetches a small document (the update feed) into memory: at most
/// `max_bytes`, within `deadline` overall, so neither an endless answer nor
/// a trickle holds the check.
pub async fn fetch_small(
    url: &reqwest::Url,
    extra_root_pem: Option<&[u8]>,
    max_bytes: u64,
    deadline: Duration,
) -> Result<Vec<u8>, String> {
    let shown = redacted(url);
    let fetch = async {
        let mut resp = get(url, extra_root_pem, None).await?;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("fetching {shown}: {}", e.without_url()))?
        {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(format!("{shown} is larger than {max_bytes} bytes: cut off"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(deadline, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "fetching {shown}: no complete answer within {} s",
                deadline.as_secs()
            ))
        })
}

/// Downloads `url` into a new file in `dir`, at most `max_bytes` (what
/// sets that bound is `cap`, for the message: `[update] max_bundle_bytes`, or
/// the update feed's size of the bundle). The caller removes the file when
/// done with it; a failed download leaves nothing.
pub async fn download(
    url: &reqwest::Url,
    dir: &Path,
    extra_root_pem: Option<&[u8]>,
    max_bytes: u64,
    cap: &str,
) -> Result<PathBuf, String> {
    let shown = redacted(url);
    let mut resp = get(url, extra_root_pem, Some(Duration::from_secs(60))).await?;
    if let Some(len) = resp.content_length()
        && len > max_bytes
    {
        return Err(format!(
            "{shown} is {len} bytes, more than {cap} ({max_bytes})"
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(format!("download-{}.bundle", std::process::id()));
    let result = async {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let mut written: u64 = 0;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("fetching {shown}: {}", e.without_url()))?
        {
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(format!(
                    "{shown} is more than {cap} ({max_bytes} bytes): cut off"
                ));
            }
            file.write_all(&chunk)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        file.sync_all()
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(written)
    }
    .await;
    match result {
        Ok(bytes) => {
            tracing::info!(url = %shown, bytes, "update bundle downloaded");
            Ok(path)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(check_url("https://updates.example.com/v7.bundle").is_ok());
        assert!(check_url("http://127.0.0.1:8080/v7.bundle").is_ok());
        assert!(check_url("http://[::1]/v7.bundle").is_ok());
        assert!(check_url("http://updates.example.com/v7.bundle").is_err());
        assert!(check_url("ftp://updates.example.com/v7.bundle").is_err());
        assert!(check_url("https://").is_err());
        assert!(check_url("not a url").is_err());
        let url = check_url("https://user:secret@example.com:8443/a/b.bundle?token=xyz").unwrap();
        let shown = redacted(&url);
        assert_eq!(shown, "https://example.com:8443/a/b.bundle");
        assert!(!shown.contains("secret") && !shown.contains("xyz"));
        assert!(is_url("https://x") && !is_url("/var/lib/x.bundle"));
    }
}
