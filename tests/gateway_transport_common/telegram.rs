//! A local fake of the Telegram Bot API for tests that run the real appliance:
//! `getUpdates` serves the queued updates from the requested offset (a short
//! long-poll when there are none), `sendMessage` records (chat id, text).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Telegram {
    pub updates: Vec<Value>,
    pub sent: Vec<(String, String)>,
    /// Wakes a waiting `getUpdates` when an update is queued.
    arrived: Arc<tokio::sync::Notify>,
}

impl Telegram {
    /// Queues an update for the bot's next `getUpdates`.
    pub fn push(&mut self, update: Value) {
        self.updates.push(update);
        self.arrived.notify_waiters();
    }
}

pub type SharedTelegram = Arc<Mutex<Telegram>>;

/// The Bot API under `/{bot}/{method}`, for the bot whose token is `token`.
pub fn router(fake: SharedTelegram, token: &'static str) -> Router {
    Router::new()
        .route("/{bot}/{method}", post(handle))
        .with_state((fake, token))
}

async fn handle(
    State((f, token)): State<(SharedTelegram, &'static str)>,
    Path((bot, method)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if bot != format!("bot{token}") {
        // As the real Bot API answers a wrong token.
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        );
    }
    let answer = match method.as_str() {
        "getUpdates" => {
            let offset = body["offset"].as_i64();
            let (result, arrived) = {
                let f = f.lock().unwrap();
                let result: Vec<Value> = f
                    .updates
                    .iter()
                    .filter(|u| offset.is_none_or(|o| u["update_id"].as_i64().unwrap() >= o))
                    .cloned()
                    .collect();
                (result, Arc::clone(&f.arrived))
            };
            if result.is_empty() {
                // A short long-poll: answered empty after 2 s or when an
                // update arrives (the client then asks again at once).
                let _ = tokio::time::timeout(Duration::from_secs(2), arrived.notified()).await;
            }
            Json(json!({"ok": true, "result": result}))
        }
        "sendMessage" => {
            let chat = body["chat_id"].to_string().trim_matches('"').to_string();
            f.lock()
                .unwrap()
                .sent
                .push((chat, body["text"].as_str().unwrap().to_string()));
            Json(json!({"ok": true, "result": {"message_id": 1}}))
        }
        _ => Json(json!({"ok": false})),
    };
    (StatusCode::OK, answer)
}

/// A private message from user `from`.
pub fn dm(update_id: i64, from: i64, text: &str) -> Value {
    message(
        update_id,
        from,
        json!({"id": from, "type": "private"}),
        text,
    )
}

/// A message from user `from` in the group chat `chat` (a negative id),
/// starting with a mention of `@bot`.
pub fn group_mention(update_id: i64, chat: i64, from: i64, bot: &str, text: &str) -> Value {
    let mention = format!("@{bot}");
    let mut m = message(
        update_id,
        from,
        json!({"id": chat, "type": "group", "title": "Team"}),
        &format!("{mention} {text}"),
    );
    m["message"]["entities"] =
        json!([{"type": "mention", "offset": 0, "length": mention.encode_utf16().count()}]);
    m
}

fn message(update_id: i64, from: i64, chat: Value, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_800_000_000,
            "from": {"id": from, "is_bot": false, "first_name": "Ada"},
            "chat": chat,
            "text": text,
        }
    })
}
