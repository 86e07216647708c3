//! The connection to signal-cli: its daemon's JSON-RPC on a Unix socket
//! (`signal-cli daemon --socket PATH`), never TCP: signal-cli's JSON-RPC has
//! no authentication, so whoever can reach it can read and send as the
//! account. Before every connect the socket and its directory are checked
//! ([`check_socket`]): owned by the gateway's user or root and writable by
//! neither group nor others, else the channel does not start and the
//! settings page says why.
//!
//! Lines are read with a bound ([`MAX_LINE_BYTES`]): a longer one ends the
//! connection (audited, shown, reconnected through the [`Pacer`]); a line
//! that is not JSON-RPC is audited and skipped. Received messages go, in
//! order, to a worker ([`SignalConnection::on_envelope`]) that checks the
//! sender's identity ([`super::identity`]) before dispatching; the worker's
//! calls to signal-cli and the answers' `send` calls are queued and written
//! here, each with an id of its own, and their answers handed back.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::client::{Call, SignalSender};
use super::identity::Identities;
use super::parse::{CHANNEL, Envelope, Incoming, Signal, SignalEvent, identity_of, parse_line};
use crate::gateway::channels::{Refused, audit_refused};
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::identities::Standing;
use crate::gateway::sinks::AuditEvent;
use crate::gateway::transport::lines::{LineReader, Read};
use crate::gateway::transport::pacer::Pacer;

/// Most bytes of one line from signal-cli (a message of Signal's largest
/// text, with its envelope, is far below).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Connecting to the socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most calls written and not yet answered.
const MAX_PENDING: usize = 1024;
/// Most received messages waiting for the worker.
const MAX_WAITING: usize = 256;

/// Why one connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// signal-cli closed the socket: reconnect.
    Closed,
    /// `shutdown` was signalled.
    Shutdown,
}

fn api_err(operation: &'static str, reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.into(),
    }
}

/// Refuses a socket that another local user could reach or replace: the
/// socket and its directory must be owned by `uid` or root and writable by
/// neither group nor others, the socket a socket (not a link to one).
pub fn check_socket(path: &Path, uid: u32) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| format!("{}: no directory", path.display()))?;
    for (what, at, link) in [("directory", dir, false), ("socket", path, true)] {
        let meta = if link {
            std::fs::symlink_metadata(at)
        } else {
            std::fs::metadata(at)
        }
        .map_err(|e| format!("signal-cli's {what} {}: {e}", at.display()))?;
        if link && !meta.file_type().is_socket() {
            return Err(format!(
                "{} is not a socket (is signal-cli running with --socket {}?)",
                at.display(),
                at.display()
            ));
        }
        if meta.uid() != uid && meta.uid() != 0 {
            return Err(format!(
                "signal-cli's {what} {} belongs to uid {}, neither this user ({uid}) nor root: refused",
                at.display(),
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "signal-cli's {what} {} is writable by group or others (mode {:o}): refused; \
                 make it 0700 (directory) or 0600 (socket)",
                at.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// One Signal channel's connection.
#[derive(Debug)]
pub struct SignalConnection {
    pub socket_path: PathBuf,
    pub rules: Signal,
    pub identities: Arc<Identities>,
    pub sender: Arc<SignalSender>,
}

impl SignalConnection {
    /// Checks the socket, then connects.
    pub async fn connect(&self) -> Result<UnixStream, GatewayError> {
        let path = &self.socket_path;
        check_socket(path, nix::unistd::geteuid().as_raw())
            .map_err(|r| api_err("check socket", r))?;
        tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| api_err("connect", format!("{}: timed out", path.display())))?
            .map_err(|e| api_err("connect", format!("{}: {e}", path.display())))
    }

    /// One connection: lines in, calls out, until signal-cli closes it or
    /// `shutdown`.
    pub async fn session(
        &self,
        stream: UnixStream,
        dispatcher: &Dispatcher,
        calls: &mut mpsc::Receiver<Call>,
        envelopes: &mpsc::Sender<Box<Envelope>>,
        pacer: &mut Pacer,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, GatewayError> {
        let (read, mut write) = stream.into_split();
        let mut lines = LineReader::with_max(read, MAX_LINE_BYTES);
        let channel = self.rules.channel();
        pacer.worked();
        pacer.show(self.identities.problem(channel));
        tracing::info!(channel, "signal-cli connected");
        let mut pending: HashMap<u64, oneshot::Sender<Result<Value, String>>> = HashMap::new();
        let mut next_id: u64 = 1;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
                () = self.identities.changed() => pacer.show(self.identities.problem(channel)),
                read = lines.next_line() => match read {
                    Err(e) => return Err(api_err("read", e.to_string())),
                    Ok(Read::Closed) => return Ok(SessionEnd::Closed),
                    Ok(Read::Malformed(why)) => {
                        let e = GatewayError::parse(CHANNEL, why.clone());
                        dispatcher.reject_malformed(CHANNEL, &e).await?;
                        return Err(api_err("read", format!("signal-cli sent a {why}; reconnecting")));
                    }
                    Ok(Read::Line(text)) => match parse_line(&text) {
                        Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await?,
                        Ok(Incoming::Receive(envelope)) => {
                            if envelopes.try_send(envelope).is_err() {
                                tracing::warn!(channel, "signal messages arrive faster than they are handled; one dropped");
                                let e = GatewayError::parse(CHANNEL, "dropped: too many messages waiting".to_string());
                                dispatcher.reject_malformed(CHANNEL, &e).await?;
                            }
                        }
                        Ok(Incoming::Answer { id, outcome }) => {
                            if let Some(tx) = pending.remove(&id) {
                                let _ = tx.send(outcome);
                            }
                        }
                        Ok(Incoming::Other) => {}
                    },
                },
                call = calls.recv(), if pending.len() < MAX_PENDING => {
                    // The sender lives as long as the channel.
                    let Some(call) = call else { return Ok(SessionEnd::Shutdown) };
                    let id = next_id;
                    next_id += 1;
                    let mut line = json!({"jsonrpc": "2.0", "method": call.method,
                        "params": call.params, "id": id})
                    .to_string();
                    line.push('\n');
                    if let Err(e) = write.write_all(line.as_bytes()).await {
                        let _ = call.answer.send(Err(format!("writing to signal-cli failed: {e}")));
                        return Ok(SessionEnd::Closed);
                    }
                    // Calls whose callers gave up are forgotten.
                    pending.retain(|_, tx| !tx.is_closed());
                    pending.insert(id, call.answer);
                }
            }
        }
    }

    /// One received message, in order: the sender's identity checked, then
    /// dispatched.
    pub async fn on_envelope(
        &self,
        dispatcher: &Dispatcher,
        envelope: &Envelope,
    ) -> Result<(), GatewayError> {
        match self.rules.envelope(envelope) {
            Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await,
            Ok(SignalEvent::Ignored { .. }) => Ok(()),
            Ok(SignalEvent::Message {
                timestamp,
                number,
                inbound,
            }) => {
                let sender = inbound.sender().to_string();
                if !self
                    .trusted(dispatcher, &sender, number.as_deref(), inbound.chat())
                    .await?
                {
                    return Ok(());
                }
                let event_id = format!("{sender}:{timestamp}");
                dispatcher
                    .dispatch_and_answer(CHANNEL, Some(&event_id), *inbound)
                    .await
            }
        }
    }

    /// Whether `sender`'s identity lets its message be acted on; a sender
    /// whose key is untrusted or whose safety number changed is paused.
    async fn trusted(
        &self,
        dispatcher: &Dispatcher,
        sender: &str,
        number: Option<&str>,
        chat: &str,
    ) -> Result<bool, GatewayError> {
        let channel = self.rules.channel();
        let refuse = |reason: &'static str, detail: String| Refused {
            reason,
            detail,
            sender: Some(sender.to_string()),
            chat: Some(chat.to_string()),
        };
        if self.identities.is_paused(sender) {
            let r = refuse("sender_paused", "safety number not confirmed yet".into());
            audit_refused(dispatcher.trail(), channel, &r).await?;
            return Ok(false);
        }
        let looked_up = self
            .sender
            .call(
                "look up identity",
                "listIdentities",
                json!({"number": number.unwrap_or(sender)}),
            )
            .await
            .and_then(|answer| identity_of(answer, sender));
        let identity = match looked_up {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                let r = refuse("identity_unknown", "signal-cli knows no key for it".into());
                audit_refused(dispatcher.trail(), channel, &r).await?;
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(channel, error = %e, "a signal sender's identity could not be checked");
                let r = refuse("identity_unchecked", e.to_string());
                audit_refused(dispatcher.trail(), channel, &r).await?;
                return Ok(false);
            }
        };
        let Some(current) = super::parse::safety_number(&identity.safety_number) else {
            let r = refuse(
                "identity_unchecked",
                "a safety number of other than 60 digits".into(),
            );
            audit_refused(dispatcher.trail(), channel, &r).await?;
            return Ok(false);
        };
        let store = dispatcher.store();
        let kept = store.identity(channel, sender)?;
        let untrusted = identity.trust_level == "UNTRUSTED";
        let changed = kept.as_ref().is_some_and(|k| k.safety_number != current);
        if untrusted || changed {
            if self.identities.pause(sender, &current) {
                let mut ev = AuditEvent::new(
                    "gateway.safety_number_changed",
                    if changed { "changed" } else { "untrusted" },
                    channel,
                );
                ev.sender = Some(sender.to_string());
                ev.chat = Some(chat.to_string());
                ev.detail = Some(format!("new safety number {current}"));
                tracing::warn!(
                    channel,
                    sender,
                    "a signal sender's safety number changed; paused"
                );
                dispatcher.trail().event(ev).await?;
            } else {
                let r = refuse("sender_paused", "safety number not confirmed yet".into());
                audit_refused(dispatcher.trail(), channel, &r).await?;
            }
            return Ok(false);
        }
        if kept.is_none() {
            let standing = if identity.trust_level == "TRUSTED_VERIFIED" {
                Standing::Confirmed
            } else {
                Standing::FirstUse
            };
            store.keep_identity(
                channel,
                sender,
                &current,
                standing,
                dispatcher.clock().now(),
            )?;
        }
        Ok(true)
    }
}

/// Handles received messages one at a time, in order, until the
/// connection's loop ends.
async fn worker(
    conn: Arc<SignalConnection>,
    dispatcher: Arc<Dispatcher>,
    mut envelopes: mpsc::Receiver<Box<Envelope>>,
) {
    while let Some(envelope) = envelopes.recv().await {
        if let Err(e) = conn.on_envelope(&dispatcher, &envelope).await {
            tracing::warn!(channel = conn.rules.channel(), error = %e, "a signal message could not be handled");
        }
    }
}

/// The connection until `shutdown`: reconnects after a close or an error
/// (`pacer`: 1 s doubling to 60 s on errors, shown; at most one connection
/// a second).
pub async fn run_connection(
    conn: Arc<SignalConnection>,
    dispatcher: Arc<Dispatcher>,
    mut calls: mpsc::Receiver<Call>,
    mut pacer: Pacer,
    mut shutdown: watch::Receiver<bool>,
) {
    let (envelopes, waiting) = mpsc::channel(MAX_WAITING);
    let handler = tokio::spawn(worker(Arc::clone(&conn), Arc::clone(&dispatcher), waiting));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let began = std::time::Instant::now();
        let result = match conn.connect().await {
            Ok(stream) => {
                conn.session(
                    stream,
                    &dispatcher,
                    &mut calls,
                    &envelopes,
                    &mut pacer,
                    &mut shutdown,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let go_on = match result {
            Ok(SessionEnd::Shutdown) => false,
            Ok(SessionEnd::Closed) => {
                tracing::info!("signal-cli closed the socket; reconnecting");
                pacer.ended(began, false, &mut shutdown).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "signal-cli connection failed");
                pacer.failed(&e.to_string(), &mut shutdown).await
            }
        };
        if !go_on {
            break;
        }
    }
    handler.abort();
}
