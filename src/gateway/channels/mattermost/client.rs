//! The Mattermost REST client (`{server}/api/v4`, the token as a bearer
//! token): `GET users/me` (who the token is: its own posts are skipped, and
//! a refused token shows before the WebSocket is opened) and `POST posts`,
//! in pieces of [`MATTERMOST_MAX_CHARS`], in the thread the channel's last
//! message came in.

use super::parse::{CHANNEL, Me, is_mattermost_id};
use crate::gateway::channels::{ChatMemory, Redacted};
use crate::gateway::chunk::chunk_text;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::{ApiClient, HttpConfig, api_err, read_capped, send_rate_limited};

/// Longest message of one post, in characters (Mattermost's
/// `PostMessageMaxRunesV2`).
pub const MATTERMOST_MAX_CHARS: usize = 16_383;
/// Most channels whose last thread is kept (past it the map starts over: an
/// answer then starts a new thread, nothing worse).
const MAX_CHANNELS: usize = 10_000;

/// Talks to a Mattermost server's REST API.
#[derive(Debug)]
pub struct MattermostClient {
    api: ApiClient,
    /// The thread (root post id) each channel's last message came in.
    threads: ChatMemory,
}

fn api_error(operation: &'static str, reason: String) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason,
    }
}

/// A refused answer, said without its body (it may quote the request).
fn refused(operation: &'static str, status: reqwest::StatusCode) -> GatewayError {
    let why = match status.as_u16() {
        401 => ": the token was refused (revoked, expired or mistyped)",
        403 => ": the account lacks a permission",
        _ => "",
    };
    api_error(operation, format!("HTTP {status}{why}"))
}

impl MattermostClient {
    /// `cfg`: its base is the server's `/api/v4`.
    pub fn new(cfg: &HttpConfig, token: &Redacted) -> Result<Self, GatewayError> {
        Ok(MattermostClient {
            api: ApiClient::new(CHANNEL, cfg, "Bearer", token)?,
            threads: ChatMemory::new(MAX_CHANNELS),
        })
    }

    /// The account the token belongs to.
    pub async fn me(&self) -> Result<Me, GatewayError> {
        const OP: &str = "users/me";
        let resp = self
            .api
            .get("users/me")
            .send()
            .await
            .map_err(api_err(CHANNEL, OP))?;
        let status = resp.status();
        let body = read_capped(CHANNEL, OP, resp).await?;
        if !status.is_success() {
            return Err(refused(OP, status));
        }
        let me: Me = serde_json::from_slice(&body)
            .map_err(|e| api_error(OP, format!("unreadable answer: {e}")))?;
        if !is_mattermost_id(&me.id) {
            return Err(api_error(OP, "the user id is not a Mattermost id".into()));
        }
        Ok(me)
    }

    /// `channel`'s last message came in `thread`: answers go there.
    pub fn note_thread(&self, channel: &str, thread: &str) {
        self.threads.note(channel, thread);
    }

    /// Posts `text` to `channel_id` in pieces of [`MATTERMOST_MAX_CHARS`].
    pub async fn create_post(&self, channel_id: &str, text: &str) -> Result<(), GatewayError> {
        const OP: &str = "create post";
        if !is_mattermost_id(channel_id) {
            return Err(api_error(OP, "channel id is not a Mattermost id".into()));
        }
        let root = self.threads.get(channel_id).unwrap_or_default();
        for part in chunk_text(text, MATTERMOST_MAX_CHARS) {
            let body = serde_json::json!({
                "channel_id": channel_id,
                "message": part,
                "root_id": root,
            });
            let (status, _) =
                send_rate_limited(CHANNEL, OP, || self.api.post("posts").json(&body)).await?;
            if !status.is_success() {
                return Err(refused(OP, status));
            }
        }
        Ok(())
    }
}

impl Outbound for MattermostClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.create_post(chat, text))
    }
}
