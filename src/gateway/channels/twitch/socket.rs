//! The connection to Twitch chat: IRC over TLS only (`ircs://`, port 6697),
//! opened with `CAP REQ :twitch.tv/tags twitch.tv/commands`, `PASS
//! oauth:<token>` (the token from the vault: sent in that line only, never
//! logged; no line the appliance logs or audits is one it sent), `NICK` and
//! `USER` with the bot's login; a server that does not know the
//! capabilities (`CAP NAK`) is told `CAP END` and goes on without tags, so
//! its messages are malformed. Once welcomed (`001`) the appliance joins the
//! channels of `channels`, answers `PING`, learns its own user id
//! (`GLOBALUSERSTATE`), hands `PRIVMSG` lines to [`Twitch::privmsg`] and
//! the [`Dispatcher`] (the `id` tag is the replay key), and sends the queued
//! answers at most [`WINDOW_MESSAGES`] a [`WINDOW`], reading all the while.
//!
//! A `NOTICE` before the welcome ("Login authentication failed", "Improperly
//! formatted auth") and `ERROR` are failures shown by the [`Pacer`], which
//! paces every reconnect; `RECONNECT` (Twitch going to restart the server)
//! ends the session and opens another at once. A connection silent for
//! [`SILENT_LIMIT`] (after a `PING` of ours) is dropped and opened again.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::client::{SendWindow, TwitchSender, WINDOW, WINDOW_MESSAGES};
use super::irc::{Line, MAX_LINE_BYTES, command, parse_line};
use super::parse::{CHANNEL, Twitch, TwitchEvent};
use crate::gateway::channels::{Redacted, audit_refused};
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::settings::MailServer;
use crate::gateway::transport::lines::{LineReader, Read};
use crate::gateway::transport::pacer::Pacer;

/// Connecting and the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// From the login lines to the welcome.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence after which the appliance pings the server.
pub const PING_AFTER: Duration = Duration::from_secs(240);
/// Silence after which the connection is dead (Twitch pings every ~5 min).
pub const SILENT_LIMIT: Duration = Duration::from_secs(360);
/// Most characters of a server's words quoted in a problem.
const QUOTED_CHARS: usize = 128;

/// Why one connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The server closed the connection: reconnect.
    Closed,
    /// Nothing came for [`SILENT_LIMIT`]: reconnect.
    Silent,
    /// `RECONNECT`: open another connection now.
    Reconnect,
    /// `shutdown` was signalled.
    Shutdown,
}

/// The answers waiting to go, kept across connections (a line that could
/// not be written waits for the next one).
#[derive(Debug)]
pub struct Outgoing {
    rx: mpsc::Receiver<String>,
    window: SendWindow,
    pending: Option<String>,
}

impl Outgoing {
    pub fn new(rx: mpsc::Receiver<String>) -> Outgoing {
        Outgoing {
            rx,
            window: SendWindow::new(WINDOW_MESSAGES, WINDOW),
            pending: None,
        }
    }
}

/// One Twitch channel's connection settings.
pub struct TwitchConnection {
    pub server: MailServer,
    pub tls: Arc<rustls::ClientConfig>,
    pub token: Redacted,
    pub rules: Twitch,
    pub sender: Arc<TwitchSender>,
}

impl std::fmt::Debug for TwitchConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwitchConnection")
            .field("server", &self.server)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

fn irc_err(operation: &'static str, reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.into(),
    }
}

/// What a line's last parameter says, quoted in a problem.
fn said(line: &Line) -> String {
    quoted(line.params.last().map_or("", String::as_str))
}

/// A server's words, quoted in a problem: capped, no control characters.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(QUOTED_CHARS)
        .collect()
}

/// What one read brought.
enum Got {
    Line(Line),
    /// A malformed line (audited): nothing to act on.
    Skip,
    /// The connection ended (closed, or failed with the error).
    End(Option<std::io::Error>),
}

/// Parses what was read; a line too long, not UTF-8 or not IRC is audited
/// as malformed and skipped.
async fn got(read: std::io::Result<Read>, dispatcher: &Dispatcher) -> Result<Got, GatewayError> {
    let why = match read {
        Ok(Read::Line(text)) => match parse_line(&text) {
            Ok(line) => return Ok(Got::Line(line)),
            Err(why) => why,
        },
        Ok(Read::Malformed(why)) => why,
        Ok(Read::Closed) => return Ok(Got::End(None)),
        Err(e) => return Ok(Got::End(Some(e))),
    };
    dispatcher
        .reject_malformed(CHANNEL, &GatewayError::parse(CHANNEL, why))
        .await?;
    Ok(Got::Skip)
}

async fn write_line<S: AsyncWrite + Unpin>(stream: &mut S, line: &str) -> std::io::Result<()> {
    stream.write_all(line.as_bytes()).await?;
    stream.flush().await
}

impl TwitchConnection {
    /// Connects over TLS to the server.
    pub async fn connect(
        &self,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, GatewayError> {
        let host = self.server.host.as_str();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((host, self.server.port)),
        )
        .await
        .map_err(|_| irc_err("connect", format!("{host}: timed out")))?
        .map_err(|e| irc_err("connect", format!("{host}:{}: {e}", self.server.port)))?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| irc_err("connect", format!("{host}: {e}")))?;
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_rustls::TlsConnector::from(Arc::clone(&self.tls)).connect(name, tcp),
        )
        .await
        .map_err(|_| irc_err("tls", format!("{host}: timed out")))?
        .map_err(|e| irc_err("tls", format!("{host}: {e}")))
    }

    /// The login lines (the token in `PASS` only).
    fn login_lines(&self) -> Result<Vec<String>, GatewayError> {
        let token = self.token.expose();
        let token = token.strip_prefix("oauth:").unwrap_or(token);
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(irc_err(
                "login",
                "the token in the vault is empty or holds spaces or control characters",
            ));
        }
        let login = self.rules.login();
        let bad = |e: String| irc_err("login", e);
        Ok(vec![
            command(&[], "CAP", &["REQ", "twitch.tv/tags twitch.tv/commands"]).map_err(bad)?,
            command(&[], "PASS", &[&format!("oauth:{token}")])
                .map_err(|_| irc_err("login", "the token cannot be sent"))?,
            command(&[], "NICK", &[login]).map_err(bad)?,
            command(&[], "USER", &[login, "0", "*", login]).map_err(bad)?,
        ])
    }

    /// One connection over `stream`: the login, the channels joined, then
    /// lines and answers until the server ends it, it falls silent or
    /// `shutdown`.
    pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        dispatcher: &Dispatcher,
        out: &mut Outgoing,
        pacer: &mut Pacer,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, GatewayError> {
        let mut io = LineReader::with_max(stream, MAX_LINE_BYTES);
        for line in self.login_lines()? {
            write_line(io.get_mut(), &line)
                .await
                .map_err(|e| irc_err("login", format!("sending the login failed: {e}")))?;
        }
        let welcomed = tokio::select! {
            _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
            w = tokio::time::timeout(LOGIN_TIMEOUT, self.welcome(&mut io, dispatcher)) => w,
        };
        welcomed.map_err(|_| irc_err("login", "no welcome from the server"))??;
        pacer.worked();
        for name in self.rules.channels() {
            let join =
                command(&[], "JOIN", &[&format!("#{name}")]).map_err(|e| irc_err("join", e))?;
            write_line(io.get_mut(), &join)
                .await
                .map_err(|e| irc_err("join", e.to_string()))?;
        }
        tracing::info!(channel = self.rules.channel(), "twitch chat connected");

        let mut own_id: Option<String> = None;
        let mut heard = Instant::now();
        let mut pinged = false;
        loop {
            let now = Instant::now();
            let send_at = out.window.next_free(now);
            let check_at = heard + if pinged { SILENT_LIMIT } else { PING_AFTER };
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    let _ = write_line(io.get_mut(), "QUIT\r\n").await;
                    return Ok(SessionEnd::Shutdown);
                }
                read = io.next_line() => {
                    heard = Instant::now();
                    pinged = false;
                    let line = match got(read, dispatcher).await? {
                        Got::Line(line) => line,
                        Got::Skip => continue,
                        Got::End(None) => return Ok(SessionEnd::Closed),
                        Got::End(Some(e)) => {
                            tracing::warn!(error = %e, "twitch connection failed");
                            return Ok(SessionEnd::Closed);
                        }
                    };
                    if let Some(end) = self.on_line(&line, &mut io, dispatcher, &mut own_id).await? {
                        return Ok(end);
                    }
                }
                _ = tokio::time::sleep_until(send_at), if out.pending.is_some() => {
                    if let Some(line) = out.pending.as_deref() {
                        if write_line(io.get_mut(), line).await.is_err() {
                            return Ok(SessionEnd::Closed);
                        }
                        out.window.record(Instant::now());
                        out.pending = None;
                    }
                }
                line = out.rx.recv(), if out.pending.is_none() => {
                    // The sender lives as long as the channel: never None.
                    out.pending = line;
                }
                _ = tokio::time::sleep_until(check_at) => {
                    if pinged {
                        return Ok(SessionEnd::Silent);
                    }
                    if write_line(io.get_mut(), "PING :tmi.twitch.tv\r\n").await.is_err() {
                        return Ok(SessionEnd::Closed);
                    }
                    pinged = true;
                }
            }
        }
    }

    /// Reads until the welcome (`001`): capabilities answered, pings
    /// answered, a notice or an error a failure.
    async fn welcome<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut LineReader<S>,
        dispatcher: &Dispatcher,
    ) -> Result<(), GatewayError> {
        loop {
            let line = match got(io.next_line().await, dispatcher).await? {
                Got::Line(line) => line,
                Got::Skip => continue,
                Got::End(None) => {
                    return Err(irc_err(
                        "login",
                        "the server closed the connection before the welcome",
                    ));
                }
                Got::End(Some(e)) => return Err(irc_err("login", e.to_string())),
            };
            match line.command.as_str() {
                "001" => return Ok(()),
                "PING" => self.pong(&line, io).await?,
                "CAP" if matches!(line.param(1), Some("ACK" | "NAK")) => {
                    if line.param(1) == Some("NAK") {
                        tracing::info!("the IRC server does not know Twitch's capabilities");
                    }
                    write_line(io.get_mut(), "CAP END\r\n")
                        .await
                        .map_err(|e| irc_err("login", e.to_string()))?;
                }
                "NOTICE" => {
                    return Err(irc_err(
                        "login",
                        format!("Twitch refused the login: {}", said(&line)),
                    ));
                }
                "ERROR" => {
                    return Err(irc_err(
                        "login",
                        format!("the server refused the login: {}", said(&line)),
                    ));
                }
                // The login name refused or taken, the password refused, banned
                // (an unknown command, 421, is not a refusal: Twitch has no USER).
                code @ ("432" | "433" | "464" | "465") => {
                    let said = said(&line);
                    return Err(irc_err(
                        "login",
                        format!("the server refused the login ({code}): {said}"),
                    ));
                }
                _ => {}
            }
        }
    }

    async fn pong<S: AsyncWrite + Unpin>(
        &self,
        ping: &Line,
        io: &mut LineReader<S>,
    ) -> Result<(), GatewayError> {
        let pong = command(&[], "PONG", &[ping.param(0).unwrap_or("tmi.twitch.tv")])
            .map_err(|e| irc_err("pong", e))?;
        write_line(io.get_mut(), &pong)
            .await
            .map_err(|e| irc_err("pong", e.to_string()))
    }

    /// One line of a welcomed session; `Some` ends the session.
    async fn on_line<S: AsyncWrite + Unpin>(
        &self,
        line: &Line,
        io: &mut LineReader<S>,
        dispatcher: &Dispatcher,
        own_id: &mut Option<String>,
    ) -> Result<Option<SessionEnd>, GatewayError> {
        match line.command.as_str() {
            "PING" if self.pong(line, io).await.is_err() => {
                return Ok(Some(SessionEnd::Closed));
            }
            "RECONNECT" => return Ok(Some(SessionEnd::Reconnect)),
            "ERROR" => {
                let said = said(line);
                return Err(irc_err(
                    "read",
                    format!("the server ended the connection: {said}"),
                ));
            }
            "GLOBALUSERSTATE" => {
                *own_id = line.tag("user-id").map(str::to_string);
            }
            "NOTICE" => {
                let said = said(line);
                if said.contains("Login authentication failed")
                    || said.contains("Improperly formatted auth")
                {
                    return Err(irc_err(
                        "login",
                        format!("Twitch refused the login: {said}"),
                    ));
                }
                tracing::info!(
                    channel = self.rules.channel(),
                    notice = line.tag("msg-id").map(quoted),
                    "twitch notice"
                );
            }
            "PRIVMSG" => self.on_privmsg(line, dispatcher, own_id.as_deref()).await?,
            // WHISPER among them: whispers are not handled.
            _ => {}
        }
        Ok(None)
    }

    async fn on_privmsg(
        &self,
        line: &Line,
        dispatcher: &Dispatcher,
        own_id: Option<&str>,
    ) -> Result<(), GatewayError> {
        match self.rules.privmsg(line, own_id) {
            Ok(TwitchEvent::Message {
                message_id,
                channel,
                inbound,
            }) => {
                self.sender.note(inbound.chat(), &channel, &message_id);
                dispatcher
                    .dispatch_and_answer(CHANNEL, Some(&message_id), *inbound)
                    .await
            }
            Ok(TwitchEvent::Refused(refused)) => {
                audit_refused(dispatcher.trail(), self.rules.channel(), &refused).await
            }
            Ok(TwitchEvent::Ignored { .. }) => Ok(()),
            Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await,
        }
    }
}

/// The connection until `shutdown`: reconnects after a close, a silence, a
/// `RECONNECT` or an error (`pacer`: 1 s doubling to 60 s on errors,
/// shown; at most one connection a second).
pub async fn run_connection(
    conn: Arc<TwitchConnection>,
    dispatcher: Arc<Dispatcher>,
    mut out: Outgoing,
    mut pacer: Pacer,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let began = std::time::Instant::now();
        let result = match conn.connect().await {
            Ok(stream) => {
                conn.session(stream, &dispatcher, &mut out, &mut pacer, &mut shutdown)
                    .await
            }
            Err(e) => Err(e),
        };
        let go_on = match result {
            Ok(SessionEnd::Shutdown) => return,
            Ok(end) => {
                tracing::info!(?end, "twitch connection ended; reconnecting");
                pacer
                    .ended(began, end == SessionEnd::Reconnect, &mut shutdown)
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, "twitch connection failed");
                pacer.failed(&e.to_string(), &mut shutdown).await
            }
        };
        if !go_on {
            return;
        }
    }
}
