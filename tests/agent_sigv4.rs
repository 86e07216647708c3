//! SigV4 signing against AWS's published test vectors (aws-sig-v4-test-suite,
//! see tests/data/agent/sigv4/SOURCE.md): the Authorization header must match
//! exactly. Then the Bedrock Converse provider against a fake server over
//! loopback TLS: the request is signed for service `bedrock`, the model id is
//! percent-encoded in the path, and a tool round trip completes through the loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_support;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use agent_support::*;
use cowork::agent::{
    Agent, AwsCredentials, BedrockProvider, EndReason, Limits, Message, ProviderConfig,
    SecretSource, SecretString, SigningScope, StaticSecrets, Tool, sign_headers,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn vector(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/agent/sigv4")
        .join(name);
    let request = std::fs::read_to_string(dir.join("request.txt")).unwrap();
    let context: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let signed = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
    let expected = signed
        .lines()
        .find_map(|l| l.strip_prefix("Authorization:"))
        .unwrap()
        .to_string();

    let (head, body) = request.split_once("\n\n").unwrap_or((request.as_str(), ""));
    let mut lines = head.lines();
    let first: Vec<&str> = lines.next().unwrap().split(' ').collect();
    let (method, path) = (first[0], first[1]);
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let host = &headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .unwrap()
        .1;
    let url = format!("https://{host}{path}");
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let ts = time::OffsetDateTime::parse(
        context["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let creds = AwsCredentials {
        access_key_id: context["credentials"]["access_key_id"]
            .as_str()
            .unwrap()
            .into(),
        secret_access_key: SecretString::new(
            context["credentials"]["secret_access_key"]
                .as_str()
                .unwrap()
                .into(),
        ),
        session_token: None,
    };
    assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
    let out = sign_headers(
        method,
        &url,
        &header_refs,
        body.as_bytes(),
        &creds,
        &SigningScope {
            region: context["region"].as_str().unwrap(),
            service: context["service"].as_str().unwrap(),
            time: SystemTime::from(ts),
        },
    )
    .unwrap();
    let auth = &out.iter().find(|(k, _)| k == "authorization").unwrap().1;
    assert_eq!(auth, &expected, "vector {name}");
    let date = &out.iter().find(|(k, _)| k == "x-amz-date").unwrap().1;
    assert_eq!(date, "20150830T123600Z");
    assert!(!format!("{creds:?}").contains("wJalrXUtnFEMI"));
}

#[test]
fn sigv4_get_vanilla() {
    vector("get-vanilla");
}

#[test]
fn sigv4_post_vanilla() {
    vector("post-vanilla");
}

#[test]
fn sigv4_get_vanilla_query_order_key_case() {
    vector("get-vanilla-query-order-key-case");
}

const AWS_SECRET: &str = r#"{"access_key_id":"AKIDEXAMPLE","secret_access_key":"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}"#;

fn bedrock(fake: &Fake) -> Arc<BedrockProvider> {
    let secrets: Arc<dyn SecretSource> = Arc::new(StaticSecrets::new().with("aws", AWS_SECRET));
    let mut c = ProviderConfig::new(fake.base_url.clone(), Some("aws".into()), secrets);
    c.extra_root_ca_pem = Some(fake.ca_pem.clone());
    c.http.backoff_initial_ms = 10;
    Arc::new(BedrockProvider::new(c, "us-east-1").unwrap())
}

#[tokio::test]
async fn bedrock_converse_tool_round_trip() {
    let fake = serve(Script::new(vec![
        Reply::Json(
            200,
            json!({
                "output": {"message": {"role": "assistant", "content": [
                    {"text": "calling"},
                    {"toolUse": {"toolUseId": "tu_1", "name": "echo", "input": {"text": "aws"}}}]}},
                "stopReason": "tool_use",
                "usage": {"inputTokens": 40, "outputTokens": 8, "totalTokens": 48}
            }),
        ),
        Reply::Json(
            200,
            json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "bedrock done"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 60, "outputTokens": 4, "totalTokens": 64}
            }),
        ),
    ]))
    .await;
    let echo = Arc::new(EchoTool::default());
    let mut a = Agent::new(
        bedrock(&fake),
        "anthropic.claude-3-haiku-20240307-v1:0",
        "sys",
        vec![echo.clone() as Arc<dyn Tool>],
        &["echo"],
        None,
        Limits {
            max_cost_usd: None,
            ..Limits::default()
        },
    );
    let mut history = vec![Message::user_text("hi")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    assert_eq!(out.final_text, "bedrock done");
    assert_eq!(out.usage.input_tokens, 100);
    assert_eq!(echo.calls.lock().unwrap().len(), 1);

    let (h0, b0) = fake.script.request(0);
    let auth = h0["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date"),
        "{auth}"
    );
    assert!(h0.get("x-amz-date").is_some());
    // The host the signature covers is the one reqwest sent.
    assert_eq!(
        h0["host"].to_str().unwrap(),
        fake.base_url.trim_start_matches("https://")
    );
    assert_eq!(b0["system"][0]["text"], "sys");
    assert_eq!(b0["toolConfig"]["tools"][0]["toolSpec"]["name"], "echo");
    assert_eq!(b0["inferenceConfig"]["maxTokens"], 4096);
    let (_, b1) = fake.script.request(1);
    assert_eq!(
        b1["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        "tu_1"
    );
    assert_eq!(
        b1["messages"][2]["content"][0]["toolResult"]["status"],
        "success"
    );
}

#[tokio::test]
async fn bedrock_bad_credentials_secret_is_refused_plainly() {
    let fake = serve(Script::new(vec![])).await;
    let secrets: Arc<dyn SecretSource> =
        Arc::new(StaticSecrets::new().with("aws", "not-json-SECRETVALUE"));
    let mut c = ProviderConfig::new(fake.base_url.clone(), Some("aws".into()), secrets);
    c.extra_root_ca_pem = Some(fake.ca_pem.clone());
    let p = BedrockProvider::new(c, "us-east-1").unwrap();
    let req = cowork::agent::ChatRequest {
        model: "m".into(),
        system: String::new(),
        messages: vec![Message::user_text("x")],
        tools: vec![],
        max_tokens: 5,
    };
    use cowork::agent::Provider;
    let e = p
        .complete(&req, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`aws`"));
    assert!(!e.to_string().contains("SECRETVALUE"));
    assert_eq!(fake.script.count(), 0);
}
