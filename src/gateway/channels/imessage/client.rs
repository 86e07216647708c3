//! The way out: an answer to a chat becomes `send` requests of `imsg rpc`
//! (`{"method": "send", "params": {"chat_id": N, "text": …}}`), one per
//! chunk of at most [`IMESSAGE_MAX_CHARS`] characters, queued for the
//! connection, which writes them in order. The queue is bounded: an answer
//! that does not fit is refused with an error (logged here and by the
//! outbound path), never dropped silently. The text travels as a JSON
//! string, so nothing in it can start another request.

use tokio::sync::mpsc;

use super::parse::{CHANNEL, is_chat_id};
use crate::gateway::channels::queue_whole;
use crate::gateway::chunk::chunk_text;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;

/// Longest message sent at once, in characters (Messages takes far longer
/// ones; shorter ones read better on a phone).
pub const IMESSAGE_MAX_CHARS: usize = 4000;
/// Most chunks waiting for the connection.
pub const QUEUE_CHUNKS: usize = 256;

/// One chunk to send: the chat's row id and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub chat_id: i64,
    pub text: String,
}

/// Queues answers for the connection.
#[derive(Debug)]
pub struct ImessageSender {
    queue: mpsc::Sender<Chunk>,
}

fn send_err(reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation: "send message",
        reason: reason.into(),
    }
}

impl ImessageSender {
    /// The sender, and the queue's end the connection reads.
    pub fn new() -> (ImessageSender, mpsc::Receiver<Chunk>) {
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        (ImessageSender { queue: tx }, rx)
    }

    /// The chunks that answer `chat` with `text`.
    pub fn chunks(chat: &str, text: &str) -> Result<Vec<Chunk>, GatewayError> {
        let chat_id: i64 = Some(chat)
            .filter(|c| is_chat_id(c))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| send_err("the chat is not an imsg chat id"))?;
        Ok(chunk_text(text.trim(), IMESSAGE_MAX_CHARS)
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .map(|text| Chunk { chat_id, text })
            .collect())
    }

    /// Queues the answer to `chat`; an error when the queue is full.
    pub fn queue(&self, chat: &str, text: &str) -> Result<(), GatewayError> {
        let chunks = Self::chunks(chat, text)?;
        queue_whole(&self.queue, chunks, CHANNEL).map_err(|why| {
            send_err(format!(
                "the send queue is full ({QUEUE_CHUNKS} messages wait for the Mac: {why}); answer not sent"
            ))
        })
    }
}

impl Outbound for ImessageSender {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move { self.queue(chat, text) })
    }
}

/// The `send` request `id` for `chunk`, one line.
pub fn send_request(id: u64, chunk: &Chunk) -> String {
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "send",
        "params": {"chat_id": chunk.chat_id, "text": chunk.text},
    });
    format!("{request}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_chunks_of_a_chat_id_one_line_each() {
        assert!(ImessageSender::chunks("+15551234567", "hi").is_err());
        assert!(ImessageSender::chunks("0", "hi").is_err());
        let chunks = ImessageSender::chunks("12", &"x".repeat(IMESSAGE_MAX_CHARS + 1)).unwrap();
        assert_eq!(chunks.len(), 2);
        let line = send_request(
            3,
            &Chunk {
                chat_id: 12,
                text: "a\n\"b\"".into(),
            },
        );
        assert_eq!(line.matches('\n').count(), 1);
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["params"]["text"], "a\n\"b\"");
        assert_eq!(back["params"]["chat_id"], 12);
    }

    #[test]
    fn a_full_queue_refuses() {
        let (s, _rx) = ImessageSender::new();
        for _ in 0..QUEUE_CHUNKS {
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
