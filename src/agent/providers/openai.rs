//! OpenAI-compatible chat completions (`POST /v1/chat/completions`), as served
//! by Ollama, llama.cpp's server and others: `tools` / `tool_calls`, streaming
//! `data:` chunks ending in `[DONE]`, `usage`. The API key is optional.

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
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

const NAME: &str = "openai-compatible";

/// Client of an OpenAI-compatible chat completions server.
#[derive(Debug)]
pub struct OpenAiProvider {
    config: ProviderConfig,
    client: reqwest::Client,
}

impl OpenAiProvider {
    pub fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        let client = build_client(NAME, &config)?;
        Ok(OpenAiProvider { config, client })
    }

    async fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut h = HeaderMap::new();
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
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    ProviderError::ParseCredentials {
                        provider: NAME,
                        name: name.clone(),
                    }
                })?;
            v.set_sensitive(true);
            h.insert("authorization", v);
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
        let connect = |e: reqwest::Error| AttemptError::Retry {
            error: ProviderError::Connect {
                provider: NAME,
                kind: transport_kind(&e),
                attempts: n,
            },
            after: None,
        };
        let resp = self
            .client
            .post(self.config.url("/v1/chat/completions"))
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(connect)?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let detail = match read_capped(NAME, resp, MAX_ERROR_BODY_BYTES, n).await {
                Ok(b) => serde_json::from_slice::<Value>(&b)
                    .ok()
                    .and_then(|v| v["error"]["type"].as_str().map(|s| bounded(s, 64)))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
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
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                AttemptError::Fatal(ProviderError::ParseResponse {
                    provider: NAME,
                    what: json_what(&e),
                })
            })?;
            parse_completion(&v).map_err(AttemptError::Fatal)
        }
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
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

/// The JSON body of a chat completions request.
pub(crate) fn request_body(req: &ChatRequest, stream: bool) -> Value {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system}));
    }
    for m in &req.messages {
        match m.role {
            Role::Assistant => {
                let text: String = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::ToolUse { id, name, input } => Some(json!({
                            "id": id, "type": "function",
                            "function": {"name": name, "arguments": input.to_string()}
                        })),
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({"role": "assistant",
                    "content": if text.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = json!(calls);
                }
                messages.push(msg);
            }
            Role::User => {
                let mut text = String::new();
                for b in &m.content {
                    match b {
                        ContentBlock::ToolResult {
                            tool_use_id,
                            content,
                            ..
                        } => messages.push(
                            json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}),
                        ),
                        ContentBlock::Text { text: t } => text.push_str(t),
                        ContentBlock::ToolUse { .. } => {}
                    }
                }
                if !text.is_empty() {
                    messages.push(json!({"role": "user", "content": text}));
                }
            }
        }
    }
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "messages": messages,
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.input_schema}})
            })
            .collect();
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn finish_reason(s: Option<&str>) -> StopReason {
    match s {
        Some("stop") | None => StopReason::EndTurn,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(bounded(other, 64)),
    }
}

fn parse_usage(u: &Value) -> Usage {
    Usage {
        input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
    }
}

fn parse_arguments(args: &str) -> Result<Value, ProviderError> {
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(args).map_err(|e| ProviderError::ParseResponse {
        provider: NAME,
        what: format!("tool arguments: {}", json_what(&e)),
    })
}

/// A non-streamed completion.
fn parse_completion(v: &Value) -> Result<ChatResponse, ProviderError> {
    let choice = v["choices"]
        .get(0)
        .ok_or_else(|| ProviderError::ParseResponse {
            provider: NAME,
            what: "no choices in the response".into(),
        })?;
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = msg["content"].as_str()
        && !t.is_empty()
    {
        content.push(ContentBlock::Text {
            text: t.to_string(),
        });
    }
    if let Some(calls) = msg["tool_calls"].as_array() {
        for c in calls {
            content.push(ContentBlock::ToolUse {
                id: c["id"].as_str().unwrap_or("").to_string(),
                name: c["function"]["name"].as_str().unwrap_or("").to_string(),
                input: parse_arguments(c["function"]["arguments"].as_str().unwrap_or(""))?,
            });
        }
    }
    let mut stop = finish_reason(choice["finish_reason"].as_str());
    if stop == StopReason::EndTurn
        && content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse { .. }))
    {
        stop = StopReason::ToolUse;
    }
    Ok(ChatResponse {
        content,
        stop_reason: stop,
        usage: parse_usage(&v["usage"]),
    })
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

async fn read_stream(resp: reqwest::Response, n: u32) -> Result<ChatResponse, AttemptError> {
    let malformed = |what: String| {
        AttemptError::Fatal(ProviderError::ParseResponse {
            provider: NAME,
            what,
        })
    };
    let mut parser = SseParser::default();
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut calls: Vec<PartialCall> = Vec::new();
    let mut usage = Usage::default();
    let mut finish: Option<String> = None;
    let mut received = false;
    let mut done = false;
    let mut total = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_read_error(NAME, &e, received, n))?;
        total += chunk.len();
        if total > MAX_RESPONSE_BYTES {
            return Err(too_large(NAME));
        }
        for ev in parser.feed(&chunk).map_err(|w| malformed(w.to_string()))? {
            if ev.data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let v: Value = serde_json::from_str(&ev.data).map_err(|e| malformed(json_what(&e)))?;
            if v.get("error").is_some() {
                let kind = bounded(v["error"]["type"].as_str().unwrap_or("unknown"), 64);
                return Err(AttemptError::Fatal(ProviderError::StreamError {
                    provider: NAME,
                    kind,
                }));
            }
            if v["usage"].is_object() {
                usage = parse_usage(&v["usage"]);
            }
            let Some(choice) = v["choices"].get(0) else {
                continue;
            };
            received = true;
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
            let d = &choice["delta"];
            if let Some(t) = d["content"].as_str() {
                text.push_str(t);
            }
            if let Some(tcs) = d["tool_calls"].as_array() {
                for tc in tcs {
                    // Servers that omit `index` (older Ollama) send whole calls:
                    // a new id starts a new call.
                    let idx = match (tc["index"].as_u64(), tc["id"].as_str()) {
                        (Some(i), _) => i as usize,
                        (None, Some(id)) if !calls.iter().any(|c| c.id == id) => calls.len(),
                        (None, _) => calls.len().saturating_sub(1),
                    };
                    if idx > 128 {
                        return Err(malformed("too many tool calls".into()));
                    }
                    while calls.len() <= idx {
                        calls.push(PartialCall::default());
                    }
                    let c = &mut calls[idx];
                    if let Some(id) = tc["id"].as_str() {
                        c.id = id.to_string();
                    }
                    if let Some(name) = tc["function"]["name"].as_str() {
                        c.name.push_str(name);
                    }
                    if let Some(a) = tc["function"]["arguments"].as_str() {
                        c.arguments.push_str(a);
                    }
                }
            }
        }
        if done {
            break;
        }
    }
    if !done {
        let kind = "ended before [DONE]";
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
    if !text.is_empty() {
        content.push(ContentBlock::Text { text });
    }
    for c in calls {
        content.push(ContentBlock::ToolUse {
            input: parse_arguments(&c.arguments).map_err(AttemptError::Fatal)?,
            id: c.id,
            name: c.name,
        });
    }
    let mut stop = finish_reason(finish.as_deref());
    if stop == StopReason::EndTurn
        && content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse { .. }))
    {
        stop = StopReason::ToolUse;
    }
    Ok(ChatResponse {
        content,
        stop_reason: stop,
        usage,
    })
}
