//! SSH to the owner's Mac, in process (`russh`, ring crypto): the private
//! key comes from the vault into memory and never touches a disk, and no
//! `ssh` binary is run from the gateway's sandbox. The Mac is reached on the
//! local network only (the name resolved, its public addresses dropped), its
//! host key must be the pinned one (another is refused before any
//! authentication, with the fingerprint offered named in the problem), the
//! appliance authenticates with its own ed25519 key only, and runs `imsg
//! rpc` (which the Mac's `authorized_keys` should force with `command=`).
//!
//! The appliance's key is generated here ([`generate_key`], called by the
//! settings page): the private half in OpenSSH form goes to the vault, the
//! public half (`ssh-ed25519 AAAA… cowork@appliance`) to the settings, for
//! the owner to copy onto the Mac.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use russh::client;
use russh::keys::{
    HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate, ssh_key,
};
use zeroize::Zeroizing;

use super::parse::CHANNEL;
use crate::gateway::error::GatewayError;

/// The comment of the appliance's public key, as `authorized_keys` shows it.
pub const KEY_COMMENT: &str = "cowork@appliance";
/// Resolving, connecting, the key exchange and the authentication, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A keepalive after this much silence; the connection is dead after
/// [`KEEPALIVE_MAX`] unanswered ones (a Mac asleep, a cable pulled).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(30);
const KEEPALIVE_MAX: usize = 3;

fn ssh_err(operation: &'static str, reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.into(),
    }
}

/// A new ed25519 key for the channel: the private key in OpenSSH form (for
/// the vault) and the public key's `authorized_keys` line.
pub fn generate_key() -> Result<(Zeroizing<String>, String), String> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let mut key = PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&seed));
    key.set_comment(KEY_COMMENT);
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| format!("encoding the private key: {e}"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| format!("encoding the public key: {e}"))?;
    Ok((private, public))
}

/// The channel's private key from the vault: an unencrypted ed25519 key in
/// OpenSSH form.
pub fn parse_private_key(text: &str) -> Result<PrivateKey, String> {
    let key = PrivateKey::from_openssh(text.trim())
        .map_err(|_| "the vault's key is not an OpenSSH private key".to_string())?;
    if key.is_encrypted() || key.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err("the vault's key must be an unencrypted ed25519 key".into());
    }
    Ok(key)
}

/// A pinned host key: `ssh-ed25519 BASE64 [comment]`, as the Mac's
/// `/etc/ssh/ssh_host_ed25519_key.pub` holds it.
pub fn parse_host_key(text: &str) -> Result<PublicKey, String> {
    let key = PublicKey::from_openssh(text.trim())
        .map_err(|_| "not an OpenSSH public key (ssh-ed25519 AAAA…)".to_string())?;
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err("the Mac's ed25519 host key is required (ssh-ed25519 AAAA…)".into());
    }
    Ok(key)
}

/// Whether `path` may name the `imsg` command: a word of `A-Z a-z 0-9 / . _
/// -`, so it reaches the Mac's shell as one word and nothing else.
pub fn is_command_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && !path.starts_with('-')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
}

/// Where and as whom the appliance logs in.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub host_key: PublicKey,
}

/// The client side of one connection: the pinned host key, and what another
/// key offered was (its fingerprint), for the problem.
struct Pinned {
    expected: PublicKey,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (matches, fingerprint) = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => (
                key.key_data() == self.expected.key_data(),
                key.fingerprint(HashAlg::Sha256).to_string(),
            ),
            PublicKeyOrCertificate::Certificate(_) => (false, "a certificate".to_string()),
        };
        if !matches {
            let mut slot = self.offered.lock().unwrap_or_else(|p| p.into_inner());
            *slot = Some(fingerprint);
        }
        Ok(matches)
    }
}

/// An open `imsg rpc` over SSH: its stdin and stdout as one stream, and the
/// session it runs in (dropping it closes the connection).
pub struct Opened {
    pub stream: russh::ChannelStream<client::Msg>,
    _session: client::Handle<Pinned>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened(imsg rpc over SSH)")
    }
}

/// The target's local-network addresses.
async fn lan_addresses(target: &SshTarget) -> Result<Vec<std::net::SocketAddr>, GatewayError> {
    let host = target.host.as_str();
    let found = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::lookup_host((host, target.port)),
    )
    .await
    .map_err(|_| ssh_err("connect", format!("{host}: resolving timed out")))?
    .map_err(|e| ssh_err("connect", format!("{host}: {e}")))?;
    let lan: Vec<_> = found.filter(|a| crate::net::is_lan_ip(a.ip())).collect();
    if lan.is_empty() {
        return Err(ssh_err(
            "connect",
            format!("{host} resolves to no local-network address"),
        ));
    }
    Ok(lan)
}

/// Connects to the Mac, checks its host key, logs in with `key` and runs
/// `command`.
pub async fn open(
    target: &SshTarget,
    key: &Arc<PrivateKey>,
    command: &str,
) -> Result<Opened, GatewayError> {
    let host = target.host.as_str();
    let mut last = None;
    let mut tcp = None;
    for addr in lan_addresses(target).await? {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = Some(format!("{addr}: {e}")),
            Err(_) => last = Some(format!("{addr}: timed out")),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        ssh_err(
            "connect",
            last.unwrap_or_else(|| format!("{host}: no address")),
        )
    })?;
    let config = Arc::new(client::Config {
        keepalive_interval: Some(KEEPALIVE_EVERY),
        keepalive_max: KEEPALIVE_MAX,
        ..client::Config::default()
    });
    let offered = Arc::new(Mutex::new(None));
    let handler = Pinned {
        expected: target.host_key.clone(),
        offered: Arc::clone(&offered),
    };
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        client::connect_stream(config, tcp, handler),
    )
    .await;
    let mismatch = || offered.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut session = match connected {
        Err(_) => {
            return Err(ssh_err(
                "connect",
                format!("{host}: the SSH handshake timed out"),
            ));
        }
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            if let Some(fingerprint) = mismatch() {
                return Err(ssh_err(
                    "host key",
                    format!(
                        "{host} offered the host key {fingerprint}, not the pinned host_key: refused \
                         (if the Mac was reinstalled, pin its new key after checking it on the Mac)"
                    ),
                ));
            }
            return Err(ssh_err("connect", format!("{host}: {e}")));
        }
    };
    let auth = tokio::time::timeout(
        CONNECT_TIMEOUT,
        session.authenticate_publickey(
            target.user.clone(),
            PrivateKeyWithHashAlg::new(Arc::clone(key), None),
        ),
    )
    .await
    .map_err(|_| ssh_err("login", format!("{host}: the login timed out")))?
    .map_err(|e| ssh_err("login", format!("{host}: {e}")))?;
    if !auth.success() {
        return Err(ssh_err(
            "login",
            format!(
                "{host} refused the appliance's key for the user {:?}: add the public key shown on the settings page to that user's ~/.ssh/authorized_keys",
                target.user
            ),
        ));
    }
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let channel = session.channel_open_session().await?;
        channel.exec(true, command).await?;
        Ok::<_, russh::Error>(channel)
    })
    .await
    .map_err(|_| ssh_err("run imsg", format!("{host}: timed out")))?
    .map_err(|e| ssh_err("run imsg", format!("{host}: {e}")))?;
    Ok(Opened {
        stream: channel.into_stream(),
        _session: session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_its_public_line_is_openssh() {
        let (private, public) = generate_key().unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(public.starts_with("ssh-ed25519 AAAA") && public.ends_with(" cowork@appliance"));
        let key = parse_private_key(&private).unwrap();
        assert_eq!(key.public_key().to_openssh().unwrap(), public);
        assert_eq!(
            parse_host_key(&public).unwrap().key_data(),
            key.public_key().key_data()
        );
        assert_ne!(generate_key().unwrap().1, public, "keys are random");
    }

    #[test]
    fn hostile_keys_and_paths_are_refused() {
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 !!!",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
        ] {
            assert!(parse_host_key(bad).is_err(), "{bad}");
        }
        assert!(parse_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n").is_err());
        assert!(is_command_path("imsg") && is_command_path("/opt/homebrew/bin/imsg"));
        for bad in [
            "",
            "imsg; rm -rf ~",
            "a b",
            "$(x)",
            "-oProxyCommand",
            "i\nmsg",
        ] {
            assert!(!is_command_path(bad), "{bad:?}");
        }
    }
}
