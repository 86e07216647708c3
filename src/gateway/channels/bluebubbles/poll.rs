//! Polling instead of the webhook (`bluebubbles-polling`: the Mac need not
//! reach the appliance): the server's messages created since the last poll,
//! asked for about once a second through the [`Pacer`] (a failure waits 1 s
//! doubling to 60 s and shows on the settings page). Only messages created
//! after the channel started are read: history is never answered.
//!
//! `after` is inclusive of its millisecond, so the guids seen at the newest
//! millisecond are kept and skipped (a message is dispatched once, and not
//! audited as a replay every second); the replay guard still drops a message
//! the webhook or an earlier run already handled.

use std::collections::HashSet;
use std::sync::Arc;

use super::client::BlueBubblesClient;
use super::parse::{BlueBubbles, BlueBubblesEvent, CHANNEL};
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::pacer::{Pacer, run_polls};

/// Where a poll starts: the newest millisecond read and the guids read at it.
#[derive(Debug)]
pub struct Cursor {
    after_ms: i64,
    at_newest: HashSet<String>,
}

impl Cursor {
    /// Reads what is created from `now` (Unix seconds) on.
    pub fn from(now: i64) -> Cursor {
        Cursor {
            after_ms: now.saturating_mul(1000),
            at_newest: HashSet::new(),
        }
    }

    /// Whether the message (`guid`, created at `date_ms`) is new; moves on.
    fn take(&mut self, guid: &str, date_ms: i64) -> bool {
        if date_ms < self.after_ms || (date_ms == self.after_ms && self.at_newest.contains(guid)) {
            return false;
        }
        if date_ms > self.after_ms {
            self.after_ms = date_ms;
            self.at_newest.clear();
        }
        self.at_newest.insert(guid.to_string());
        true
    }
}

/// One poll: each new message parsed and dispatched (a malformed one
/// audited); how many came.
pub async fn poll_once(
    client: &BlueBubblesClient,
    parser: &BlueBubbles,
    dispatcher: &Dispatcher,
    cursor: &mut Cursor,
) -> Result<usize, GatewayError> {
    let messages = client.messages_after(cursor.after_ms).await?;
    let count = messages.len();
    for m in messages {
        let (Some(guid), Some(date_ms)) = (
            m.get("guid").and_then(|g| g.as_str()).map(str::to_string),
            m.get("dateCreated").and_then(|d| d.as_i64()),
        ) else {
            let e = GatewayError::parse(CHANNEL, "polled message without guid or dateCreated");
            dispatcher.reject_malformed(CHANNEL, &e).await?;
            continue;
        };
        if !cursor.take(&guid, date_ms) {
            continue;
        }
        match parser.message(m, dispatcher.clock().now()) {
            Ok(BlueBubblesEvent::Message { guid, inbound }) => {
                dispatcher
                    .dispatch_and_answer(CHANNEL, Some(&guid), *inbound)
                    .await?
            }
            Ok(BlueBubblesEvent::Ignored { .. }) => {}
            Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await?,
        }
    }
    Ok(count)
}

/// Polls until `shutdown`, paced by `pacer`.
pub async fn run_polling(
    client: Arc<BlueBubblesClient>,
    parser: Arc<BlueBubbles>,
    dispatcher: Arc<Dispatcher>,
    pacer: Pacer,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let cursor = Cursor::from(dispatcher.clock().now());
    let state = Poller {
        client,
        parser,
        dispatcher,
        cursor,
    };
    run_polls(pacer, shutdown, "bluebubbles poll", state, poll).await;
}

/// What the polling loop holds.
struct Poller {
    client: Arc<BlueBubblesClient>,
    parser: Arc<BlueBubbles>,
    dispatcher: Arc<Dispatcher>,
    cursor: Cursor,
}

fn poll(p: &mut Poller) -> BoxFuture<'_, Result<usize, GatewayError>> {
    Box::pin(poll_once(
        &p.client,
        &p.parser,
        &p.dispatcher,
        &mut p.cursor,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_reads_each_message_once_and_never_history() {
        let mut c = Cursor::from(1000);
        assert!(!c.take("old", 999_999));
        assert!(c.take("a", 1_000_000));
        assert!(!c.take("a", 1_000_000), "the same message at the same ms");
        assert!(c.take("b", 1_000_000), "another at the same ms");
        assert!(c.take("c", 1_000_005));
        assert!(!c.take("b", 1_000_000), "behind the cursor now");
        assert_eq!(c.after_ms, 1_000_005);
    }
}
