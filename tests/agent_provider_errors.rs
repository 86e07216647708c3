//! Provider failures over loopback TLS against fake servers: 401/403 fail at
//! once (one request); 429 with retry-after (seconds and HTTP date) is retried
//! and honoured; 500/529 are retried with backoff and give up after the
//! attempt limit; malformed JSON is a clear failure; a stream cut after data
//! is a failure not retried, a cut before any data is retried; a missing
//! secret is named. No error string, nor captured tracing output at TRACE
//! level, contains the API key or a response body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_support;

use std::time::{Duration, Instant};

use agent_support::*;
use cowork::agent::{ChatRequest, Message, Provider, ProviderError};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn req() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        system: "sys".into(),
        messages: vec![Message::user_text("hello")],
        tools: vec![],
        max_tokens: 100,
    }
}

fn assert_clean(e: &ProviderError) {
    let s = e.to_string();
    assert!(!s.contains(API_KEY), "{s}");
    assert!(!s.contains("SECRET"), "{s}");
    assert!(!s.contains("echoed"), "body leaked: {s}");
    assert!(!format!("{e:?}").contains(API_KEY));
}

const ECHO_BODY: &str = r#"{"type":"error","error":{"type":"authentication_error","message":"echoed key sk-test-SECRET-0123456789abcdef"}}"#;

#[tokio::test]
async fn unauthorized_is_not_retried_and_leaks_nothing() {
    let (cap, _g) = capture_tracing();
    let fake = serve(Script::new(vec![
        Reply::Raw(401, vec![], ECHO_BODY.into()),
        anth_text("never", 1, 1),
    ]))
    .await;
    let e = anthropic(&fake, false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::Authenticate { status: 401, .. }),
        "{e:?}"
    );
    assert_eq!(fake.script.count(), 1);
    assert_clean(&e);
    let logs = cap.text();
    assert!(!logs.contains(API_KEY), "secret in tracing output");

    let fake = serve(Script::new(vec![Reply::Raw(403, vec![], ECHO_BODY.into())])).await;
    let e = openai(&fake, Some("llm_key"), false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::Authenticate { status: 403, .. }),
        "{e:?}"
    );
    assert_clean(&e);
    assert!(!cap.text().contains(API_KEY));
}

#[tokio::test]
async fn rate_limit_honours_retry_after_seconds() {
    let fake = serve(Script::new(vec![
        Reply::Raw(
            429,
            vec![("retry-after".into(), "1".into())],
            ECHO_BODY.into(),
        ),
        anth_text("after wait", 5, 5),
    ]))
    .await;
    let start = Instant::now();
    let r = anthropic(&fake, false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.text(), "after wait");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.script.count(), 2);
}

#[tokio::test]
async fn rate_limit_honours_retry_after_http_date_and_gives_up() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(1));
    let limited = Reply::Raw(429, vec![("retry-after".into(), date)], "{}".into());
    let fake = serve(Script::new(vec![]).with_fallback(limited)).await;
    let mut c = config(&fake, Some("llm_key"), false);
    c.http.max_attempts = 2;
    let p = cowork::agent::AnthropicProvider::new(c).unwrap();
    let e = p
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::RateLimited { attempts: 2, .. }),
        "{e:?}"
    );
    assert_eq!(fake.script.count(), 2);
    assert_clean(&e);
}

#[tokio::test]
async fn retry_after_is_capped() {
    let fake = serve(Script::new(vec![
        Reply::Raw(
            429,
            vec![("retry-after".into(), "3600".into())],
            "{}".into(),
        ),
        oai_text("capped"),
    ]))
    .await;
    let mut c = config(&fake, None, false);
    c.http.max_retry_wait_secs = 1;
    let p = cowork::agent::OpenAiProvider::new(c).unwrap();
    let start = Instant::now();
    let r = p.complete(&req(), &CancellationToken::new()).await.unwrap();
    assert_eq!(r.text(), "capped");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed_or_give_up() {
    let (cap, _g) = capture_tracing();
    let fake = serve(Script::new(vec![
        Reply::Raw(500, vec![], ECHO_BODY.into()),
        Reply::Raw(
            529,
            vec![],
            r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.into(),
        ),
        anth_text("third time", 1, 1),
    ]))
    .await;
    let r = anthropic(&fake, false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.text(), "third time");
    assert_eq!(fake.script.count(), 3);

    let fake =
        serve(Script::new(vec![]).with_fallback(Reply::Raw(503, vec![], ECHO_BODY.into()))).await;
    let e = openai(&fake, Some("llm_key"), false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ProviderError::ServerFailure {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(fake.script.count(), 4);
    assert_clean(&e);
    // The capture works (retries are logged) and holds no secret.
    let logs = cap.text();
    assert!(logs.contains("retrying"), "{logs}");
    assert!(!logs.contains(API_KEY));
    assert!(!logs.contains("echoed"));
}

#[tokio::test]
async fn other_client_errors_are_not_retried_and_give_the_type_only() {
    let fake = serve(Script::new(vec![Reply::Raw(
        400,
        vec![],
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"echoed sk-test-SECRET"}}"#.into(),
    )]))
    .await;
    let e = anthropic(&fake, false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid_request_error"), "{e}");
    assert_eq!(fake.script.count(), 1);
    assert_clean(&e);
}

#[tokio::test]
async fn malformed_json_is_a_clear_failure() {
    let body = "{\"content\": [ not json echoed sk-test-SECRET-0123456789abcdef".to_string();
    let fake = serve(Script::new(vec![Reply::Raw(200, vec![], body.clone())])).await;
    let e = anthropic(&fake, false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::ParseResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("malformed"));
    assert_clean(&e);

    let fake = serve(Script::new(vec![Reply::Raw(200, vec![], body)])).await;
    let e = openai(&fake, None, false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::ParseResponse { .. }), "{e:?}");
    assert_clean(&e);

    // Malformed event data inside a stream.
    let fake = serve(Script::new(vec![Reply::Sse(
        vec!["event: message_start\ndata: {oops echoed\n\n".into()],
        false,
    )]))
    .await;
    let e = anthropic(&fake, true)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::ParseResponse { .. }), "{e:?}");
    assert_clean(&e);
}

#[tokio::test]
async fn stream_cut_after_data_fails_without_retry() {
    let (cap, _g) = capture_tracing();
    let mut events = anth_sse_text_events(&["partial ", "answer"]);
    events.truncate(3); // message_start, block start, one delta
    let fake = serve(Script::new(vec![
        Reply::Sse(events, true),
        anth_text("retried?", 1, 1),
    ]))
    .await;
    let e = anthropic(&fake, true)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::StreamInterrupted { .. }),
        "{e:?}"
    );
    assert_eq!(fake.script.count(), 1);
    assert_clean(&e);

    let mut events = oai_sse_text(&["partial"]);
    events.truncate(1);
    let fake = serve(Script::new(vec![
        Reply::Sse(events, true),
        oai_text("retried?"),
    ]))
    .await;
    let e = openai(&fake, Some("llm_key"), true)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::StreamInterrupted { .. }),
        "{e:?}"
    );
    assert_eq!(fake.script.count(), 1);
    assert_clean(&e);
    assert!(!cap.text().contains(API_KEY));
}

#[tokio::test]
async fn stream_cut_before_data_is_retried() {
    let fake = serve(Script::new(vec![
        Reply::Sse(vec![": keepalive\n\n".into()], true),
        Reply::Sse(anth_sse_text_events(&["second ", "try"]), false),
    ]))
    .await;
    let r = anthropic(&fake, true)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.text(), "second try");
    assert_eq!(fake.script.count(), 2);
}

#[tokio::test]
async fn stream_error_event_is_reported_by_type() {
    let fake = serve(Script::new(vec![Reply::Sse(
        vec![
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".into(),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"echoed\"}}\n\n".into(),
        ],
        false,
    )]))
    .await;
    let e = anthropic(&fake, true)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::StreamError { ref kind, .. } if kind == "overloaded_error"),
        "{e:?}"
    );
    assert_clean(&e);
}

#[tokio::test]
async fn missing_secret_is_named_and_nothing_is_sent() {
    let fake = serve(Script::new(vec![anth_text("x", 1, 1)])).await;
    let c = config(&fake, Some("no_such_secret"), false);
    let p = cowork::agent::AnthropicProvider::new(c).unwrap();
    let e = p
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no_such_secret"));
    assert_eq!(fake.script.count(), 0);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported_plainly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let secrets: std::sync::Arc<dyn cowork::agent::SecretSource> =
        std::sync::Arc::new(cowork::agent::StaticSecrets::new().with("llm_key", API_KEY));
    let mut c = cowork::agent::ProviderConfig::new(
        format!("https://{addr}"),
        Some("llm_key".into()),
        secrets,
    );
    c.http.backoff_initial_ms = 1;
    c.http.max_attempts = 2;
    let e = cowork::agent::AnthropicProvider::new(c)
        .unwrap()
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ProviderError::Connect { attempts: 2, .. }),
        "{e:?}"
    );
    assert_clean(&e);
    let _ = json!({});
}

#[tokio::test]
async fn oversized_response_is_refused() {
    let huge = format!("{{\"pad\": \"{}\"}}", "a".repeat(33 * 1024 * 1024));
    let fake = serve(Script::new(vec![Reply::Raw(200, vec![], huge)])).await;
    let e = anthropic(&fake, false)
        .complete(&req(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("exceeds"), "{e}");
    assert_eq!(fake.script.count(), 1);
}

#[tokio::test]
async fn dropping_the_future_aborts_the_request() {
    let fake = serve(Script::new(vec![Reply::Slow(
        Duration::from_secs(30),
        Box::new(anth_text("late", 1, 1)),
    )]))
    .await;
    let p = anthropic(&fake, false);
    let start = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        p.complete(&req(), &CancellationToken::new()),
    )
    .await;
    assert!(r.is_err());
    assert!(start.elapsed() < Duration::from_secs(2));
}
