//! systemd's notify protocol (READY, WATCHDOG, STATUS, STOPPING). A no-op when
//! NOTIFY_SOCKET is not set.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Default)]
pub struct Notifier {
    last_status: String,
    ready_sent: bool,
}

impl Notifier {
    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog_interval() -> Option<Duration> {
        let mut usec = 0u64;
        if sd_notify::watchdog_enabled(false, &mut usec) {
            Some(Duration::from_micros(usec))
        } else {
            None
        }
    }

    pub fn ready(&mut self) {
        if !self.ready_sent {
            self.ready_sent = true;
            send(&[NotifyState::Ready]);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready_sent
    }

    pub fn watchdog(&self) {
        send(&[NotifyState::Watchdog]);
    }

    pub fn status(&mut self, line: &str) {
        if self.last_status != line {
            self.last_status = line.to_string();
            send(&[NotifyState::Status(line)]);
        }
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping]);
    }

    pub fn reloading(&self) {
        send(&[NotifyState::Reloading]);
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}
