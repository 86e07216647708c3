//! The one way out to a chat: every text the appliance sends to a chat (the
//! dispatcher's answer to a message, and every later reply of the task it
//! started) goes through [`Replies::deliver`] to the channel's [`Outbound`]
//! (its platform client, which splits text to the platform's limit, see
//! [`crate::gateway::chunk`]) or, for the `local` channel, into an inbox per
//! chat that `coworkctl chat` polls. The runner registers each started
//! channel's outbound under its configured name.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::gateway::error::GatewayError;
use crate::gateway::inbound::LOCAL_CHANNEL;
use crate::gateway::sinks::BoxFuture;

/// Replies kept per local chat until polled (older ones are dropped).
const LOCAL_INBOX_CAP: usize = 100;

/// A channel's way of sending a message to a chat (chunked to its limit).
pub trait Outbound: Send + Sync + std::fmt::Debug {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>>;

    /// The owner confirms `sender`'s safety number (`coworkctl channels
    /// trust`): the channel marks it verified with its platform and resumes
    /// the sender. Only a platform with safety numbers (Signal) has them.
    fn confirm_identity<'a>(
        &'a self,
        _sender: &'a str,
        _safety_number: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async {
            Err(GatewayError::ChannelApi {
                channel: "gateway",
                operation: "confirm identity",
                reason: "this channel's platform has no safety numbers to confirm".into(),
            })
        })
    }
}

/// The reply paths of every running channel.
#[derive(Debug, Default)]
pub struct Replies {
    channels: Mutex<HashMap<String, Arc<dyn Outbound>>>,
    local: Mutex<HashMap<String, VecDeque<String>>>,
}

impl Replies {
    /// Set (or replace, after a transport restart) `channel`'s reply path.
    pub fn register(&self, channel: &str, out: Arc<dyn Outbound>) {
        lock(&self.channels).insert(channel.to_string(), out);
    }

    /// Drops the reply paths of channels not in `running` (removed from the
    /// configuration or failing to start at a restart), so a late reply on
    /// one says it has no running transport rather than going out through a
    /// client built from old settings.
    pub fn retain(&self, running: &[&str]) {
        lock(&self.channels).retain(|name, _| running.contains(&name.as_str()));
    }

    /// Deliver `text` to `chat` on `channel`. A failure is logged (never the
    /// text) and reported to the caller (a task notes it in the trail).
    pub async fn deliver(&self, channel: &str, chat: &str, text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        if channel == LOCAL_CHANNEL {
            let mut local = lock(&self.local);
            let inbox = local.entry(chat.to_string()).or_default();
            if inbox.len() >= LOCAL_INBOX_CAP {
                inbox.pop_front();
            }
            inbox.push_back(text.to_string());
            return Ok(());
        }
        let out = lock(&self.channels).get(channel).cloned();
        let Some(out) = out else {
            tracing::warn!(%channel, "no reply path for this channel; a reply was dropped");
            return Err(format!("channel {channel} has no running transport"));
        };
        out.send(chat, text).await.map_err(|e| {
            tracing::warn!(%channel, error = %e, "a reply could not be sent");
            e.to_string()
        })
    }

    /// Hands the owner's confirmation of `sender`'s safety number to the
    /// running `channel` ([`Outbound::confirm_identity`]).
    pub async fn confirm_identity(
        &self,
        channel: &str,
        sender: &str,
        safety_number: &str,
    ) -> Result<(), String> {
        let out = lock(&self.channels).get(channel).cloned();
        let Some(out) = out else {
            return Err(format!("channel {channel} has no running transport"));
        };
        out.confirm_identity(sender, safety_number)
            .await
            .map_err(|e| e.to_string())
    }

    /// Delivers in a spawned task, so the caller (a webhook answering within
    /// the platform's deadline) does not wait on the platform's API; several
    /// `texts` go out in order.
    pub fn deliver_later(self: &Arc<Self>, channel: &str, chat: &str, texts: Vec<String>) {
        let (this, channel, chat) = (Arc::clone(self), channel.to_string(), chat.to_string());
        tokio::spawn(async move {
            for text in texts {
                if this.deliver(&channel, &chat, &text).await.is_err() {
                    return;
                }
            }
        });
    }

    /// The replies waiting for a local chat, oldest first; the inbox is emptied.
    pub fn take_local(&self, chat: &str) -> Vec<String> {
        lock(&self.local)
            .remove(chat)
            .map(Vec::from)
            .unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_inbox_is_capped_and_emptied() {
        let r = Replies::default();
        for i in 0..(LOCAL_INBOX_CAP + 5) {
            r.deliver(LOCAL_CHANNEL, "uid:1", &format!("m{i}"))
                .await
                .unwrap();
        }
        let got = r.take_local("uid:1");
        assert_eq!(got.len(), LOCAL_INBOX_CAP);
        assert_eq!(got[0], "m5");
        assert!(r.take_local("uid:1").is_empty());
        assert!(r.take_local("uid:2").is_empty());
        assert!(r.deliver("telegram", "1", "x").await.is_err());
    }
}
