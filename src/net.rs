//! Rules for connections that leave the process: the gateway's platform APIs,
//! the agent's LLM providers, image downloads. One place decides which URLs
//! may be reached and how an HTTP client is built, so no caller drifts.
//!
//! The rule: encrypted (`https`, `wss`) to anywhere; plain (`http`, `ws`)
//! only to this box's loopback interface, for local fakes in tests and a
//! model server the owner runs on the same machine. It is decided on the
//! parsed host, never on a string prefix: `http://localhost.example.com`
//! and `http://127.0.0.1.nip.io` are public names.

use std::net::IpAddr;

use reqwest::Url;

/// Is `url`'s host the loopback interface (`localhost`, 127.0.0.0/8, `::1`)?
pub fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        // The URL parser lowercases host names of http(s)/ws(s) URLs.
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Checks `url` against the rule: scheme `secure` (e.g. "https") to any
/// host, scheme `plain` (e.g. "http") only to loopback, nothing else.
pub fn check_url(url: &Url, secure: &str, plain: &str) -> Result<(), String> {
    let scheme = url.scheme();
    if scheme == secure || (scheme == plain && is_loopback(url)) {
        Ok(())
    } else if scheme == plain {
        Err(format!(
            "{plain}:// is allowed only to a loopback address; use {secure}://"
        ))
    } else {
        Err(format!("{scheme}:// is not supported; use {secure}://"))
    }
}

/// Parses `text` as a URL and checks it with [`check_url`].
pub fn parse_url(text: &str, secure: &str, plain: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
    check_url(&url, secure, plain)?;
    Ok(url)
}

/// Is `url`'s host on this box or the owner's local network: loopback, an
/// RFC 1918 IPv4 address (10/8, 172.16/12, 192.168/16), an IPv6 unique local
/// (fc00::/7) or link-local (fe80::/10) address, or a multicast-DNS name
/// (`NAME.local`)? Decided on the parsed host: IPv4 link-local (169.254/16,
/// where cloud metadata services answer), carrier-grade NAT (100.64/10),
/// IPv4-mapped IPv6 and every other name are not.
pub fn is_lan(url: &Url) -> bool {
    if is_loopback(url) {
        return true;
    }
    // The URL parser lowercases host names and normalises IP forms.
    let Some(host) = url.host_str() else {
        return false;
    };
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => is_lan_ip(ip),
        Err(_) => host
            .strip_suffix(".local")
            .is_some_and(|label| !label.is_empty() && !label.ends_with('.')),
    }
}

/// Is `ip` on this box or the local network ([`is_lan`]'s addresses)?
pub fn is_lan_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private(),
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A resolver for a client that may reach the local network only: a name
/// (`NAME.local`, `localhost`) is looked up as usual and its answer kept
/// only where it is a local-network address ([`is_lan_ip`]), so a name that
/// passed [`parse_lan_url`] cannot lead to a public address when it is
/// resolved (a spoofed mDNS answer, a hosts file entry).
#[derive(Debug, Default)]
pub struct LanOnlyResolver;

impl reqwest::dns::Resolve for LanOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs = lan_addrs(&host, found)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The local-network addresses among `found` for `host`; an error naming
/// `host` when there are none.
fn lan_addrs(
    host: &str,
    found: impl Iterator<Item = std::net::SocketAddr>,
) -> Result<Vec<std::net::SocketAddr>, std::io::Error> {
    let lan: Vec<_> = found.filter(|a| is_lan_ip(a.ip())).collect();
    if lan.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{host} resolves to no local-network address"),
        ));
    }
    Ok(lan)
}

/// Parses `text` as the URL of a server on the owner's local network
/// ([`is_lan`]): `secure` (e.g. "https") preferred, `plain` (e.g. "http")
/// allowed there too (such servers rarely have a public certificate); a
/// public host is refused whatever the scheme.
pub fn parse_lan_url(text: &str, secure: &str, plain: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
    let scheme = url.scheme();
    if scheme != secure && scheme != plain {
        return Err(format!("{scheme}:// is not supported; use {secure}://"));
    }
    if !is_lan(&url) {
        return Err(format!(
            "{} is not a local-network address: only loopback, 10/8, 172.16/12, \
             192.168/16, fc00::/7, fe80::/10 or a NAME.local host",
            url.host_str().unwrap_or("(no host)")
        ));
    }
    Ok(url)
}

/// A reqwest client builder for a remote service: rustls with the built-in
/// web roots plus every certificate in `extra_root_pem` (a configured
/// `ca_file`, a test CA), and no redirects (one could carry a request and its
/// credentials to another host). Callers add their timeouts and user agent.
pub fn client_builder(extra_root_pem: Option<&[u8]>) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra_root_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("extra root certificates: {e}"))?;
        if certs.is_empty() {
            return Err("extra root certificates: no certificate in the PEM text".into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(text: &str) -> Result<Url, String> {
        parse_url(text, "https", "http")
    }

    #[test]
    fn encrypted_to_anywhere_plain_to_loopback_only() {
        for ok in [
            "https://api.anthropic.com/v1/messages",
            "https://10.0.0.5:8443/",
            "http://localhost:11434/v1",
            "HTTP://LOCALHOST/",
            "http://127.0.0.1:8080/",
            "http://127.255.255.254/",
            "http://[::1]:9000/x",
            // WHATWG IPv4 forms the parser normalises to 127.0.0.1.
            "http://0x7f.1/",
            "http://2130706433/",
        ] {
            assert!(http(ok).is_ok(), "{ok} refused: {:?}", http(ok));
        }
    }

    #[test]
    fn hostile_hosts_that_only_look_like_loopback_are_refused() {
        for bad in [
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
            "http://localhost./",
            "http://127.0.0.1@evil.example/",
            "http://evil.example#@127.0.0.1/",
            "http://evil.example?@127.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://10.0.0.5/",
            "http://[fe80::1]/",
        ] {
            let e = http(bad).expect_err(bad);
            assert!(e.contains("only to a loopback address"), "{bad}: {e}");
        }
    }

    #[test]
    fn other_schemes_and_garbage_are_refused_with_a_reason() {
        assert!(
            http("ftp://127.0.0.1/x")
                .unwrap_err()
                .contains("ftp:// is not supported")
        );
        assert!(
            http("file:///etc/passwd")
                .unwrap_err()
                .contains("file:// is not supported")
        );
        assert!(
            http("ws://127.0.0.1/")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            http("not a url")
                .unwrap_err()
                .starts_with("not a valid URL")
        );
        assert!(http("").unwrap_err().starts_with("not a valid URL"));
        assert!(http(&format!("http://{}/", "a".repeat(70_000))).is_err());
    }

    #[test]
    fn websocket_schemes_follow_the_same_rule() {
        let ws = |t: &str| parse_url(t, "wss", "ws");
        assert!(ws("wss://gateway.discord.gg/?v=10").is_ok());
        assert!(ws("ws://127.0.0.1:9001/").is_ok());
        assert!(ws("ws://localhost.example.com/").is_err());
        assert!(ws("https://slack.com/").is_err());
    }

    #[test]
    fn local_network_servers_only() {
        let lan = |t: &str| parse_lan_url(t, "https", "http");
        for ok in [
            "http://127.0.0.1:1234",
            "http://localhost:1234/",
            "https://10.0.0.5:1234",
            "http://172.16.0.1/",
            "http://172.31.255.254/",
            "http://192.168.1.20:1234",
            "http://[fd12:3456::1]:1234/",
            "http://[fe80::1]/",
            "https://macmini.local:1234",
            "http://MacMini.LOCAL/",
        ] {
            assert!(lan(ok).is_ok(), "{ok} refused: {:?}", lan(ok));
        }
        for bad in [
            "https://bluebubbles.example.com",
            "http://8.8.8.8/",
            "http://172.32.0.1/",
            "http://169.254.169.254/",
            "http://100.64.0.1/",
            "http://[2001:db8::1]/",
            "http://[::ffff:192.168.1.2]/",
            "http://0.0.0.0/",
            "http://.local/",
            "http://local/",
            "http://mac.local.example.com/",
            "http://10.0.0.5.nip.io/",
            "http://evil.example#@192.168.1.2/",
        ] {
            let e = lan(bad).expect_err(bad);
            assert!(e.contains("not a local-network address"), "{bad}: {e}");
        }
        assert!(
            lan("ftp://192.168.1.2/")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(lan("not a url").is_err());
    }

    #[test]
    fn a_local_name_resolving_off_the_network_is_refused() {
        let addr = |t: &str| t.parse::<std::net::SocketAddr>().unwrap();
        let found = [
            addr("203.0.113.7:0"),
            addr("192.168.1.20:0"),
            addr("[::1]:0"),
        ];
        assert_eq!(
            lan_addrs("mac.local", found.into_iter()).unwrap(),
            [addr("192.168.1.20:0"), addr("[::1]:0")]
        );
        let e = lan_addrs(
            "mac.local",
            [addr("203.0.113.7:0"), addr("169.254.169.254:0")].into_iter(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mac.local resolves to no local-network address"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_resolver_answers_localhost_with_loopback_only() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<_> = LanOnlyResolver.resolve(name).await.unwrap().collect();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
            "{addrs:?}"
        );
    }

    #[test]
    fn extra_roots_must_hold_a_certificate() {
        assert!(client_builder(None).is_ok());
        assert!(client_builder(Some(b"")).is_err());
        assert!(client_builder(Some(b"just text, no PEM block")).is_err());
        let garbage =
            b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        assert!(client_builder(Some(garbage)).is_err());
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let two = format!("{}{}", ca.cert.pem(), ca.cert.pem());
        assert!(client_builder(Some(two.as_bytes())).is_ok());
    }
}
