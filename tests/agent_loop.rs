//! The agent loop against fake Anthropic and OpenAI-compatible servers over
//! loopback TLS: user message → tool call → tool result → final reply, both
//! non-streaming and streaming; the wire format each server receives (auth
//! headers, tools, tool results); tools outside the allowed set are never run;
//! a NeedsApproval tool pauses the run and `resume` finishes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_support;

use std::sync::Arc;

use agent_support::*;
use cowork::agent::{
    Agent, ApprovalRequest, EndReason, Limits, Message, ModelPrice, Provider, Tool, ToolOutcome,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn price() -> Option<ModelPrice> {
    Some(ModelPrice {
        input_usd_per_mtok: 3.0,
        output_usd_per_mtok: 15.0,
    })
}

fn agent(provider: Arc<dyn Provider>, echo: Arc<EchoTool>) -> Agent {
    Agent::new(
        provider,
        "test-model",
        "You are a test.",
        vec![echo as Arc<dyn Tool>],
        &["echo"],
        price(),
        Limits::default(),
    )
}

#[tokio::test]
async fn anthropic_tool_round_trip_non_streaming() {
    let fake = serve(Script::new(vec![
        anth_tool("toolu_1", "echo", json!({"text": "hi"}), 100, 20),
        anth_text("Done: hi", 150, 10),
    ]))
    .await;
    let echo = Arc::new(EchoTool::default());
    let mut a = agent(anthropic(&fake, false), echo.clone());
    let mut history = vec![Message::user_text("say hi via echo")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    assert_eq!(out.final_text, "Done: hi");
    assert_eq!(out.iterations, 2);
    assert_eq!(out.usage.input_tokens, 250);
    assert_eq!(out.usage.output_tokens, 30);
    assert!((out.cost_usd - (250.0 * 3.0 + 30.0 * 15.0) / 1e6).abs() < 1e-12);
    assert_eq!(echo.calls.lock().unwrap().len(), 1);
    assert_eq!(history.len(), 4);

    let (h0, b0) = fake.script.request(0);
    assert_eq!(h0["x-api-key"], API_KEY);
    assert_eq!(h0["anthropic-version"], "2023-06-01");
    assert_eq!(b0["model"], "test-model");
    assert_eq!(b0["system"], "You are a test.");
    assert_eq!(b0["tools"][0]["name"], "echo");
    assert_eq!(b0["tools"][0]["input_schema"]["type"], "object");
    assert!(b0.get("stream").is_none());
    let (_, b1) = fake.script.request(1);
    let msgs = b1["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(msgs[2]["content"][0]["content"], "echo: hi");
}

#[tokio::test]
async fn anthropic_tool_round_trip_streaming() {
    let input = json!({"text": "streamed"});
    let fake = serve(Script::new(vec![
        Reply::Sse(anth_sse_tool_events("toolu_s", "echo", &input), false),
        Reply::Sse(anth_sse_text_events(&["All ", "done."]), false),
    ]))
    .await;
    let echo = Arc::new(EchoTool::default());
    let mut a = agent(anthropic(&fake, true), echo.clone());
    let mut history = vec![Message::user_text("go")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    assert_eq!(out.final_text, "All done.");
    assert_eq!(echo.calls.lock().unwrap()[0], input);
    // message_start input 25 + 30; message_delta output 40 + 12.
    assert_eq!(out.usage.input_tokens, 55);
    assert_eq!(out.usage.output_tokens, 52);
    let (_, b0) = fake.script.request(0);
    assert_eq!(b0["stream"], true);
}

#[tokio::test]
async fn openai_tool_round_trip_non_streaming_without_key() {
    let fake = serve(Script::new(vec![
        oai_tool("call_1", "echo", &json!({"text": "local"})),
        oai_text("Local done"),
    ]))
    .await;
    let echo = Arc::new(EchoTool::default());
    let mut a = agent(openai(&fake, None, false), echo.clone());
    let mut history = vec![Message::user_text("hello")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    assert_eq!(out.final_text, "Local done");
    assert_eq!(out.usage.input_tokens, 35);
    let (h0, b0) = fake.script.request(0);
    assert!(h0.get("authorization").is_none());
    assert_eq!(b0["messages"][0]["role"], "system");
    assert_eq!(b0["tools"][0]["type"], "function");
    assert_eq!(b0["tools"][0]["function"]["name"], "echo");
    let (_, b1) = fake.script.request(1);
    let msgs = b1["messages"].as_array().unwrap();
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "call_1");
    assert_eq!(msgs[3]["content"], "echo: local");
}

#[tokio::test]
async fn openai_tool_round_trip_streaming_with_key() {
    let input = json!({"text": "chunks"});
    let fake = serve(Script::new(vec![
        Reply::Sse(oai_sse_tool("call_s", "echo", &input), false),
        Reply::Sse(oai_sse_text(&["fin", "ished"]), false),
    ]))
    .await;
    let echo = Arc::new(EchoTool::default());
    let mut a = agent(openai(&fake, Some("llm_key"), true), echo.clone());
    let mut history = vec![Message::user_text("hello")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    assert_eq!(out.final_text, "finished");
    assert_eq!(echo.calls.lock().unwrap()[0], input);
    assert_eq!(out.usage.input_tokens, 24);
    assert_eq!(out.usage.output_tokens, 9);
    let (h0, b0) = fake.script.request(0);
    assert_eq!(h0["authorization"], format!("Bearer {API_KEY}").as_str());
    assert_eq!(b0["stream"], true);
    assert_eq!(b0["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn tool_outside_allowed_set_is_neither_offered_nor_run() {
    let fake = serve(Script::new(vec![
        anth_tool("toolu_x", "echo", json!({"text": "sneaky"}), 10, 10),
        anth_text("ok", 10, 10),
    ]))
    .await;
    let echo = Arc::new(EchoTool::default());
    let mut a = Agent::new(
        anthropic(&fake, false),
        "test-model",
        "",
        vec![echo.clone() as Arc<dyn Tool>],
        &["read_file"],
        price(),
        Limits::default(),
    );
    assert!(a.offered_tools().is_empty());
    let mut history = vec![Message::user_text("x")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed));
    assert!(echo.calls.lock().unwrap().is_empty());
    let (_, b0) = fake.script.request(0);
    assert!(b0.get("tools").is_none());
    let (_, b1) = fake.script.request(1);
    let result = &b1["messages"][2]["content"][0];
    assert_eq!(result["is_error"], true);
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("not available")
    );
}

#[derive(Debug)]
struct ShellTool;

#[async_trait::async_trait]
impl Tool for ShellTool {
    fn name(&self) -> &str {
        "shell"
    }
    fn description(&self) -> &str {
        "Run a command."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {"command": {"type": "string"}}})
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        ToolOutcome::NeedsApproval(ApprovalRequest {
            tool: "shell".into(),
            command: input["command"].as_str().unwrap_or("").into(),
            cwd: "/work/ws".into(),
            reason: "rm needs approval".into(),
            write: None,
        })
    }
}

#[tokio::test]
async fn needs_approval_pauses_and_resume_finishes() {
    let fake = serve(Script::new(vec![
        anth_tool(
            "toolu_sh",
            "shell",
            json!({"command": "rm old.txt"}),
            10,
            10,
        ),
        anth_text("removed", 10, 10),
    ]))
    .await;
    let mut a = Agent::new(
        anthropic(&fake, false),
        "test-model",
        "",
        vec![Arc::new(ShellTool) as Arc<dyn Tool>],
        &["shell"],
        price(),
        Limits::default(),
    );
    let mut history = vec![Message::user_text("clean up")];
    let cancel = CancellationToken::new();
    let out = a.run(&mut history, &cancel).await;
    let EndReason::AwaitingApproval {
        tool_use_id,
        request,
    } = out.end
    else {
        panic!("{:?}", out.end)
    };
    assert_eq!(tool_use_id, "toolu_sh");
    assert_eq!(request.command, "rm old.txt");
    let out = a
        .resume(
            &mut history,
            &tool_use_id,
            ToolOutcome::Output("exit 0".into()),
            &cancel,
        )
        .await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    assert_eq!(out.final_text, "removed");
    let (_, b1) = fake.script.request(1);
    assert_eq!(b1["messages"][2]["content"][0]["content"], "exit 0");
}

#[tokio::test]
async fn openai_stream_without_tool_call_index_keeps_calls_apart() {
    let chunk = |id: &str, text: &str| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"id": id, "type": "function", "function": {"name": "echo", "arguments": json!({"text": text}).to_string()}}
            ]}, "finish_reason": null}]})
        )
    };
    let events = vec![
        chunk("call_a", "one"),
        chunk("call_b", "two"),
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
            .to_string(),
        "data: [DONE]\n\n".to_string(),
    ];
    let fake = serve(Script::new(vec![
        Reply::Sse(events, false),
        oai_text("both done"),
    ]))
    .await;
    let echo = Arc::new(EchoTool::default());
    let mut a = agent(openai(&fake, None, true), echo.clone());
    let mut history = vec![Message::user_text("two calls")];
    let out = a.run(&mut history, &CancellationToken::new()).await;
    assert!(matches!(out.end, EndReason::Completed), "{:?}", out.end);
    let calls = echo.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["text"], "two");
}
