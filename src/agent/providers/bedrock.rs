//! AWS Bedrock Converse API: `POST /model/{modelId}/converse`, SigV4-signed
//! (service `bedrock`). Credentials come from the vault as a JSON object
//! `{"access_key_id", "secret_access_key", "session_token"?}`. Streaming
//! (ConverseStream, AWS event-stream framing) is not implemented: calls are
//! always non-streamed.

use std::time::SystemTime;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::retry::{AttemptError, classify_status, parse_retry_after, with_retry};
use super::sigv4::{AwsCredentials, SigningScope, sign_headers};
use super::{
    MAX_RESPONSE_BYTES, Provider, ProviderConfig, build_client, json_what, read_capped,
    transport_kind,
};
use crate::agent::error::ProviderError;
use crate::agent::secret::SecretString;
use crate::agent::types::{
    ChatRequest, ChatResponse, ContentBlock, Role, StopReason, Usage, bounded,
};

const NAME: &str = "bedrock";

/// The vault secret's form; its strings move straight into `SecretString`s.
#[derive(serde::Deserialize)]
struct WireCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// Client of the Bedrock Converse API.
#[derive(Debug)]
pub struct BedrockProvider {
    config: ProviderConfig,
    client: reqwest::Client,
    region: String,
    /// `host[:port]` of the base URL, signed as the `host` header.
    host: String,
}

impl BedrockProvider {
    pub fn new(config: ProviderConfig, region: &str) -> Result<Self, ProviderError> {
        let client = build_client(NAME, &config)?;
        let url = reqwest::Url::parse(&config.base_url).map_err(|_| ProviderError::Configure {
            provider: NAME,
            what: "the base URL is not a valid URL".into(),
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(ProviderError::Configure {
                    provider: NAME,
                    what: "the base URL has no host".into(),
                });
            }
        };
        Ok(BedrockProvider {
            config,
            client,
            region: region.to_string(),
            host,
        })
    }

    async fn credentials(&self) -> Result<AwsCredentials, ProviderError> {
        let name = self
            .config
            .secret_name
            .clone()
            .ok_or_else(|| ProviderError::Configure {
                provider: NAME,
                what: "Bedrock needs a secret name for its credentials".into(),
            })?;
        let raw =
            self.config
                .secrets
                .get(&name)
                .await
                .ok_or_else(|| ProviderError::FetchSecret {
                    provider: NAME,
                    name: name.clone(),
                })?;
        let bad = || ProviderError::ParseCredentials {
            provider: NAME,
            name: name.clone(),
        };
        let wire: WireCredentials = serde_json::from_str(raw.expose()).map_err(|_| bad())?;
        Ok(AwsCredentials {
            access_key_id: wire.access_key_id,
            secret_access_key: SecretString::new(wire.secret_access_key),
            session_token: wire.session_token.map(SecretString::new),
        })
    }

    async fn attempt(&self, url: &str, body: &[u8], n: u32) -> Result<ChatResponse, AttemptError> {
        let creds = self.credentials().await.map_err(AttemptError::Fatal)?;
        let signed = sign_headers(
            "POST",
            url,
            &[("host", &self.host), ("content-type", "application/json")],
            body,
            &creds,
            &SigningScope {
                region: &self.region,
                service: "bedrock",
                time: SystemTime::now(),
            },
        )
        .map_err(AttemptError::Fatal)?;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        for (k, v) in signed {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| AttemptError::Fatal(ProviderError::Sign { provider: NAME }))?;
            let mut value = HeaderValue::from_str(&v)
                .map_err(|_| AttemptError::Fatal(ProviderError::Sign { provider: NAME }))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
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
            .post(url)
            .headers(headers)
            .body(body.to_vec())
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
            let detail = resp
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(|s| bounded(s.split(':').next().unwrap_or(""), 64))
                .unwrap_or_default();
            return Err(classify_status(NAME, status, retry_after, detail, n));
        }
        let bytes = read_capped(NAME, resp, MAX_RESPONSE_BYTES, n).await?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            AttemptError::Fatal(ProviderError::ParseResponse {
                provider: NAME,
                what: json_what(&e),
            })
        })?;
        parse_converse(&v).map_err(AttemptError::Fatal)
    }
}

#[async_trait::async_trait]
impl Provider for BedrockProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, ProviderError> {
        let url = self.config.url(&format!(
            "/model/{}/converse",
            encode_path_segment(&request.model)
        ));
        let body =
            serde_json::to_vec(&request_body(request)).map_err(|_| ProviderError::Configure {
                provider: NAME,
                what: "the request could not be encoded".into(),
            })?;
        with_retry(NAME, &self.config.http, cancel, |n| {
            self.attempt(&url, &body, n)
        })
        .await
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub(crate) fn encode_path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The JSON body of a Converse request.
pub(crate) fn request_body(req: &ChatRequest) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let content: Vec<Value> = m
                .content
                .iter()
                .map(|b| match b {
                    ContentBlock::Text { text } => json!({"text": text}),
                    ContentBlock::ToolUse { id, name, input } => {
                        json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
                    }
                    ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => json!({"toolResult": {"toolUseId": tool_use_id,
                        "content": [{"text": content}],
                        "status": if *is_error { "error" } else { "success" }}}),
                })
                .collect();
            json!({"role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
                   "content": content})
        })
        .collect();
    let mut body = json!({
        "messages": messages,
        "inferenceConfig": {"maxTokens": req.max_tokens},
    });
    if !req.system.is_empty() {
        body["system"] = json!([{"text": req.system}]);
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"toolSpec": {"name": t.name, "description": t.description,
                "inputSchema": {"json": t.input_schema}}})
            })
            .collect();
        body["toolConfig"] = json!({"tools": tools});
    }
    body
}

fn parse_converse(v: &Value) -> Result<ChatResponse, ProviderError> {
    let blocks = v["output"]["message"]["content"]
        .as_array()
        .ok_or_else(|| ProviderError::ParseResponse {
            provider: NAME,
            what: "no output message".into(),
        })?;
    let mut content = Vec::new();
    for b in blocks {
        if let Some(t) = b["text"].as_str() {
            content.push(ContentBlock::Text {
                text: t.to_string(),
            });
        } else if b["toolUse"].is_object() {
            let tu = &b["toolUse"];
            content.push(ContentBlock::ToolUse {
                id: tu["toolUseId"].as_str().unwrap_or("").to_string(),
                name: tu["name"].as_str().unwrap_or("").to_string(),
                input: if tu["input"].is_null() {
                    json!({})
                } else {
                    tu["input"].clone()
                },
            });
        }
    }
    let stop = match v["stopReason"].as_str() {
        Some("end_turn") | None => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        Some(o) => StopReason::Other(bounded(o, 64)),
    };
    Ok(ChatResponse {
        content,
        stop_reason: stop,
        usage: Usage {
            input_tokens: v["usage"]["inputTokens"].as_u64().unwrap_or(0),
            output_tokens: v["usage"]["outputTokens"].as_u64().unwrap_or(0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_id_is_encoded() {
        assert_eq!(
            encode_path_segment("anthropic.claude-3-haiku-20240307-v1:0"),
            "anthropic.claude-3-haiku-20240307-v1%3A0"
        );
        assert_eq!(encode_path_segment("../x"), "..%2Fx");
    }
}
