//! The Matrix Client-Server API client (`{homeserver}/_matrix/client/v3`),
//! the access token only ever in the `Authorization: Bearer` header (never
//! in a URL, which proxies and server logs keep): `account/whoami` (the
//! homeserver check at start), `sync` (the long poll, its answer capped),
//! room membership and encryption state, the bot's account data, joins, and
//! the [`Outbound`]: `PUT rooms/{room}/send/m.room.message/{txn}` in pieces
//! of [`MATRIX_MAX_CHARS`], each under a transaction id of its own that
//! its retries reuse (the homeserver then stores a retried piece once). A
//! 429 `M_LIMIT_EXCEEDED` is waited out as its `retry_after_ms` asks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::parse::{CHANNEL, ErrorBody, MAX_SYNC_BYTES, WhoAmI, is_room_id, is_user_id};
use crate::gateway::channels::Redacted;
use crate::gateway::chunk::chunk_text;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::{ApiClient, HttpConfig, api_err, read_capped, send_rate_limited};

/// Longest piece of one answer, in characters. A Matrix event is at most
/// 65,536 bytes as JSON with its envelope (signatures, hashes, ids: about
/// 1 KiB). 8,000 characters stay under it even in the worst case (4 bytes
/// a character in UTF-8, or 6 for a control character JSON escapes as
/// `\u00XX`: 48,000 bytes), so no piece is refused as too large.
pub const MATRIX_MAX_CHARS: usize = 8_000;
/// How long the homeserver holds a sync open when nothing happens.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// A request other than the long poll gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The bot account's account-data type where the sync position is kept, so
/// a restarted appliance goes on from where it stopped.
pub const SYNC_POSITION_TYPE: &str = "org.cowork.appliance.sync";

/// The `/sync` filter: only what the appliance reads, so answers stay small
/// (members lazily loaded: the room's member count is asked when needed).
const FILTER: &str = r#"{"presence":{"types":[]},"account_data":{"types":["m.direct"]},"room":{"timeline":{"types":["m.room.message","m.room.encrypted","m.room.member","m.room.encryption"],"limit":50},"state":{"types":["m.room.member","m.room.encryption"],"lazy_load_members":true},"ephemeral":{"types":[]},"account_data":{"types":[]}}}"#;

/// Talks to a homeserver as the bot account.
#[derive(Debug)]
pub struct MatrixClient {
    api: ApiClient,
    /// The configured bot account (`bot_user`), which `whoami` must confirm.
    me: String,
    /// Makes each transaction id unique within this process; with the
    /// start time, unique across restarts.
    txn: AtomicU64,
    started: u128,
}

fn api_error(operation: &'static str, reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.into(),
    }
}

/// A refused answer, said by its status and `errcode` (never its text,
/// which may quote the request).
fn refused(operation: &'static str, status: reqwest::StatusCode, body: &[u8]) -> GatewayError {
    let code = ErrorBody::of(body).errcode;
    let why = match (status.as_u16(), code.as_str()) {
        (401, "M_UNKNOWN_TOKEN") => {
            " M_UNKNOWN_TOKEN: token revoked or rotated: set a new one".to_string()
        }
        (401, _) => format!(" {code}: the token was refused: set a new one"),
        (403, _) => format!(" {code}: the bot account may not do this"),
        (_, "") => String::new(),
        (_, c) => format!(" {c}"),
    };
    api_error(operation, format!("HTTP {status}{why}"))
}

/// Whether `e` is the homeserver refusing a request about one room for
/// good (403 not a member, 404 no such room, 400): the item is skipped. A
/// refused token (401), a rate limit given up (429), a server error or an
/// unreachable server is not: the batch is tried again, so nothing is lost
/// to a passing failure, and the token's problem is shown.
pub fn refused_for_good(e: &GatewayError) -> bool {
    matches!(e, GatewayError::ChannelApi { reason, .. }
        if ["HTTP 400", "HTTP 403", "HTTP 404"].iter().any(|p| reason.starts_with(p)))
}

/// One path segment, percent-encoded (room and user ids hold `!`, `:`, `@`,
/// and a hostile one could hold `/` or `?`).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl MatrixClient {
    /// `cfg`: its base is the homeserver's URL; `me` the bot's user id.
    pub fn new(cfg: &HttpConfig, token: &Redacted, me: &str) -> Result<Self, GatewayError> {
        if !is_user_id(me) {
            return Err(api_error("settings", "bot_user is not a Matrix user id"));
        }
        let mut cfg = cfg.clone();
        cfg.base_url = format!("{}/_matrix/client/v3", cfg.base());
        // The long poll's own timeout plus room for a slow answer.
        cfg.timeout = SYNC_TIMEOUT + REQUEST_TIMEOUT;
        Ok(MatrixClient {
            api: ApiClient::new(CHANNEL, &cfg, "Bearer", token)?,
            me: me.to_string(),
            txn: AtomicU64::new(0),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        })
    }

    /// The bot account.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Sends a request made by `build` (429s waited out) and returns the
    /// body of a successful answer.
    async fn call(
        &self,
        op: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, GatewayError> {
        let (status, body) =
            send_rate_limited(CHANNEL, op, || build().timeout(REQUEST_TIMEOUT)).await?;
        if !status.is_success() {
            return Err(refused(op, status, &body));
        }
        Ok(body)
    }

    /// Verifies the homeserver and the token: `whoami` must name the
    /// configured bot account (a token of another account, or a server
    /// that answers for another, is refused before anything is read).
    pub async fn verify(&self) -> Result<(), GatewayError> {
        const OP: &str = "account/whoami";
        let body = self.call(OP, || self.api.get("account/whoami")).await?;
        let who: WhoAmI = serde_json::from_slice(&body)
            .map_err(|e| api_error(OP, format!("unreadable answer: {e}")))?;
        if who.user_id != self.me {
            let shown = if is_user_id(&who.user_id) {
                who.user_id.as_str()
            } else {
                "(not a user id)"
            };
            return Err(api_error(
                OP,
                format!(
                    "the token belongs to {shown}, not to bot_user {}: check the homeserver and the token",
                    self.me
                ),
            ));
        }
        Ok(())
    }

    /// One long poll from `since` (none: the first sync, which returns at
    /// once), holding at most [`SYNC_TIMEOUT`]; the answer's body, capped
    /// at [`MAX_SYNC_BYTES`].
    pub async fn sync(&self, since: Option<&str>) -> Result<Vec<u8>, GatewayError> {
        const OP: &str = "sync";
        let timeout = SYNC_TIMEOUT.as_millis().to_string();
        let mut query: Vec<(&str, &str)> = vec![("filter", FILTER), ("timeout", &timeout)];
        if let Some(s) = since {
            query.push(("since", s));
        }
        let resp = self
            .api
            .get("sync")
            .query(&query)
            .send()
            .await
            .map_err(api_err(CHANNEL, OP))?;
        let status = resp.status();
        if let Some(len) = resp.content_length()
            && len > MAX_SYNC_BYTES as u64
        {
            return Err(api_error(
                OP,
                format!("answer of {len} bytes; at most {MAX_SYNC_BYTES}"),
            ));
        }
        let body = read_capped(CHANNEL, OP, resp).await?;
        if body.len() > MAX_SYNC_BYTES {
            return Err(api_error(OP, "answer too large"));
        }
        if !status.is_success() {
            return Err(refused(OP, status, &body));
        }
        Ok(body)
    }

    fn account_data_path(&self, kind: &str) -> String {
        format!("user/{}/account_data/{}", seg(&self.me), seg(kind))
    }

    /// The bot's account data of `kind`; `None` when it was never set.
    pub async fn account_data(
        &self,
        kind: &str,
    ) -> Result<Option<serde_json::Value>, GatewayError> {
        const OP: &str = "get account data";
        let path = self.account_data_path(kind);
        let (status, body) =
            send_rate_limited(CHANNEL, OP, || self.api.get(&path).timeout(REQUEST_TIMEOUT)).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(refused(OP, status, &body));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| api_error(OP, format!("unreadable answer: {e}")))
    }

    /// Sets the bot's account data of `kind`.
    pub async fn set_account_data(
        &self,
        kind: &str,
        content: &serde_json::Value,
    ) -> Result<(), GatewayError> {
        let path = self.account_data_path(kind);
        self.call("set account data", || {
            self.api.request(reqwest::Method::PUT, &path).json(content)
        })
        .await
        .map(drop)
    }

    /// How many members `room` has joined.
    pub async fn joined_members(&self, room: &str) -> Result<usize, GatewayError> {
        const OP: &str = "joined_members";
        let path = format!("rooms/{}/joined_members", seg(room));
        let body = self.call(OP, || self.api.get(&path)).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| api_error(OP, format!("unreadable answer: {e}")))?;
        v.get("joined")
            .and_then(|j| j.as_object())
            .map(|j| j.len())
            .ok_or_else(|| api_error(OP, "answer without a joined map"))
    }

    /// Whether `room` has `m.room.encryption` state.
    pub async fn is_encrypted(&self, room: &str) -> Result<bool, GatewayError> {
        const OP: &str = "room encryption state";
        let path = format!("rooms/{}/state/m.room.encryption/", seg(room));
        let (status, body) =
            send_rate_limited(CHANNEL, OP, || self.api.get(&path).timeout(REQUEST_TIMEOUT)).await?;
        match status.as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(refused(OP, status, &body)),
        }
    }

    /// Joins `room` (accepting an invitation).
    pub async fn join(&self, room: &str) -> Result<(), GatewayError> {
        let path = format!("join/{}", seg(room));
        self.call("join", || self.api.post(&path).json(&serde_json::json!({})))
            .await
            .map(drop)
    }

    /// A transaction id no other send of this account used.
    fn next_txn(&self) -> String {
        let n = self.txn.fetch_add(1, Ordering::Relaxed);
        format!("cowork{}.{n}", self.started)
    }

    /// Sends `text` to `room` as notices (what bots send: other bots do not
    /// answer them) in pieces of [`MATRIX_MAX_CHARS`].
    pub async fn send_text(&self, room: &str, text: &str) -> Result<(), GatewayError> {
        const OP: &str = "send message";
        if !is_room_id(room) {
            return Err(api_error(OP, "chat is not a Matrix room id"));
        }
        for part in chunk_text(text, MATRIX_MAX_CHARS) {
            // One id per piece, the same for each retry of it.
            let path = format!(
                "rooms/{}/send/m.room.message/{}",
                seg(room),
                seg(&self.next_txn())
            );
            let body = serde_json::json!({"msgtype": "m.notice", "body": part});
            self.call(OP, || {
                self.api.request(reqwest::Method::PUT, &path).json(&body)
            })
            .await?;
        }
        Ok(())
    }
}

impl Outbound for MatrixClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.send_text(chat, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(seg("@a/../b?c"), "%40a%2F..%2Fb%3Fc");
    }

    #[test]
    fn refusals_say_what_to_do_without_quoting_the_server() {
        let e = refused(
            "sync",
            reqwest::StatusCode::UNAUTHORIZED,
            br#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed."}"#,
        )
        .to_string();
        assert!(e.contains("token revoked or rotated: set a new one"), "{e}");
        assert!(!e.contains("Invalid access token passed"), "{e}");
    }

    #[test]
    fn the_filter_is_json() {
        let f: serde_json::Value = serde_json::from_str(FILTER).unwrap();
        assert_eq!(
            f["room"]["timeline"]["limit"],
            super::super::parse::TIMELINE_LIMIT
        );
    }
}
