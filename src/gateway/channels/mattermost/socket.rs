//! The Mattermost WebSocket (`/api/v4/websocket`): `GET users/me` first (the
//! bot's own id, and a refused token shown as such before anything is
//! opened), then the socket, authenticated by the challenge action
//! `{"seq": 1, "action": "authentication_challenge", "data": {"token": ...}}`
//! (the token travels only in that frame, never logged, never in the URL)
//! and its answer `{"status": "OK", "seq_reply": 1}`; then `posted` events →
//! [`Mattermost::posted`] → [`Dispatcher`] (the post id is the replay key),
//! answered by REST in the post's thread.
//!
//! Health: the appliance pings every [`PING_EVERY`]; a connection from which
//! nothing (not even a pong) came for [`SILENT_LIMIT`] is dropped and opened
//! again. Every reconnect goes through the [`Pacer`], which shows the
//! problem (a refused token, a refused challenge, an unreachable server)
//! until a connection is authenticated again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::client::MattermostClient;
use super::parse::{CHANNEL, Frame, Mattermost, MattermostEvent, Me, decode_frame};
use crate::gateway::channels::{Redacted, audit_refused};
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::transport::pacer::Pacer;
use crate::gateway::transport::{WsStream, ws_connect};

/// How often the appliance pings the server.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// A connection silent this long (no frame, no pong) is dead.
pub const SILENT_LIMIT: Duration = Duration::from_secs(75);
/// How long the server may take to answer the authentication challenge.
const AUTH_TIMEOUT: Duration = Duration::from_secs(20);

/// Why one connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The server closed the socket (or it failed): reconnect.
    Closed,
    /// Nothing came for [`SILENT_LIMIT`]: reconnect.
    Silent,
    /// `shutdown` was signalled.
    Shutdown,
}

/// One Mattermost channel's way in.
#[derive(Debug)]
pub struct MattermostSocket {
    /// `wss://{server}/api/v4/websocket` (`ws://` on loopback only).
    url: String,
    extra_root_pem: Option<Vec<u8>>,
    token: Redacted,
    parser: Mattermost,
    /// The REST client, which also answers (its thread map is kept here).
    client: Arc<MattermostClient>,
}

fn socket_err(reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation: "websocket",
        reason: reason.into(),
    }
}

impl MattermostSocket {
    pub fn new(
        url: String,
        extra_root_pem: Option<Vec<u8>>,
        token: Redacted,
        parser: Mattermost,
        client: Arc<MattermostClient>,
    ) -> MattermostSocket {
        MattermostSocket {
            url,
            extra_root_pem,
            token,
            parser,
            client,
        }
    }

    /// The WebSocket URL of the server whose REST API is `api_base`
    /// (`https://host/api/v4` → `wss://host/api/v4/websocket`).
    pub fn url_for(api_base: &str) -> String {
        let base = api_base.trim_end_matches('/');
        let base = match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => base.replacen("http://", "ws://", 1),
        };
        format!("{base}/websocket")
    }

    /// One connection: who we are, the socket, the challenge, then events
    /// until the socket closes, falls silent or `shutdown`.
    pub async fn run_session(
        &self,
        dispatcher: &Dispatcher,
        pacer: &mut Pacer,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<SessionEnd, GatewayError> {
        let me = self.client.me().await?;
        let mut ws = ws_connect(CHANNEL, &self.url, self.extra_root_pem.as_deref()).await?;
        let challenge = serde_json::json!({
            "seq": 1,
            "action": "authentication_challenge",
            "data": { "token": self.token.expose() },
        });
        ws.send(Message::Text(challenge.to_string().into()))
            .await
            .map_err(|_| socket_err("sending the authentication challenge failed"))?;
        if !self.authenticated(&mut ws, shutdown).await? {
            let _ = ws.close(None).await;
            return Ok(SessionEnd::Shutdown);
        }
        pacer.worked();
        tracing::info!(
            channel = self.parser.channel(),
            "mattermost websocket connected"
        );
        // The seed: a dedicated bot account with minimal permissions, never a
        // person's own token (which reads everything that person can).
        if !me.is_bot {
            pacer.show(Some(format!(
                "connected, but the token is @{}'s personal account, not a bot account: create one (System Console, Integrations, Bot Accounts) and store its token",
                me.username
            )));
        }

        let mut heard = Instant::now();
        let mut next_ping = Instant::now() + PING_EVERY;
        loop {
            let msg = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    let _ = ws.close(None).await;
                    return Ok(SessionEnd::Shutdown);
                }
                m = ws.next() => m,
                _ = tokio::time::sleep_until(next_ping) => {
                    if heard.elapsed() >= SILENT_LIMIT {
                        let _ = ws.close(None).await;
                        return Ok(SessionEnd::Silent);
                    }
                    if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                        return Ok(SessionEnd::Closed);
                    }
                    next_ping = Instant::now() + PING_EVERY;
                    continue;
                }
            };
            heard = Instant::now();
            match msg {
                Some(Ok(Message::Text(t))) => self.on_text(t.as_str(), &me, dispatcher).await?,
                Some(Ok(Message::Close(_))) | None => return Ok(SessionEnd::Closed),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "mattermost websocket error");
                    return Ok(SessionEnd::Closed);
                }
                // Pings are answered by tungstenite; pongs count as heard.
                Some(Ok(_)) => {}
            }
        }
    }

    /// Waits for the answer to the challenge: true once it is OK, false on
    /// `shutdown`; a refusal, a closed socket or no answer is an error.
    async fn authenticated(
        &self,
        ws: &mut WsStream,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<bool, GatewayError> {
        let deadline = Instant::now() + AUTH_TIMEOUT;
        loop {
            let msg = tokio::select! {
                _ = shutdown.changed() => return Ok(false),
                m = tokio::time::timeout_at(deadline, ws.next()) => m
                    .map_err(|_| socket_err("no answer to the authentication challenge"))?,
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => {
                    return Err(socket_err("closed before the authentication was answered"));
                }
                Some(Err(_)) => {
                    return Err(socket_err("failed before the authentication was answered"));
                }
                Some(Ok(_)) => continue,
            };
            // `hello` may come before the answer; nothing else is sent to an
            // unauthenticated connection.
            if let Ok(Frame::Reply { seq: 1, result }) = decode_frame(text.as_str()) {
                return result
                    .map(|()| true)
                    .map_err(|why| socket_err(format!("authentication refused: {why}")));
            }
        }
    }

    async fn on_text(
        &self,
        text: &str,
        me: &Me,
        dispatcher: &Dispatcher,
    ) -> Result<(), GatewayError> {
        let data = match decode_frame(text) {
            Ok(Frame::Posted(data)) => data,
            Ok(Frame::Reply {
                result: Err(why), ..
            }) => {
                tracing::info!(why, "mattermost refused an action");
                return Ok(());
            }
            Ok(_) => return Ok(()),
            Err(e) => return dispatcher.reject_malformed(CHANNEL, &e).await,
        };
        match self.parser.posted(data.get().as_bytes(), me) {
            Ok(MattermostEvent::Message {
                post_id,
                thread,
                inbound,
            }) => {
                self.client.note_thread(inbound.chat(), &thread);
                dispatcher
                    .dispatch_and_answer(CHANNEL, Some(&post_id), *inbound)
                    .await
            }
            Ok(MattermostEvent::Refused(refused)) => {
                audit_refused(dispatcher.trail(), self.parser.channel(), &refused).await
            }
            Ok(MattermostEvent::Ignored { .. }) => Ok(()),
            Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await,
        }
    }
}

/// The WebSocket until `shutdown`: reconnects after a close, a silence or an
/// error (`pacer`: 1 s doubling to 60 s on errors, shown; at most one
/// connection a second).
pub async fn run_websocket(
    socket: Arc<MattermostSocket>,
    dispatcher: Arc<Dispatcher>,
    mut pacer: Pacer,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let began = std::time::Instant::now();
        let go_on = match socket
            .run_session(&dispatcher, &mut pacer, &mut shutdown)
            .await
        {
            Ok(SessionEnd::Shutdown) => return,
            Ok(end) => {
                tracing::info!(?end, "mattermost websocket ended; reconnecting");
                pacer.ended(began, false, &mut shutdown).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "mattermost websocket failed");
                pacer.failed(&e.to_string(), &mut shutdown).await
            }
        };
        if !go_on {
            return;
        }
    }
}
