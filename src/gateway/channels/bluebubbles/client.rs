//! The BlueBubbles REST client: `POST {server}/api/v1/message/text` with
//! the chat guid, a fresh `tempGuid` and the text, in pieces of
//! [`BLUEBUBBLES_MAX_CHARS`], sent through AppleScript (works without the
//! server's Private API helper).
//!
//! BlueBubbles takes its password in the query string (`?password=…`): it
//! is added to each request only, held [`Redacted`], and never part of a
//! message: errors are reqwest's without the URL and the server's own words
//! with the password cut out. The server must be on the local network
//! ([`crate::net::parse_lan_url`], checked again here, and a name it
//! resolves to a local-network address only: [`crate::net::LanOnlyResolver`]),
//! so plain http is allowed to it; https (with `ca_file` for its
//! certificate) is preferred.

use rand::RngCore;

use super::parse::CHANNEL;
use crate::gateway::channels::Redacted;
use crate::gateway::chunk::chunk_text;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::{HttpConfig, build_client, http_client_builder, send_rate_limited};

/// The longest piece sent in one message, in characters. iMessage documents
/// no limit, but very long bubbles are slow to render and AppleScript sends
/// the text as one command argument: 4,000 keeps each piece a readable
/// screenful, like the other platforms' 2,000 to 5,000.
pub const BLUEBUBBLES_MAX_CHARS: usize = 4000;

/// Most messages one poll asks for (more wait for the next poll).
pub const QUERY_LIMIT: usize = 100;

/// How a message is handed to Messages on the Mac.
const SEND_METHOD: &str = "apple-script";

/// Talks to the owner's BlueBubbles server with its password.
#[derive(Debug)]
pub struct BlueBubblesClient {
    http: reqwest::Client,
    /// `{server}/api/v1/message/text`, without the password.
    send_url: String,
    /// `{server}/api/v1/message/query`, without the password.
    query_url: String,
    password: Redacted,
}

impl BlueBubblesClient {
    /// `cfg.base_url`: the server (`http://192.168.1.20:1234`), which must be
    /// on the local network; `password`: the server's password.
    pub fn new(cfg: &HttpConfig, password: &Redacted) -> Result<Self, GatewayError> {
        let base = cfg.base_url.trim_end_matches('/');
        crate::net::parse_lan_url(base, "https", "http").map_err(|e| GatewayError::HttpClient {
            channel: CHANNEL,
            reason: format!("server URL: {e}"),
        })?;
        if password.expose().is_empty() {
            return Err(GatewayError::HttpClient {
                channel: CHANNEL,
                reason: "the server password is empty".into(),
            });
        }
        Ok(BlueBubblesClient {
            http: build_client(
                CHANNEL,
                http_client_builder(CHANNEL, cfg.extra_root_pem.as_deref(), cfg.timeout)?
                    .dns_resolver(std::sync::Arc::new(crate::net::LanOnlyResolver)),
            )?,
            send_url: format!("{base}/api/v1/message/text"),
            query_url: format!("{base}/api/v1/message/query"),
            password: password.clone(),
        })
    }

    /// Sends `text` to the chat `chat_guid`, in pieces, in order.
    pub async fn send_text(&self, chat_guid: &str, text: &str) -> Result<(), GatewayError> {
        for piece in chunk_text(text, BLUEBUBBLES_MAX_CHARS) {
            let body = serde_json::json!({
                "chatGuid": chat_guid,
                "tempGuid": temp_guid(),
                "message": piece,
                "method": SEND_METHOD,
            });
            let (status, answer) = send_rate_limited(CHANNEL, "send message", || {
                self.http
                    .post(&self.send_url)
                    .query(&[("password", self.password.expose())])
                    .json(&body)
            })
            .await?;
            if !status.is_success() {
                return Err(GatewayError::ChannelApi {
                    channel: CHANNEL,
                    operation: "send message",
                    reason: format!("HTTP {status}: {}", self.said(&answer)),
                });
            }
        }
        Ok(())
    }

    /// The messages created at or after `after_ms` (milliseconds since the
    /// epoch), oldest first, at most [`QUERY_LIMIT`], with their chats and
    /// handles: each as the server gives it, for the parser.
    pub async fn messages_after(
        &self,
        after_ms: i64,
    ) -> Result<Vec<serde_json::Value>, GatewayError> {
        let body = serde_json::json!({
            "limit": QUERY_LIMIT, "offset": 0, "sort": "ASC", "after": after_ms,
            "with": ["chat", "handle", "attachment"],
        });
        let op = "query messages";
        let (status, answer) = send_rate_limited(CHANNEL, op, || {
            self.http
                .post(&self.query_url)
                .query(&[("password", self.password.expose())])
                .json(&body)
        })
        .await?;
        let err = |reason: String| GatewayError::ChannelApi {
            channel: CHANNEL,
            operation: op,
            reason,
        };
        if !status.is_success() {
            return Err(err(format!("HTTP {status}: {}", self.said(&answer))));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<serde_json::Value>,
        }
        let a: Answer = serde_json::from_slice(&answer)
            .map_err(|e| err(format!("the server's answer: {e}")))?;
        if a.data.len() > QUERY_LIMIT {
            return Err(err("more messages than asked for".into()));
        }
        Ok(a.data)
    }

    /// The server's reason (`{"message": …, "error": {"message": …}}`),
    /// shortened, the password never in it.
    fn said(&self, answer: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
        let text = v
            .get("error")
            .and_then(|e| e.get("message"))
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        let text = text.replace(self.password.expose(), "[password]");
        text.chars().take(128).collect()
    }
}

/// A unique id the server tracks the send by (`cowork-` and 32 hex digits).
fn temp_guid() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("cowork-{}", hex::encode(bytes))
}

impl Outbound for BlueBubblesClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.send_text(chat, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_network_server_with_a_password() {
        let pw = Redacted::from("pw".to_string());
        for ok in [
            "http://192.168.1.20:1234",
            "https://mac.local/",
            "http://127.0.0.1:9",
        ] {
            assert!(
                BlueBubblesClient::new(&HttpConfig::new(ok), &pw).is_ok(),
                "{ok}"
            );
        }
        let e = BlueBubblesClient::new(&HttpConfig::new("https://bb.example.com"), &pw)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a local-network address"), "{e}");
        let empty = Redacted::from(String::new());
        assert!(BlueBubblesClient::new(&HttpConfig::new("http://10.0.0.2"), &empty).is_err());
        let c = BlueBubblesClient::new(&HttpConfig::new("http://10.0.0.2"), &pw).unwrap();
        assert!(!format!("{c:?}").contains("pw\""));
    }

    #[test]
    fn the_servers_words_never_carry_the_password() {
        let c = BlueBubblesClient::new(
            &HttpConfig::new("http://10.0.0.2"),
            &Redacted::from("hunter2-long-password".to_string()),
        )
        .unwrap();
        let said = c.said(br#"{"status": 401, "message": "Unauthorized", "error": {"type": "x", "message": "bad password hunter2-long-password"}}"#);
        assert_eq!(said, "bad password [password]");
        assert_eq!(
            c.said(br#"{"message": "Chat not found"}"#),
            "Chat not found"
        );
        assert_eq!(c.said(b"<html>"), "");
        let (a, b) = (temp_guid(), temp_guid());
        assert!(a != b && a.len() == 39);
    }
}
