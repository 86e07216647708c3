//! One `imsg rpc` session (over SSH in production, any stream in tests):
//! `watch.subscribe` for every chat (resuming after the last message seen,
//! `since_rowid`, when a connection is opened again), then `message`
//! notifications to [`Imessage::message`] and the [`Dispatcher`] (the
//! message guid is the replay key), and the queued answers written as
//! `send` requests, reading all the while. imsg's error answer to the
//! subscription (Full Disk Access missing, say) is the session's failure,
//! shown by the [`Pacer`]; an error answer to a `send` is logged. The
//! session ends when imsg exits or the SSH connection drops; the loop
//! ([`run_connection`]) opens another through the pacer.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::client::{Chunk, send_request};
use super::parse::{CHANNEL, Imessage, ImessageEvent, MAX_LINE_BYTES, RpcLine, parse_line, row_id};
use super::ssh::{self, SshTarget};
use crate::gateway::channels::audit_refused;
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::transport::lines::{LineReader, Read};
use crate::gateway::transport::pacer::Pacer;

/// From the subscription request to its answer.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// The id of the subscription request; `send` requests count up from it.
const SUBSCRIBE_ID: u64 = 1;

/// Why one session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// imsg exited or the connection closed: reconnect.
    Closed,
    /// `shutdown` was signalled.
    Shutdown,
}

fn rpc_err(operation: &'static str, reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.into(),
    }
}

/// What carries over from one session to the next: the answers waiting
/// (one that could not be written waits for the next session) and the last
/// message seen.
#[derive(Debug)]
pub struct Carry {
    rx: mpsc::Receiver<Chunk>,
    pending: Option<Chunk>,
    /// The row id of the last message seen: the next subscription resumes
    /// after it.
    pub cursor: Option<i64>,
}

impl Carry {
    pub fn new(rx: mpsc::Receiver<Chunk>) -> Carry {
        Carry {
            rx,
            pending: None,
            cursor: None,
        }
    }
}

async fn write_line<S: AsyncWrite + Unpin>(stream: &mut S, line: &str) -> std::io::Result<()> {
    stream.write_all(line.as_bytes()).await?;
    stream.flush().await
}

fn subscribe_request(cursor: Option<i64>) -> String {
    let mut params = serde_json::json!({});
    if let Some(rowid) = cursor {
        params["since_rowid"] = rowid.into();
    }
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": SUBSCRIBE_ID,
        "method": "watch.subscribe",
        "params": params,
    });
    format!("{request}\n")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One session over `stream` (imsg's stdin and stdout) until imsg ends it
/// or `shutdown`.
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    rules: &Imessage,
    dispatcher: &Dispatcher,
    carry: &mut Carry,
    pacer: &mut Pacer,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<SessionEnd, GatewayError> {
    let mut io = LineReader::with_max(stream, MAX_LINE_BYTES);
    write_line(io.get_mut(), &subscribe_request(carry.cursor))
        .await
        .map_err(|e| rpc_err("subscribe", format!("writing to imsg failed: {e}")))?;
    let subscribe_by = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
    let mut subscribed = false;
    let mut next_id = SUBSCRIBE_ID + 1;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
            read = io.next_line() => {
                let text = match read {
                    Ok(Read::Line(text)) => text,
                    Ok(Read::Malformed(why)) => {
                        dispatcher
                            .reject_malformed(CHANNEL, &GatewayError::parse(CHANNEL, why))
                            .await?;
                        continue;
                    }
                    Ok(Read::Closed) if subscribed => return Ok(SessionEnd::Closed),
                    Ok(Read::Closed) => {
                        return Err(rpc_err("subscribe", "imsg rpc exited before answering the subscription (is imsg installed on the Mac, on the PATH of a non-interactive SSH login, or named by imsg_path?)"));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "imessage connection failed");
                        return Ok(SessionEnd::Closed);
                    }
                };
                match parse_line(&text) {
                    Ok(RpcLine::Result { id: SUBSCRIBE_ID, .. }) => {
                        subscribed = true;
                        pacer.worked();
                        tracing::info!(channel = rules.channel(), "imessage watch subscribed");
                    }
                    Ok(RpcLine::Error { id: Some(SUBSCRIBE_ID), message }) => {
                        return Err(rpc_err("subscribe", format!("imsg refused to watch messages: {message}")));
                    }
                    Ok(RpcLine::Error { id, message }) => {
                        tracing::warn!(channel = rules.channel(), ?id, error = %message, "imsg answered a request with an error");
                    }
                    Ok(RpcLine::Result { .. } | RpcLine::Other) => {}
                    Ok(RpcLine::Message(data)) => {
                        if let Some(rowid) = row_id(&data) {
                            carry.cursor = Some(carry.cursor.map_or(rowid, |c| c.max(rowid)));
                        }
                        on_message(rules, dispatcher, data).await?;
                    }
                    Err(why) => {
                        dispatcher
                            .reject_malformed(CHANNEL, &GatewayError::parse(CHANNEL, why))
                            .await?;
                    }
                }
            }
            _ = tokio::time::sleep_until(subscribe_by), if !subscribed => {
                return Err(rpc_err("subscribe", "imsg did not answer the subscription in 30 s"));
            }
            chunk = carry.rx.recv(), if carry.pending.is_none() && subscribed => {
                // The sender lives as long as the channel: never None.
                carry.pending = chunk;
                if let Some(chunk) = carry.pending.as_ref() {
                    if write_line(io.get_mut(), &send_request(next_id, chunk)).await.is_err() {
                        return Ok(SessionEnd::Closed);
                    }
                    next_id += 1;
                    carry.pending = None;
                }
            }
        }
    }
}

async fn on_message(
    rules: &Imessage,
    dispatcher: &Dispatcher,
    data: serde_json::Value,
) -> Result<(), GatewayError> {
    match rules.message(data, now_secs()) {
        Ok(ImessageEvent::Message { guid, inbound }) => {
            dispatcher
                .dispatch_and_answer(CHANNEL, Some(&guid), *inbound)
                .await
        }
        Ok(ImessageEvent::Refused(refused)) => {
            audit_refused(dispatcher.trail(), rules.channel(), &refused).await
        }
        Ok(ImessageEvent::Ignored { .. }) => Ok(()),
        Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await,
    }
}

/// One iMessage channel's connection settings.
pub struct ImessageConnection {
    pub target: SshTarget,
    pub key: Arc<russh::keys::PrivateKey>,
    /// `IMSG_PATH rpc`.
    pub command: String,
    pub rules: Imessage,
}

impl std::fmt::Debug for ImessageConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImessageConnection")
            .field("host", &self.target.host)
            .field("port", &self.target.port)
            .field("user", &self.target.user)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// The connection until `shutdown`: reconnects after imsg exits, the SSH
/// connection drops or fails (`pacer`: 1 s doubling to 60 s on errors,
/// shown; at most one connection a second).
pub async fn run_connection(
    conn: Arc<ImessageConnection>,
    dispatcher: Arc<Dispatcher>,
    mut carry: Carry,
    mut pacer: Pacer,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let result = match ssh::open(&conn.target, &conn.key, &conn.command).await {
            Ok(opened) => {
                session(
                    opened.stream,
                    &conn.rules,
                    &dispatcher,
                    &mut carry,
                    &mut pacer,
                    &mut shutdown,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let go_on = match result {
            Ok(SessionEnd::Shutdown) => return,
            Ok(SessionEnd::Closed) => {
                // Shown like a failure: the owner sees the Mac went away
                // (the next subscription clears it).
                tracing::info!("imsg rpc ended; reconnecting");
                pacer
                    .failed(
                        "imsg rpc ended (imsg exited or the SSH connection dropped)",
                        &mut shutdown,
                    )
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, "imessage connection failed");
                pacer.failed(&e.to_string(), &mut shutdown).await
            }
        };
        if !go_on {
            return;
        }
    }
}
