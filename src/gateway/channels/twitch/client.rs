//! The way out: an answer to a room becomes `PRIVMSG #channel :text` lines
//! of at most [`TWITCH_MAX_CHARS`] characters, each replying to the room's
//! last message (`@reply-parent-msg-id=`), queued for the connection, which
//! sends them at most [`WINDOW_MESSAGES`] in any [`WINDOW`] ([`SendWindow`]).
//! Line breaks in an answer become spaces: a text can never end its line
//! and start another command. The queue is bounded: an answer that does not
//! fit is refused with an error (logged here and by the outbound path; a
//! task notes it in the trail), never dropped silently; one that fits waits its turn.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::irc::{command, is_plain_tag_value};
use super::parse::{CHANNEL, is_login};
use crate::gateway::channels::{ChatMemory, queue_whole};
use crate::gateway::chunk::chunk_text;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;

/// Longest chat message Twitch accepts, in characters.
pub const TWITCH_MAX_CHARS: usize = 500;
/// Messages a bot may send in any [`WINDOW`] (Twitch's limit for a bot
/// that is not a moderator of every channel it writes in is lower still,
/// which is why the owner makes it one).
pub const WINDOW_MESSAGES: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(30);
/// Most lines waiting to be sent (about 10 minutes at the limit).
pub const QUEUE_LINES: usize = 400;
/// Most rooms whose channel and last message are remembered.
const MAX_ROOMS: usize = 10_000;

/// At most `limit` sends in any `window`: the send times of the last
/// `limit` are kept, and the next waits until the oldest is `window` old.
/// (A token bucket refilled at `limit / window` would let 2 × `limit`
/// through within one window after a burst; this never does.)
#[derive(Debug)]
pub struct SendWindow {
    sent: VecDeque<Instant>,
    limit: usize,
    window: Duration,
}

impl SendWindow {
    pub fn new(limit: usize, window: Duration) -> SendWindow {
        SendWindow {
            sent: VecDeque::with_capacity(limit),
            limit: limit.max(1),
            window,
        }
    }

    /// When the next message may go (`now` or later).
    pub fn next_free(&self, now: Instant) -> Instant {
        if self.sent.len() < self.limit {
            return now;
        }
        self.sent
            .front()
            .map_or(now, |oldest| (*oldest + self.window).max(now))
    }

    /// A message went at `now`.
    pub fn record(&mut self, now: Instant) {
        if self.sent.len() >= self.limit {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
    }
}

/// Queues answers for the connection.
#[derive(Debug)]
pub struct TwitchSender {
    queue: mpsc::Sender<String>,
    /// Each room's `#channel` (login), from its messages.
    rooms: ChatMemory,
    /// Each room's last message id, the parent of the answers.
    parents: ChatMemory,
}

fn send_err(reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation: "send message",
        reason: reason.into(),
    }
}

impl TwitchSender {
    /// The sender, and the queue's end the connection reads.
    pub fn new() -> (TwitchSender, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        (
            TwitchSender {
                queue: tx,
                rooms: ChatMemory::new(MAX_ROOMS),
                parents: ChatMemory::new(MAX_ROOMS),
            },
            rx,
        )
    }

    /// A message `message_id` came in `room` on `#channel`.
    pub fn note(&self, room: &str, channel: &str, message_id: &str) {
        self.rooms.note(room, channel);
        self.parents.note(room, message_id);
    }

    /// The lines that answer `room` with `text`.
    pub fn lines(&self, room: &str, text: &str) -> Result<Vec<String>, GatewayError> {
        let channel = self
            .rooms
            .get(room)
            .filter(|c| is_login(c))
            .ok_or_else(|| {
                send_err("no message came from this room yet: its channel is unknown")
            })?;
        let target = format!("#{channel}");
        let parent = self.parents.get(room).filter(|p| is_plain_tag_value(p));
        let tags: Vec<(&str, &str)> = parent
            .as_deref()
            .map(|p| ("reply-parent-msg-id", p))
            .into_iter()
            .collect();
        let flat: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        chunk_text(flat.trim(), TWITCH_MAX_CHARS)
            .iter()
            .map(|part| command(&tags, "PRIVMSG", &[&target, part]).map_err(send_err))
            .collect()
    }

    /// Queues the answer to `room`; an error when the queue is full (logged
    /// here and by the outbound path).
    pub fn queue(&self, room: &str, text: &str) -> Result<(), GatewayError> {
        let lines = self.lines(room, text)?;
        queue_whole(&self.queue, lines, CHANNEL).map_err(|why| {
            send_err(format!(
                "the send queue is full ({QUEUE_LINES} lines wait for Twitch's rate limit: {why}); answer not sent"
            ))
        })
    }
}

impl Outbound for TwitchSender {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move { self.queue(chat, text) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_lets_twenty_through_then_waits_for_the_oldest() {
        let start = Instant::now();
        let mut w = SendWindow::new(20, WINDOW);
        for i in 0..20 {
            let at = start + Duration::from_millis(i * 100);
            assert_eq!(w.next_free(at), at);
            w.record(at);
        }
        let now = start + Duration::from_secs(2);
        assert_eq!(w.next_free(now), start + WINDOW);
        w.record(start + WINDOW);
        assert_eq!(
            w.next_free(start + WINDOW),
            start + WINDOW + Duration::from_millis(100)
        );
    }

    #[test]
    fn answers_are_lines_of_the_room_never_two_commands() {
        let (s, _rx) = TwitchSender::new();
        assert!(s.lines("1000", "hi").is_err(), "unknown room");
        s.note("1000", "owner", "abc-1");
        assert_eq!(
            s.lines("1000", "hi\r\nJOIN #evil").unwrap(),
            ["@reply-parent-msg-id=abc-1 PRIVMSG #owner :hi  JOIN #evil\r\n"]
        );
        let lines = s.lines("1000", &"x".repeat(600)).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.matches("\r\n").count() == 1));
    }

    #[test]
    fn a_full_queue_refuses() {
        let (s, _rx) = TwitchSender::new();
        s.note("1", "owner", "m");
        for _ in 0..QUEUE_LINES {
            s.queue("1", "x").unwrap();
        }
        assert!(
            s.queue("1", "x")
                .unwrap_err()
                .to_string()
                .contains("queue is full")
        );
    }
}
