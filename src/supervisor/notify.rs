//! systemd's notify protocol (READY, WATCHDOG, STATUS, STOPPING, RELOADING). A
//! no-op when NOTIFY_SOCKET is not set.
//!
//! Datagrams are sent from a thread of their own: a notify socket whose reader
//! stalls would otherwise block the supervisor's only runtime thread (sendto on a
//! full Unix datagram queue blocks). If that thread falls behind, updates are
//! dropped (status lines are superseded anyway) rather than the supervisor stopping.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use sd_notify::NotifyState;

/// Notifications waiting for the sender thread.
const QUEUE: usize = 64;

#[derive(Debug, Clone)]
enum Message {
    Ready,
    Watchdog,
    Status(String),
    Stopping,
}

#[derive(Debug)]
pub struct Notifier {
    last_status: String,
    ready_sent: bool,
    tx: Option<SyncSender<Message>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new()
    }
}

impl Notifier {
    pub fn new() -> Notifier {
        let tx = std::env::var_os("NOTIFY_SOCKET").and_then(|_| {
            let (tx, rx) = sync_channel::<Message>(QUEUE);
            std::thread::Builder::new()
                .name("sd-notify".into())
                .spawn(move || {
                    while let Ok(m) = rx.recv() {
                        let status;
                        let states: &[NotifyState<'_>] = match &m {
                            Message::Ready => &[NotifyState::Ready],
                            Message::Watchdog => &[NotifyState::Watchdog],
                            Message::Status(s) => {
                                status = [NotifyState::Status(s)];
                                &status
                            }
                            Message::Stopping => &[NotifyState::Stopping],
                        };
                        if let Err(e) = sd_notify::notify(false, states) {
                            tracing::warn!(error = %e, "sd_notify failed");
                        }
                    }
                })
                .ok()
                .map(|_| tx)
        });
        Notifier {
            last_status: String::new(),
            ready_sent: false,
            tx,
        }
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog_interval() -> Option<Duration> {
        let mut usec = 0u64;
        if sd_notify::watchdog_enabled(false, &mut usec) {
            Some(Duration::from_micros(usec))
        } else {
            None
        }
    }

    fn send(&self, m: Message) {
        if let Some(tx) = &self.tx {
            match tx.try_send(m) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(m)) => {
                    tracing::debug!(message = ?m, "notify socket is not being read; update dropped")
                }
            }
        }
    }

    pub fn ready(&mut self) {
        if !self.ready_sent {
            self.ready_sent = true;
            self.send(Message::Ready);
        }
    }

    pub fn watchdog(&self) {
        self.send(Message::Watchdog);
    }

    pub fn status(&mut self, line: &str) {
        if self.last_status != line {
            self.last_status = line.to_string();
            self.send(Message::Status(line.to_string()));
        }
    }

    pub fn stopping(&self) {
        self.send(Message::Stopping);
    }
}
