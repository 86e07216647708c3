//! Limits of the agent loop against a fake Anthropic server over loopback TLS:
//! a model asking for a tool forever stops at the iteration limit; reported
//! token usage crossing the cost or token limit stops the run; a slow response
//! past the deadline ends it; cancelling during a slow response ends within 2 s;
//! a cost limit without a price for the model refuses to start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_support::*;
use cowork::agent::{Agent, EndReason, Limits, Message, ModelPrice, Tool};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn price() -> Option<ModelPrice> {
    Some(ModelPrice {
        input_usd_per_mtok: 3.0,
        output_usd_per_mtok: 15.0,
    })
}

fn forever() -> Reply {
    anth_tool("toolu_f", "echo", json!({"text": "again"}), 1000, 100)
}

fn agent(fake: &Fake, limits: Limits) -> (Agent, Arc<EchoTool>) {
    let echo = Arc::new(EchoTool::default());
    let a = Agent::new(
        anthropic(fake, false),
        "test-model",
        "",
        vec![echo.clone() as Arc<dyn Tool>],
        &["echo"],
        price(),
        limits,
    );
    (a, echo)
}

#[tokio::test]
async fn iteration_limit_stops_a_tool_loop() {
    let fake = serve(Script::new(vec![]).with_fallback(forever())).await;
    let limits = Limits {
        max_iterations: 5,
        ..Limits::default()
    };
    let (mut a, echo) = agent(&fake, limits);
    let mut history = vec![Message::user_text("loop")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::MaxIterations), "{:?}", out.end);
    assert_eq!(out.iterations, 5);
    assert_eq!(fake.script.count(), 5);
    assert_eq!(echo.calls.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn default_iteration_limit_is_50() {
    assert_eq!(Limits::default().max_iterations, 50);
}

#[tokio::test]
async fn cost_limit_stops_the_run() {
    // Each call: 1000 in * $3/M + 100 out * $15/M = $0.0045; limit $0.01 → 3 calls.
    let fake = serve(Script::new(vec![]).with_fallback(forever())).await;
    let limits = Limits {
        max_cost_usd: Some(0.01),
        ..Limits::default()
    };
    let (mut a, echo) = agent(&fake, limits);
    let mut history = vec![Message::user_text("spend")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::MaxCost), "{:?}", out.end);
    assert_eq!(out.iterations, 3);
    assert!(out.cost_usd >= 0.01);
    // The call that crossed the limit does not get its tools run.
    assert_eq!(echo.calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn token_limit_stops_the_run_and_caps_max_tokens() {
    let fake = serve(Script::new(vec![]).with_fallback(forever())).await;
    let limits = Limits {
        max_total_tokens: 2500,
        ..Limits::default()
    };
    let (mut a, _) = agent(&fake, limits);
    let mut history = vec![Message::user_text("talk")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::MaxTokens), "{:?}", out.end);
    assert_eq!(out.iterations, 3);
    // Third call may use at most what was left of the budget.
    let (_, b2) = fake.script.request(2);
    assert_eq!(b2["max_tokens"], 2500 - 2 * 1100);
}

#[tokio::test]
async fn deadline_ends_a_slow_call() {
    let fake = serve(Script::new(vec![Reply::Slow(
        Duration::from_secs(30),
        Box::new(anth_text("late", 1, 1)),
    )]))
    .await;
    let limits = Limits {
        deadline: Some(tokio::time::Instant::now() + Duration::from_millis(300)),
        ..Limits::default()
    };
    let (mut a, _) = agent(&fake, limits);
    let mut history = vec![Message::user_text("slow")];
    let start = Instant::now();
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Deadline), "{:?}", out.end);
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// Cancels `cancel` as soon as the fake model has the request: the cancel
/// lands while the answer is on its way.
fn cancel_once_asked(fake: &Fake, cancel: &CancellationToken) {
    let (script, cancel) = (Arc::clone(&fake.script), cancel.clone());
    tokio::spawn(async move {
        while script.count() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cancel.cancel();
    });
}

#[tokio::test]
async fn cancel_during_slow_response_ends_within_two_seconds() {
    let fake = serve(Script::new(vec![Reply::Slow(
        Duration::from_secs(30),
        Box::new(anth_text("late", 1, 1)),
    )]))
    .await;
    let (mut a, _) = agent(&fake, Limits::default());
    let mut history = vec![Message::user_text("slow")];
    let cancel = CancellationToken::new();
    cancel_once_asked(&fake, &cancel);
    let start = Instant::now();
    let out = a.run(&mut history, &cancel).await;
    assert!(matches!(out.end, EndReason::Cancelled), "{:?}", out.end);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn provider_call_alone_honours_cancellation() {
    use cowork::agent::{ChatRequest, Provider, ProviderError};
    let fake = serve(Script::new(vec![Reply::Slow(
        Duration::from_secs(30),
        Box::new(anth_text("late", 1, 1)),
    )]))
    .await;
    let p = anthropic(&fake, true);
    let cancel = CancellationToken::new();
    cancel_once_asked(&fake, &cancel);
    let req = ChatRequest {
        model: "m".into(),
        system: String::new(),
        messages: vec![Message::user_text("x")],
        tools: vec![],
        max_tokens: 10,
    };
    let start = Instant::now();
    let r = p.complete(&req, &cancel).await;
    assert!(matches!(r, Err(ProviderError::Cancelled { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn cost_limit_without_price_refuses_to_start() {
    let fake = serve(Script::new(vec![anth_text("x", 1, 1)])).await;
    let mut a = Agent::new(
        anthropic(&fake, false),
        "unpriced-model",
        "",
        vec![],
        &[],
        None,
        Limits::default(),
    );
    let mut history = vec![Message::user_text("x")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::NoPrice { ref model } if model == "unpriced-model"));
    assert_eq!(fake.script.count(), 0);
}

#[derive(Debug)]
struct SlowTool;

#[async_trait::async_trait]
impl Tool for SlowTool {
    fn name(&self) -> &str {
        "slow"
    }
    fn description(&self) -> &str {
        "Takes forever."
    }
    fn input_schema(&self) -> serde_json::Value {
        json!({"type": "object"})
    }
    async fn call(&self, _input: serde_json::Value) -> cowork::agent::ToolOutcome {
        tokio::time::sleep(Duration::from_secs(60)).await;
        cowork::agent::ToolOutcome::Output("done".into())
    }
}

#[tokio::test]
async fn cancel_and_deadline_interrupt_a_running_tool() {
    for use_deadline in [false, true] {
        let fake = serve(Script::new(vec![anth_tool(
            "toolu_slow",
            "slow",
            json!({}),
            1,
            1,
        )]))
        .await;
        let limits = Limits {
            deadline: use_deadline
                .then(|| tokio::time::Instant::now() + Duration::from_millis(300)),
            ..Limits::default()
        };
        let mut a = Agent::new(
            anthropic(&fake, false),
            "test-model",
            "",
            vec![Arc::new(SlowTool) as Arc<dyn Tool>],
            &["slow"],
            price(),
            limits,
        );
        let cancel = CancellationToken::new();
        if !use_deadline {
            let c2 = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                c2.cancel();
            });
        }
        let start = Instant::now();
        let out = a.run(&mut vec![Message::user_text("x")], &cancel).await;
        if use_deadline {
            assert!(matches!(out.end, EndReason::Deadline), "{:?}", out.end);
        } else {
            assert!(matches!(out.end, EndReason::Cancelled), "{:?}", out.end);
        }
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}

/// Issue 17.5: one model answer with 60 tool calls ran every one of them (a
/// turn of 60 `write_file` calls wrote 27 MB in 0.4 s). Only the first
/// `max_tool_calls_per_turn` run; the rest are answered "not run".
#[tokio::test]
async fn one_answer_runs_at_most_the_per_turn_tool_calls() {
    let calls: Vec<serde_json::Value> = (0..60)
        .map(|n| json!({"type": "tool_use", "id": format!("toolu_{n}"), "name": "echo", "input": {"text": n}}))
        .collect();
    let flood = Reply::Json(
        200,
        json!({"id": "msg_f", "type": "message", "role": "assistant", "model": "claude-test",
               "content": calls, "stop_reason": "tool_use", "stop_sequence": null,
               "usage": {"input_tokens": 10, "output_tokens": 10}}),
    );
    let fake = serve(Script::new(vec![flood, anth_text("done", 5, 5)])).await;
    let limits = Limits {
        max_tool_calls_per_turn: 16,
        ..Limits::default()
    };
    let (mut a, echo) = agent(&fake, limits);
    let mut history = vec![Message::user_text("flood")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    assert_eq!(echo.calls.lock().unwrap().len(), 16);
    // Every call got an answer, the refused ones say why.
    let (_, second) = fake.script.request(1);
    let sent = second.to_string();
    assert_eq!(sent.matches("tool_result").count(), 60, "{sent}");
    assert_eq!(
        sent.matches("at most 16 tool calls are run per answer")
            .count(),
        44
    );
}
