//! Discord Gateway (WebSocket, JSON encoding, API v10): Hello (op 10) →
//! Identify (op 2, with intents) or Resume (op 6, session id + last sequence) →
//! heartbeats (op 1 carrying the last sequence, every `heartbeat_interval`, the
//! first after a random fraction of it; a missing ack (op 11) means a zombie
//! connection: reconnect and resume) → dispatches (op 0): READY (session id,
//! resume URL, the bot's user id), MESSAGE_CREATE → [`Inbound`] → [`Dispatcher`]
//! (the message id is the replay key), replies through the chat's
//! outbound ([`super::DiscordClient`]).
//! Reconnect (op 7) → resume; Invalid Session (op 9) → resume if `d` is true,
//! else identify anew. The token travels only inside Identify / Resume frames,
//! which are never logged.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::gateway::channels::Redacted;
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::inbound::{Attachment, Context, Inbound, RawInbound};
use crate::gateway::sinks::{AuditEvent, audit_detail};
use crate::gateway::transport::{WsStream, ws_connect};

const CHANNEL: &str = "discord";
/// The real Gateway URL (normally from `GET /gateway/bot`).
pub const DISCORD_GATEWAY_URL: &str = "wss://gateway.discord.gg/?v=10&encoding=json";
/// GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const DEFAULT_INTENTS: u64 = (1 << 9) | (1 << 12) | (1 << 15);
/// How long to wait for Hello after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(20);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub url: String,
    pub intents: u64,
    /// PEM root certificate(s) trusted besides the built-in roots (tests).
    pub extra_root_pem: Option<Vec<u8>>,
    /// Wait before identifying anew after a non-resumable Invalid Session
    /// (Discord asks for 1-5 s), in milliseconds.
    pub reidentify_delay_ms: std::ops::Range<u64>,
    /// The configured channel served (stamped on every message).
    pub channel: String,
}

impl GatewayConfig {
    pub fn new(url: impl Into<String>) -> Self {
        GatewayConfig {
            url: url.into(),
            intents: DEFAULT_INTENTS,
            extra_root_pem: None,
            reidentify_delay_ms: 1000..5000,
            channel: CHANNEL.to_string(),
        }
    }
}

/// Why one Gateway connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEnd {
    /// Reconnect; `resume` says whether the session can be resumed.
    Reconnect {
        resume: bool,
    },
    Shutdown,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    resume_url: String,
}

/// A Discord Gateway client (one shard).
#[derive(Debug)]
pub struct DiscordGateway {
    cfg: GatewayConfig,
    token: Redacted,
    session: Option<Session>,
    seq: Option<i64>,
    bot_user_id: Option<String>,
}

#[derive(Deserialize)]
struct Frame {
    op: u8,
    d: Option<Box<serde_json::value::RawValue>>,
    s: Option<i64>,
    t: Option<String>,
}

#[derive(Deserialize)]
struct Hello {
    heartbeat_interval: u64,
}

#[derive(Deserialize)]
struct Ready {
    session_id: String,
    resume_gateway_url: String,
    user: Author,
}

#[derive(Deserialize)]
struct MessageCreate {
    id: String,
    channel_id: String,
    guild_id: Option<String>,
    author: Author,
    #[serde(rename = "type", default)]
    kind: u8,
    content: Option<String>,
    webhook_id: Option<String>,
    #[serde(default)]
    mentions: Vec<Author>,
    #[serde(default)]
    attachments: Vec<DiscordAttachment>,
}

#[derive(Deserialize)]
struct Author {
    id: String,
    username: Option<String>,
    global_name: Option<String>,
    #[serde(default)]
    bot: bool,
}

#[derive(Deserialize)]
struct DiscordAttachment {
    filename: String,
    content_type: Option<String>,
    size: Option<u64>,
}

/// A MESSAGE_CREATE payload → (message id, channel id, inbound); `Ok(None)` for
/// messages that are not prompts (bots, webhooks, our own, system messages).
pub fn parse_message_create(
    data: &[u8],
    bot_user_id: Option<&str>,
) -> Result<Option<(String, Inbound)>, GatewayError> {
    let m: MessageCreate = serde_json::from_slice(data)
        .map_err(|e| GatewayError::parse(CHANNEL, format!("MESSAGE_CREATE: {e}")))?;
    // 0 DEFAULT, 19 REPLY; joins, pins, boosts etc. are not prompts.
    if !matches!(m.kind, 0 | 19)
        || m.author.bot
        || m.webhook_id.is_some()
        || bot_user_id == Some(m.author.id.as_str())
    {
        return Ok(None);
    }
    let mentions_bot = bot_user_id.is_some_and(|b| m.mentions.iter().any(|u| u.id == b));
    let context = if m.guild_id.is_some() {
        Context::Group
    } else {
        Context::Dm
    };
    let inbound = Inbound::try_from(RawInbound {
        channel: CHANNEL.into(),
        account: m.guild_id,
        sender: m.author.id,
        sender_name: m.author.global_name.or(m.author.username),
        chat: m.channel_id,
        context,
        mentions_bot,
        text: m.content.unwrap_or_default(),
        attachments: m
            .attachments
            .into_iter()
            .map(|a| Attachment {
                name: a.filename,
                mime: a.content_type,
                size: a.size,
            })
            .collect(),
    })?;
    Ok(Some((m.id, inbound)))
}

/// The heartbeat interval of the Gateway's first frame, which must be Hello (op 10).
fn heartbeat_interval(text: &str) -> Result<Duration, GatewayError> {
    let f: Frame = serde_json::from_str(text).map_err(|e| gw_err(format!("bad Hello: {e}")))?;
    let d =
        f.d.filter(|_| f.op == 10)
            .ok_or_else(|| gw_err("expected Hello"))?;
    let h: Hello = serde_json::from_str(d.get()).map_err(|e| gw_err(format!("bad Hello: {e}")))?;
    Ok(Duration::from_millis(
        h.heartbeat_interval.clamp(10, 600_000),
    ))
}

fn parse_ready(data: &str) -> Result<Ready, GatewayError> {
    serde_json::from_str(data).map_err(|e| gw_err(format!("bad READY: {e}")))
}

/// Decodes one Gateway text frame the way a session does (as Hello, then as a
/// dispatch: READY or MESSAGE_CREATE), acting on nothing: the fuzz target's
/// entry (`crate::fuzzing`). The frames are outside input, authenticated only
/// by the TLS connection.
pub(crate) fn decode_frame(text: &str, bot_user_id: Option<&str>) -> Result<(), GatewayError> {
    let _ = heartbeat_interval(text);
    let frame: Frame =
        serde_json::from_str(text).map_err(|e| gw_err(format!("gateway frame: {e}")))?;
    let _ = (frame.s, frame.op);
    let data = frame.d.as_ref().map_or("null", |d| d.get());
    match frame.t.as_deref() {
        Some("READY") => parse_ready(data).map(|_| ()),
        Some("MESSAGE_CREATE") => parse_message_create(data.as_bytes(), bot_user_id).map(|_| ()),
        _ => Ok(()),
    }
}

fn gw_err(reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation: "gateway",
        reason: reason.into(),
    }
}

async fn send_json(ws: &mut WsStream, v: serde_json::Value) -> Result<(), GatewayError> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|_| gw_err("send failed"))
}

impl DiscordGateway {
    pub fn new(cfg: GatewayConfig, bot_token: Redacted) -> Self {
        DiscordGateway {
            cfg,
            token: bot_token,
            session: None,
            seq: None,
            bot_user_id: None,
        }
    }

    /// The bot's user id, once READY has been received.
    pub fn bot_user_id(&self) -> Option<&str> {
        self.bot_user_id.as_deref()
    }

    /// One connection: Hello → Identify/Resume → heartbeats and dispatches,
    /// until Discord asks to reconnect, the socket closes, or `shutdown`.
    pub async fn run_session(
        &mut self,
        dispatcher: &Dispatcher,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<GatewayEnd, GatewayError> {
        let url = match &self.session {
            Some(s) => {
                let base = s.resume_url.trim_end_matches('/');
                format!("{base}/?v=10&encoding=json")
            }
            None => self.cfg.url.clone(),
        };
        let mut ws = ws_connect(CHANNEL, &url, self.cfg.extra_root_pem.as_deref()).await?;

        // Hello.
        let hello = tokio::time::timeout(HELLO_TIMEOUT, ws.next())
            .await
            .map_err(|_| gw_err("no Hello"))?;
        let interval = match hello {
            Some(Ok(Message::Text(t))) => heartbeat_interval(t.as_str())?,
            _ => return Ok(GatewayEnd::Reconnect { resume: true }),
        };

        // Identify or Resume.
        let resuming = self.session.is_some();
        match &self.session {
            Some(s) => {
                send_json(
                    &mut ws,
                    json!({"op": 6, "d": {
                        "token": self.token.expose(), "session_id": s.id, "seq": self.seq }}),
                )
                .await?
            }
            None => {
                send_json(
                    &mut ws,
                    json!({"op": 2, "d": {
                        "token": self.token.expose(),
                        "intents": self.cfg.intents,
                        "properties": {"os": "linux", "browser": "cowork", "device": "cowork"},
                    }}),
                )
                .await?
            }
        }
        tracing::debug!(resuming, "discord gateway connected");

        let jitter = rand::thread_rng().gen_range(0.0..1.0);
        let mut next_beat = tokio::time::Instant::now() + interval.mul_f64(jitter);
        let mut acked = true;
        loop {
            // Biased: frames already received (an ack among them) are read
            // before a due heartbeat decides the connection is a zombie.
            let msg = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    let _ = ws.close(None).await;
                    return Ok(GatewayEnd::Shutdown);
                }
                m = ws.next() => m,
                _ = tokio::time::sleep_until(next_beat) => {
                    if !acked {
                        // Zombie connection: drop it and resume.
                        let _ = ws.close(None).await;
                        return Ok(GatewayEnd::Reconnect { resume: true });
                    }
                    send_json(&mut ws, json!({"op": 1, "d": self.seq})).await?;
                    acked = false;
                    // From now, not from the missed slot: a slow dispatch must not
                    // make the next beat due at once (and look like a zombie).
                    next_beat = tokio::time::Instant::now() + interval;
                    continue;
                }
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1000);
                    return match code {
                        // Authentication failed, invalid shard/intents: do not retry blindly.
                        4004 | 4010..=4014 => Err(gw_err(format!("closed with code {code}"))),
                        4007 | 4009 => {
                            self.session = None;
                            Ok(GatewayEnd::Reconnect { resume: false })
                        }
                        _ => Ok(GatewayEnd::Reconnect { resume: true }),
                    };
                }
                None | Some(Err(_)) => return Ok(GatewayEnd::Reconnect { resume: true }),
                Some(Ok(_)) => continue,
            };
            let frame: Frame = match serde_json::from_str(text.as_str()) {
                Ok(f) => f,
                Err(e) => {
                    let mut ev = AuditEvent::new("gateway.inbound_rejected", "malformed", CHANNEL);
                    ev.detail = Some(audit_detail(&format!("gateway frame: {e}")));
                    dispatcher.trail().event(ev).await?;
                    continue;
                }
            };
            match frame.op {
                0 => {
                    let data = frame.d.as_ref().map_or("null", |d| d.get());
                    self.on_dispatch(frame.t.as_deref(), data, dispatcher)
                        .await?;
                    // Only a handled event moves the sequence: after a failed
                    // one, the resume asks Discord for it again.
                    if let Some(s) = frame.s {
                        self.seq = Some(self.seq.map_or(s, |old| old.max(s)));
                    }
                }
                1 => send_json(&mut ws, json!({"op": 1, "d": self.seq})).await?,
                7 => {
                    let _ = ws
                        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                            code: CloseCode::Library(4000),
                            reason: "reconnect".into(),
                        }))
                        .await;
                    return Ok(GatewayEnd::Reconnect { resume: true });
                }
                9 => {
                    let resumable = frame.d.as_ref().is_some_and(|d| d.get() == "true");
                    if !resumable {
                        self.session = None;
                        self.seq = None;
                    }
                    let _ = ws.close(None).await;
                    return Ok(GatewayEnd::Reconnect { resume: resumable });
                }
                11 => acked = true,
                _ => {}
            }
        }
    }

    async fn on_dispatch(
        &mut self,
        event: Option<&str>,
        data: &str,
        dispatcher: &Dispatcher,
    ) -> Result<(), GatewayError> {
        match event {
            Some("READY") => {
                let r = parse_ready(data)?;
                self.session = Some(Session {
                    id: r.session_id,
                    resume_url: r.resume_gateway_url,
                });
                self.bot_user_id = Some(r.user.id);
                Ok(())
            }
            Some("MESSAGE_CREATE") => {
                let parsed = parse_message_create(data.as_bytes(), self.bot_user_id.as_deref());
                match parsed {
                    Ok(Some((id, inbound))) => {
                        let inbound = inbound.on_channel(&self.cfg.channel);
                        dispatcher
                            .dispatch_and_answer(CHANNEL, Some(&id), inbound)
                            .await
                    }
                    Ok(None) => Ok(()),
                    Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await,
                }
            }
            _ => Ok(()),
        }
    }
}

/// The Gateway until `shutdown`: resumes or re-identifies as Discord asks;
/// errors back off 1 s doubling to 60 s (`pacer`, which shows them), and it
/// connects at most once a second.
pub async fn run_gateway(
    mut gateway: DiscordGateway,
    dispatcher: Arc<Dispatcher>,
    mut pacer: crate::gateway::transport::pacer::Pacer,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let began = std::time::Instant::now();
        match gateway.run_session(&dispatcher, &mut shutdown).await {
            Ok(GatewayEnd::Shutdown) => return,
            Ok(GatewayEnd::Reconnect { resume }) => {
                tracing::info!(resume, "discord gateway reconnecting");
                if !pacer.ended(began, false, &mut shutdown).await {
                    return;
                }
                if !resume {
                    // Discord asks for 1-5 s before identifying again.
                    let range = gateway.cfg.reidentify_delay_ms.clone();
                    let ms = if range.is_empty() {
                        range.start
                    } else {
                        rand::thread_rng().gen_range(range)
                    };
                    let wait = Duration::from_millis(ms);
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "discord gateway failed");
                if !pacer.failed(&e.to_string(), &mut shutdown).await {
                    return;
                }
            }
        }
    }
}
