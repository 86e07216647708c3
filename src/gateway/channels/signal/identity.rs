//! Trust on first use, carefully (the seed's line for Signal). Before a
//! message is acted on, its sender's identity is looked up with signal-cli
//! (`listIdentities`): a key signal-cli holds `UNTRUSTED` (it changed after
//! the first contact), or a safety number other than the one kept for the
//! sender ([`crate::gateway::identities`]: first seen, or confirmed by the
//! owner), pauses the sender. A paused sender's messages are not run and get
//! no answer (nor does a task of theirs started before the pause); the
//! owner sees the change (the audited `gateway.safety_number_changed` with
//! the sender and the new number, and the channel's problem on the settings
//! page) until `coworkctl channels trust CHANNEL ACI NUMBER` confirms the
//! number
//! ([`super::client::SignalSender::confirm`]), which resumes the sender.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Most senders kept paused (past it the oldest pause is not forgotten: new
/// ones are refused the same way, see [`Identities::pause`]).
const MAX_PAUSED: usize = 1000;

/// The senders paused on one channel, by ACI, with the safety number that
/// paused them; shared by the connection and the channel's outbound.
#[derive(Debug, Default)]
pub struct Identities {
    paused: Mutex<BTreeMap<String, String>>,
    /// Wakes the connection to show the change on the settings page.
    changed: Notify,
}

impl Identities {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.paused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `sender` is paused.
    pub fn is_paused(&self, sender: &str) -> bool {
        self.lock().contains_key(sender)
    }

    /// Pauses `sender`, whose safety number is now `number`; true when it
    /// was not paused already (or paused for another number).
    pub fn pause(&self, sender: &str, number: &str) -> bool {
        let mut paused = self.lock();
        if paused.get(sender).is_some_and(|n| n == number) {
            return false;
        }
        if paused.len() >= MAX_PAUSED && !paused.contains_key(sender) {
            // Beyond the bound the sender is still refused (checked again
            // on every message), it is only not listed on the page.
            return true;
        }
        paused.insert(sender.to_string(), number.to_string());
        drop(paused);
        self.changed.notify_one();
        true
    }

    /// The owner confirmed `sender`: answered again.
    pub fn resume(&self, sender: &str) {
        if self.lock().remove(sender).is_some() {
            self.changed.notify_one();
        }
    }

    /// Resolves when a sender was paused or resumed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The problem to show for the channel `channel`, while any sender is
    /// paused.
    pub fn problem(&self, channel: &str) -> Option<String> {
        let paused = self.lock();
        let (sender, number) = paused.iter().next()?;
        let more = match paused.len() {
            1 => String::new(),
            n => format!(" (and {} more senders)", n - 1),
        };
        Some(format!(
            "paused: the safety number of {sender} changed to {number}{more}; \
             compare it with the person, then run `coworkctl channels trust {channel} {sender} {number}`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_resume_and_the_problem() {
        let ids = Identities::default();
        assert_eq!(ids.problem("sig"), None);
        assert!(ids.pause("a", "1"));
        assert!(!ids.pause("a", "1"));
        assert!(ids.pause("a", "2"));
        assert!(ids.is_paused("a"));
        assert!(ids.problem("sig").unwrap().contains("trust sig a 2"));
        ids.resume("a");
        assert!(!ids.is_paused("a"));
        assert_eq!(ids.problem("sig"), None);
    }
}
