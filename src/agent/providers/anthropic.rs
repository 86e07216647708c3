//! Anthropic Messages API: `POST /v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; tool use; streaming via SSE
//! (`message_start`, `content_block_start/delta/stop`, `message_delta`,
//! `message_stop`, `ping`, `error`).

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::retry::{AttemptError, classify_status, parse_retry_after, with_retry};
use super::sse::SseParser;
use super::{
    MAX_ERROR_BODY_BYTES, MAX_RESPONSE_BYTES, Provider, ProviderConfig, body_read_error,
    build_client, json_what, read_capped, too_large, transport_kind,
};
use crate::agent::error::ProviderError;
use crate::agent::types::{
    ChatRequest, ChatResponse, ContentBlock, Role, StopReason, Usage, bounded,
};

const NAME: &str = "anthropic";
const API_VERSION: &str = "2023-06-01";

/// Client of the Anthropic Messages API.
#[derive(Debug)]
pub struct AnthropicProvider {
    config: ProviderConfig,
    client: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        let client = build_client(NAME, &config)?;
        Ok(AnthropicProvider { config, client })
    }

    async fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut h = HeaderMap::new();
        h.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(name) = &self.config.secret_name {
            let key =
                self.config
                    .secrets
                    .get(name)
                    .await
                    .ok_or_else(|| ProviderError::FetchSecret {
                        provider: NAME,
                        name: name.clone(),
                    })?;
            let mut v = HeaderValue::from_str(key.expose()).map_err(|_| {
                ProviderError::ParseCredentials {
                    provider: NAME,
                    name: name.clone(),
                }
            })?;
            v.set_sensitive(true);
            h.insert("x-api-key", v);
        }
        Ok(h)
    }

    async fn attempt(
        &self,
        body: &Value,
        stream: bool,
        n: u32,
    ) -> Result<ChatResponse, AttemptError> {
        let headers = self.headers().await.map_err(AttemptError::Fatal)?;
        let resp = self
            .client
            .post(self.config.url("/v1/messages"))
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(|e| AttemptError::Retry {
                error: ProviderError::Connect {
                    provider: NAME,
                    kind: transport_kind(&e),
                    attempts: n,
                },
                after: None,
            })?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let detail = error_type(resp).await;
            return Err(classify_status(NAME, status, retry_after, detail, n));
        }
        // A server may ignore `stream: true` and answer whole.
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if stream && !is_json {
            read_stream(resp, n).await
        } else {
            let bytes = read_capped(NAME, resp, MAX_RESPONSE_BYTES, n).await?;
            let wire: WireMessage = serde_json::from_slice(&bytes).map_err(|e| {
                AttemptError::Fatal(ProviderError::ParseResponse {
                    provider: NAME,
                    what: json_what(&e),
                })
            })?;
            wire.into_response().map_err(AttemptError::Fatal)
        }
    }
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, ProviderError> {
        let stream = self.config.http.stream;
        let body = request_body(request, stream);
        with_retry(NAME, &self.config.http, cancel, |n| {
            self.attempt(&body, stream, n)
        })
        .await
    }
}

/// The JSON body of a Messages API request.
pub(crate) fn request_body(req: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let content: Vec<Value> = m
                .content
                .iter()
                .map(|b| match b {
                    ContentBlock::Text { text } => json!({"type": "text", "text": text}),
                    ContentBlock::ToolUse { id, name, input } => {
                        json!({"type": "tool_use", "id": id, "name": name, "input": input})
                    }
                    ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => json!({"type": "tool_result", "tool_use_id": tool_use_id,
                                "content": content, "is_error": is_error}),
                })
                .collect();
            json!({"role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
                   "content": content})
        })
        .collect();
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "messages": messages,
    });
    if !req.system.is_empty() {
        body["system"] = json!(req.system);
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// The `error.type` of an error body, bounded; never the message (it may echo input).
async fn error_type(resp: reqwest::Response) -> String {
    let Ok(bytes) = read_capped(NAME, resp, MAX_ERROR_BODY_BYTES, 0).await else {
        return String::new();
    };
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["type"].as_str().map(|s| bounded(s, 64)))
        .unwrap_or_default()
}

fn stop_reason(s: Option<&str>) -> StopReason {
    match s {
        Some("end_turn") | None => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        Some(other) => StopReason::Other(bounded(other, 64)),
    }
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Unknown,
}

impl WireMessage {
    fn into_response(self) -> Result<ChatResponse, ProviderError> {
        let content = self
            .content
            .into_iter()
            .filter_map(|b| match b {
                WireBlock::Text { text } => Some(ContentBlock::Text { text }),
                WireBlock::ToolUse { id, name, input } => Some(ContentBlock::ToolUse {
                    id,
                    name,
                    input: if input.is_null() { json!({}) } else { input },
                }),
                WireBlock::Unknown => None,
            })
            .collect();
        Ok(ChatResponse {
            content,
            stop_reason: stop_reason(self.stop_reason.as_deref()),
            usage: Usage {
                input_tokens: self.usage.input_tokens,
                output_tokens: self.usage.output_tokens,
            },
        })
    }
}

/// A content block being assembled from stream deltas.
#[derive(Debug)]
enum Partial {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Skip,
}

fn malformed(what: &str) -> AttemptError {
    AttemptError::Fatal(ProviderError::ParseResponse {
        provider: NAME,
        what: what.to_string(),
    })
}

/// Assemble a response from the SSE stream. A cut before any content event is
/// retryable; after, it is final.
async fn read_stream(resp: reqwest::Response, n: u32) -> Result<ChatResponse, AttemptError> {
    let mut parser = SseParser::default();
    let mut body = resp.bytes_stream();
    let mut blocks: Vec<Partial> = Vec::new();
    let mut usage = Usage::default();
    let mut stop: Option<String> = None;
    let mut received = false;
    let mut finished = false;
    let mut total = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_read_error(NAME, &e, received, n))?;
        total += chunk.len();
        if total > MAX_RESPONSE_BYTES {
            return Err(too_large(NAME));
        }
        for ev in parser.feed(&chunk).map_err(malformed)? {
            let data: Value = serde_json::from_str(&ev.data).map_err(|e| {
                AttemptError::Fatal(ProviderError::ParseResponse {
                    provider: NAME,
                    what: json_what(&e),
                })
            })?;
            let kind = if ev.event.is_empty() {
                data["type"].as_str().unwrap_or("").to_string()
            } else {
                ev.event.clone()
            };
            match kind.as_str() {
                "ping" => {}
                "message_start" => {
                    let u = &data["message"]["usage"];
                    usage.input_tokens = u["input_tokens"].as_u64().unwrap_or(0);
                    usage.output_tokens = u["output_tokens"].as_u64().unwrap_or(0);
                }
                "content_block_start" => {
                    received = true;
                    let idx = data["index"]
                        .as_u64()
                        .ok_or_else(|| malformed("block without index"))?
                        as usize;
                    let cb = &data["content_block"];
                    let part = match cb["type"].as_str() {
                        Some("text") => {
                            Partial::Text(cb["text"].as_str().unwrap_or("").to_string())
                        }
                        Some("tool_use") => Partial::Tool {
                            id: cb["id"].as_str().unwrap_or("").to_string(),
                            name: cb["name"].as_str().unwrap_or("").to_string(),
                            json: String::new(),
                        },
                        _ => Partial::Skip,
                    };
                    if idx != blocks.len() {
                        return Err(malformed("content block out of order"));
                    }
                    blocks.push(part);
                }
                "content_block_delta" => {
                    received = true;
                    let idx = data["index"]
                        .as_u64()
                        .ok_or_else(|| malformed("delta without index"))?
                        as usize;
                    let block = blocks
                        .get_mut(idx)
                        .ok_or_else(|| malformed("delta for an unknown block"))?;
                    let d = &data["delta"];
                    match (d["type"].as_str(), block) {
                        (Some("text_delta"), Partial::Text(t)) => {
                            t.push_str(d["text"].as_str().unwrap_or(""))
                        }
                        (Some("input_json_delta"), Partial::Tool { json, .. }) => {
                            json.push_str(d["partial_json"].as_str().unwrap_or(""))
                        }
                        _ => {}
                    }
                }
                "content_block_stop" => {}
                "message_delta" => {
                    if let Some(s) = data["delta"]["stop_reason"].as_str() {
                        stop = Some(s.to_string());
                    }
                    if let Some(o) = data["usage"]["output_tokens"].as_u64() {
                        usage.output_tokens = o;
                    }
                    if let Some(i) = data["usage"]["input_tokens"].as_u64() {
                        usage.input_tokens = i;
                    }
                }
                "message_stop" => finished = true,
                "error" => {
                    let t = bounded(data["error"]["type"].as_str().unwrap_or("unknown"), 64);
                    let err = ProviderError::StreamError {
                        provider: NAME,
                        kind: t.clone(),
                    };
                    let transient = t == "overloaded_error" || t == "api_error";
                    return Err(if received || !transient {
                        AttemptError::Fatal(err)
                    } else {
                        AttemptError::Retry {
                            error: err,
                            after: None,
                        }
                    });
                }
                _ => {}
            }
        }
        if finished {
            break;
        }
    }
    if !finished {
        let kind = "ended before message_stop";
        return Err(if received {
            AttemptError::Fatal(ProviderError::StreamInterrupted {
                provider: NAME,
                kind,
            })
        } else {
            AttemptError::Retry {
                error: ProviderError::Connect {
                    provider: NAME,
                    kind,
                    attempts: n,
                },
                after: None,
            }
        });
    }
    let mut content = Vec::new();
    for b in blocks {
        match b {
            Partial::Text(text) => content.push(ContentBlock::Text { text }),
            Partial::Tool { id, name, json } => {
                let input = if json.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(&json).map_err(|e| {
                        AttemptError::Fatal(ProviderError::ParseResponse {
                            provider: NAME,
                            what: format!("tool input: {}", json_what(&e)),
                        })
                    })?
                };
                content.push(ContentBlock::ToolUse { id, name, input });
            }
            Partial::Skip => {}
        }
    }
    Ok(ChatResponse {
        content,
        stop_reason: stop_reason(stop.as_deref()),
        usage,
    })
}
