//! Shared by the agent_* integration tests: a loopback HTTPS server (rcgen CA +
//! leaf for 127.0.0.1, rustls, hyper) serving a scripted fake LLM endpoint, and
//! builders of Anthropic / OpenAI wire replies.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const API_KEY: &str = "sk-test-SECRET-0123456789abcdef";

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    Json(u16, Value),
    /// Status, headers, raw body.
    Raw(u16, Vec<(String, String)>, String),
    /// SSE body sent chunk by chunk (10 ms apart); `cut` aborts the connection after.
    Sse(Vec<String>, bool),
    /// Sleep, then answer with the inner reply.
    Slow(Duration, Box<Reply>),
}

#[derive(Debug, Default)]
pub struct Script {
    pub replies: Mutex<VecDeque<Reply>>,
    /// Used when `replies` is empty.
    pub fallback: Mutex<Option<Reply>>,
    pub requests: Mutex<Vec<(HeaderMap, Value)>>,
}

impl Script {
    pub fn new(replies: Vec<Reply>) -> Arc<Self> {
        Arc::new(Script {
            replies: Mutex::new(replies.into()),
            ..Default::default()
        })
    }
    pub fn with_fallback(self: Arc<Self>, r: Reply) -> Arc<Self> {
        *self.fallback.lock().unwrap() = Some(r);
        self
    }
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
    pub fn request(&self, i: usize) -> (HeaderMap, Value) {
        self.requests.lock().unwrap()[i].clone()
    }
}

fn render(
    reply: Reply,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Json(status, v) => Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            Reply::Raw(status, headers, body) => {
                let mut b = Response::builder().status(status);
                for (k, v) in headers {
                    b = b.header(k, v);
                }
                b.body(Body::from(body)).unwrap()
            }
            Reply::Sse(chunks, cut) => {
                let stream = futures_util::stream::unfold(
                    (chunks.into_iter(), cut, false),
                    |(mut it, cut, ended)| async move {
                        if ended {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        match it.next() {
                            Some(c) => Some((
                                Ok::<Bytes, std::io::Error>(Bytes::from(c)),
                                (it, cut, false),
                            )),
                            None if cut => Some((
                                Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "cut",
                                )),
                                (it, cut, true),
                            )),
                            None => None,
                        }
                    },
                );
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
            Reply::Slow(d, inner) => {
                tokio::time::sleep(d).await;
                render(*inner).await
            }
        }
    })
}

/// A running fake server.
#[derive(Debug)]
pub struct Fake {
    pub base_url: String,
    pub ca_pem: Vec<u8>,
    pub script: Arc<Script>,
}

/// Serve `script` over HTTPS on 127.0.0.1 (any POST path).
pub async fn serve(script: Arc<Script>) -> Fake {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let s = script.clone();
    let app = axum::Router::new().fallback(post(move |headers: HeaderMap, body: Bytes| {
        let s = s.clone();
        async move {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            s.requests.lock().unwrap().push((headers, v));
            let next = s.replies.lock().unwrap().pop_front();
            let reply = next
                .or_else(|| s.fallback.lock().unwrap().clone())
                .unwrap_or(Reply::Json(500, json!({"error": "script exhausted"})));
            Ok::<_, Infallible>(render(reply).await)
        }
    }));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    Fake {
        base_url: format!("https://{addr}"),
        ca_pem: ca.pem().into_bytes(),
        script,
    }
}

// ---- Anthropic wire replies ----

pub fn anth_text(text: &str, input_tokens: u64, output_tokens: u64) -> Reply {
    Reply::Json(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
        }),
    )
}

pub fn anth_tool(
    id: &str,
    name: &str,
    input: Value,
    input_tokens: u64,
    output_tokens: u64,
) -> Reply {
    Reply::Json(
        200,
        json!({
            "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": id, "name": name, "input": input}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
        }),
    )
}

fn ev(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// SSE events of a streamed tool_use turn (input JSON split over two deltas).
pub fn anth_sse_tool_events(id: &str, name: &str, input: &Value) -> Vec<String> {
    let s = input.to_string();
    let (a, b) = s.split_at(s.len() / 2);
    vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant", "content": [], "model": "claude-test", "stop_reason": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": a}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": b}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 40}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
}

/// SSE events of a streamed text turn.
pub fn anth_sse_text_events(parts: &[&str]) -> Vec<String> {
    let mut v = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant", "content": [], "model": "claude-test", "stop_reason": null, "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for p in parts {
        v.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
    }
    v.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    v.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}})));
    v.push(ev("message_stop", json!({"type": "message_stop"})));
    v
}

// ---- OpenAI wire replies ----

pub fn oai_text(text: &str) -> Reply {
    Reply::Json(
        200,
        json!({
            "id": "c1", "object": "chat.completion", "model": "local",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
        }),
    )
}

pub fn oai_tool(id: &str, name: &str, input: &Value) -> Reply {
    Reply::Json(
        200,
        json!({
            "id": "c2", "object": "chat.completion", "model": "local",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 15, "completion_tokens": 9, "total_tokens": 24}
        }),
    )
}

fn data(v: Value) -> String {
    format!("data: {v}\n\n")
}

pub fn oai_sse_tool(id: &str, name: &str, input: &Value) -> Vec<String> {
    let s = input.to_string();
    let (a, b) = s.split_at(s.len() / 2);
    vec![
        data(
            json!({"id": "c3", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}]}),
        ),
        data(
            json!({"id": "c3", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": a}}]}, "finish_reason": null}]}),
        ),
        data(
            json!({"id": "c3", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": b}}]}, "finish_reason": null}]}),
        ),
        data(
            json!({"id": "c3", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ),
        data(
            json!({"id": "c3", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}),
        ),
        "data: [DONE]\n\n".to_string(),
    ]
}

pub fn oai_sse_text(parts: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = parts
        .iter()
        .map(|p| data(json!({"id": "c4", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})))
        .collect();
    v.push(data(json!({"id": "c4", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
    v.push(data(json!({"id": "c4", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 13, "completion_tokens": 4, "total_tokens": 17}})));
    v.push("data: [DONE]\n\n".to_string());
    v
}

// ---- client side ----

use cowork::agent::{
    AnthropicProvider, OpenAiProvider, ProviderConfig, SecretSource, StaticSecrets, Tool,
    ToolOutcome,
};

pub fn config(fake: &Fake, secret: Option<&str>, stream: bool) -> ProviderConfig {
    let secrets: Arc<dyn SecretSource> = Arc::new(StaticSecrets::new().with("llm_key", API_KEY));
    let mut c = ProviderConfig::new(fake.base_url.clone(), secret.map(str::to_string), secrets);
    c.extra_root_ca_pem = Some(fake.ca_pem.clone());
    c.http.stream = stream;
    c.http.backoff_initial_ms = 10;
    c.http.max_retry_wait_secs = 2;
    c
}

pub fn anthropic(fake: &Fake, stream: bool) -> Arc<AnthropicProvider> {
    Arc::new(AnthropicProvider::new(config(fake, Some("llm_key"), stream)).unwrap())
}

pub fn openai(fake: &Fake, secret: Option<&str>, stream: bool) -> Arc<OpenAiProvider> {
    Arc::new(OpenAiProvider::new(config(fake, secret, stream)).unwrap())
}

/// A tool that echoes its `text` input and counts calls.
#[derive(Debug, Default)]
pub struct EchoTool {
    pub calls: Mutex<Vec<Value>>,
}

#[async_trait::async_trait]
impl Tool for EchoTool {
    fn name(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        "Echo the text back."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        self.calls.lock().unwrap().push(input.clone());
        ToolOutcome::Output(format!("echo: {}", input["text"].as_str().unwrap_or("")))
    }
}

#[path = "../tracing_capture/mod.rs"]
mod tracing_capture;
#[allow(unused_imports)] // not every test of the agent uses it
pub use tracing_capture::{Captured, capture_tracing};
