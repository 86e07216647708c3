//! The channel's way in: the mailbox over IMAP with TLS from the start
//! (`imaps://`), logged in with the app password. Each session checks the
//! unread mail, then waits in IDLE (re-issued every 25 minutes, before the
//! 29 the RFC lets a server drop it) or, on a server without IDLE, polls
//! every minute. A message is marked `\Seen` only once it was handled (its
//! answer sent, or its refusal audited), so a dispatch that fails leaves it
//! unread for the next session; the replay guard (by Message-ID) keeps a
//! message handled but not yet marked from being acted on twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use futures_util::TryStreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;

use super::parse::{CHANNEL, MAX_MESSAGE_BYTES, Mail, Rules, parse_message};
use super::smtp::SmtpSender;
use crate::gateway::channels::{Redacted, audit_refused};
use crate::gateway::dispatch::{Dispatched, Dispatcher};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::MailServer;
use crate::gateway::transport::pacer::Pacer;

/// How long one IDLE lasts before it is ended and issued again.
pub const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
/// How often a server without IDLE is asked for new mail.
pub const POLL_EVERY: Duration = Duration::from_secs(60);
/// Connecting, the TLS handshake and each IMAP command.
const IMAP_TIMEOUT: Duration = Duration::from_secs(60);
/// Most unread messages passed over (subject filter) remembered.
const MAX_PASSED_OVER: usize = 10_000;

type Session = async_imap::Session<TlsStream<TcpStream>>;

/// Where the mailbox is and how to log in.
pub struct ImapConfig {
    pub server: MailServer,
    pub username: String,
    pub password: Redacted,
    /// The folder read (`INBOX`).
    pub mailbox: String,
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConfig")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

/// What one check of the mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckStats {
    pub dispatched: usize,
    pub refused: usize,
    pub malformed: usize,
    pub ignored: usize,
    pub passed_over: usize,
}

/// The mailbox reader: the loop's state across sessions.
#[derive(Debug)]
pub struct Inbox {
    config: ImapConfig,
    rules: Rules,
    sender: Arc<SmtpSender>,
    dispatcher: Arc<Dispatcher>,
    /// Unread messages not for the appliance, by (UIDVALIDITY, UID): not
    /// fetched again.
    passed_over: HashSet<(u32, u32)>,
}

fn imap_error(operation: &'static str, reason: impl std::fmt::Display) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.to_string(),
    }
}

/// Runs `f` under [`IMAP_TIMEOUT`], its error said with `operation`.
async fn timed<T, E: std::fmt::Display>(
    operation: &'static str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, GatewayError> {
    tokio::time::timeout(IMAP_TIMEOUT, f)
        .await
        .map_err(|_| imap_error(operation, "timed out"))?
        .map_err(|e| imap_error(operation, e))
}

/// One logged-in session with the mailbox selected.
#[derive(Debug)]
pub struct Connected {
    session: Session,
    uid_validity: u32,
    idle: bool,
}

impl Inbox {
    pub fn new(
        config: ImapConfig,
        rules: Rules,
        sender: Arc<SmtpSender>,
        dispatcher: Arc<Dispatcher>,
    ) -> Inbox {
        Inbox {
            config,
            rules,
            sender,
            dispatcher,
            passed_over: HashSet::new(),
        }
    }

    /// Connects, logs in and selects the mailbox.
    pub async fn connect(&self) -> Result<Connected, GatewayError> {
        let c = &self.config;
        let tcp = timed(
            "imap connect",
            TcpStream::connect((c.server.host.as_str(), c.server.port)),
        )
        .await?;
        let name = rustls::pki_types::ServerName::try_from(c.server.host.clone())
            .map_err(|e| imap_error("imap connect", format!("{}: {e}", c.server.host)))?;
        let tls = timed(
            "imap tls",
            tokio_rustls::TlsConnector::from(Arc::clone(&c.tls)).connect(name, tcp),
        )
        .await?;
        let mut client = async_imap::Client::new(tls);
        timed("imap greeting", client.read_response())
            .await?
            .ok_or_else(|| imap_error("imap greeting", "closed before its greeting"))?;
        let mut session = timed("imap login", async {
            client
                .login(&c.username, c.password.expose())
                .await
                .map_err(|(e, _)| e)
        })
        .await?;
        let idle = timed("imap capability", session.capabilities())
            .await?
            .has_str("IDLE");
        let mailbox = timed("imap select", session.select(&c.mailbox)).await?;
        Ok(Connected {
            session,
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            idle,
        })
    }

    /// Handles every unread message of the mailbox once.
    pub async fn check(&mut self, conn: &mut Connected) -> Result<CheckStats, GatewayError> {
        let validity = conn.uid_validity;
        let mut uids: Vec<u32> = timed("imap search", conn.session.uid_search("UNSEEN"))
            .await?
            .into_iter()
            .filter(|uid| !self.passed_over.contains(&(validity, *uid)))
            .collect();
        uids.sort_unstable();
        let mut stats = CheckStats::default();
        for uid in uids {
            self.handle(conn, uid, &mut stats).await?;
        }
        Ok(stats)
    }

    /// One message: fetched (size first), read, acted on, marked read
    /// unless it must be seen again.
    async fn handle(
        &mut self,
        conn: &mut Connected,
        uid: u32,
        stats: &mut CheckStats,
    ) -> Result<(), GatewayError> {
        let size = fetch(&mut conn.session, uid, "RFC822.SIZE")
            .await?
            .and_then(|f| f.size)
            .unwrap_or(0) as usize;
        let mail = if size > MAX_MESSAGE_BYTES {
            Err(GatewayError::parse(
                CHANNEL,
                format!("message of {size} bytes; at most {MAX_MESSAGE_BYTES} are read"),
            ))
        } else {
            match fetch(&mut conn.session, uid, "BODY.PEEK[]").await? {
                // Gone meanwhile (deleted by the owner's own mail client).
                None => return Ok(()),
                Some(f) => parse_message(f.body().unwrap_or_default(), &self.rules),
            }
        };
        let trail = self.dispatcher.trail();
        match mail {
            Err(e) => {
                tracing::info!(uid, error = %e, "an unreadable e-mail");
                self.dispatcher.reject_malformed(CHANNEL, &e).await?;
                stats.malformed += 1;
            }
            Ok(Mail::NotForUs) => {
                if self.passed_over.len() >= MAX_PASSED_OVER {
                    self.passed_over.clear();
                }
                self.passed_over.insert((conn.uid_validity, uid));
                stats.passed_over += 1;
                return Ok(());
            }
            Ok(Mail::Ignored(why)) => {
                tracing::info!(uid, why, "an e-mail ignored");
                stats.ignored += 1;
            }
            Ok(Mail::Refused(refused)) => {
                audit_refused(trail, &self.rules.channel, &refused).await?;
                stats.refused += 1;
            }
            Ok(Mail::Message {
                event_id,
                inbound,
                thread,
            }) => {
                let (channel, chat) = (inbound.channel().to_string(), inbound.chat().to_string());
                self.sender.note_thread(&chat, thread);
                let id = event_id.unwrap_or_else(|| format!("uid:{}:{uid}", conn.uid_validity));
                match self.dispatcher.dispatch(Some(&id), inbound).await {
                    Ok(Dispatched::Handled { reply, .. }) => {
                        stats.dispatched += 1;
                        // Sent before the message is marked: marking it may
                        // fail, and the replay guard stops a second answer.
                        if let Some(text) = reply {
                            let _ = self
                                .dispatcher
                                .replies()
                                .deliver(&channel, &chat, &text)
                                .await;
                        }
                    }
                    Ok(Dispatched::Replay) => {}
                    Err(
                        e
                        @ (GatewayError::ValidateInbound { .. } | GatewayError::ParseEvent { .. }),
                    ) => {
                        self.dispatcher.reject_malformed(CHANNEL, &e).await?;
                        stats.malformed += 1;
                    }
                    // Left unread: the next session reads it again.
                    Err(e) => return Err(e),
                }
            }
        }
        mark_seen(&mut conn.session, uid).await
    }

    /// The loop: a session at a time until `shutdown`; a failed one is shown
    /// through `pacer` and followed by a paced reconnect.
    pub async fn run(mut self, mut pacer: Pacer, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let began = std::time::Instant::now();
            let go_on = match self.session(&mut pacer, &mut shutdown).await {
                Ok(()) => pacer.ended(began, false, &mut shutdown).await,
                Err(e) => {
                    tracing::warn!(error = %e, "e-mail session ended");
                    pacer.failed(&e.to_string(), &mut shutdown).await
                }
            };
            if !go_on {
                return;
            }
        }
    }

    /// One session: connect, then check and wait for mail until an error or
    /// `shutdown` (then `Ok`).
    async fn session(
        &mut self,
        pacer: &mut Pacer,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), GatewayError> {
        let mut conn = self.connect().await?;
        // What the server said between commands (EXISTS for new mail).
        let news = conn.session.unsolicited_responses.clone();
        loop {
            new_mail(&news);
            self.check(&mut conn).await?;
            pacer.worked();
            if new_mail(&news) {
                // Arrived while checking: checked again before waiting.
                continue;
            }
            if !conn.idle {
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return Ok(()),
                    _ = tokio::time::sleep(POLL_EVERY) => continue,
                }
            }
            let mut handle = conn.session.idle();
            timed("imap idle", handle.init()).await?;
            // Said before the server's go-ahead: the wait would not see it.
            let woke = if new_mail(&news) {
                Ok(IdleResponse::Timeout)
            } else {
                let (wait, _stop) = handle.wait_with_timeout(IDLE_RENEW);
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return Ok(()),
                    // A keepalive resets the crate's own timeout: this one
                    // holds whatever the server sends.
                    _ = tokio::time::sleep(IDLE_RENEW) => Ok(IdleResponse::Timeout),
                    r = wait => r,
                }
            };
            woke.map_err(|e| imap_error("imap idle", e))?;
            conn.session = timed("imap idle done", handle.done()).await?;
        }
    }
}

/// Empties the unsolicited responses; true when one said new mail may be
/// there (EXISTS, RECENT).
fn new_mail(news: &async_channel::Receiver<UnsolicitedResponse>) -> bool {
    let mut any = false;
    while let Ok(r) = news.try_recv() {
        any |= matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        );
    }
    any
}

/// The one FETCH answer for `uid`, if the message is still there.
async fn fetch(
    session: &mut Session,
    uid: u32,
    query: &str,
) -> Result<Option<async_imap::types::Fetch>, GatewayError> {
    let fetches: Vec<_> = timed("imap fetch", async {
        session
            .uid_fetch(uid.to_string(), query)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    Ok(fetches.into_iter().find(|f| f.uid == Some(uid)))
}

async fn mark_seen(session: &mut Session, uid: u32) -> Result<(), GatewayError> {
    timed("imap store", async {
        session
            .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Seen)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    Ok(())
}
