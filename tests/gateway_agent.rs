//! The agent runtime wired into the running appliance: the real `coworkd` in
//! development mode, driven with `coworkctl chat`, talking to a fake Anthropic
//! Messages API (and a fake OpenAI-compatible server) over TLS on loopback,
//! trusted through `[agent] ca_file`. Covers: message → tool call run_command →
//! guard "ask" → approval through `coworkctl approvals approve` → the sandbox
//! runs it → tool result → final reply to the user, every step in the audit
//! trail and the API key nowhere; deny (by `coworkctl approvals deny`; the
//! requester's own "deny" in chat is refused) and expiry; the iteration limit reached
//! through the daemon; cancel during a long command (no process survives) and
//! during a slow model response; a restart mid-task leaves it `interrupted`,
//! then closed or resumed;
//! hostile ids to the new control requests; the admin page lists the pending
//! approval with its full command and approves it; streamed answers and the
//! file tools inside the sandbox (an escape refused); a write of a file that
//! configures execution (`.git/config`) asked, then written exactly or not at all;
//! no provider configured → a plain sentence; a vault value a command prints
//! (plain and base64), and one stored after start, never reaches the audit trail;
//! `[limits]` in force on the agent's tools: a command's output reaches the
//! model cut at `output_cap_bytes`, a command is stopped at
//! `command_timeout_secs`, and a file over `max_file_bytes` is neither written
//! nor read by the file tools nor written by a command.

#![allow(clippy::unwrap_used)]

mod admin_common;
mod agent_support;
mod common;

use std::time::{Duration, Instant};

use agent_support::{API_KEY, Fake, Reply, Script, anth_text, anth_tool, oai_text, oai_tool};
use common::{DEV_CONFIG, Instance, wait_until};
use serde_json::{Value, json};

use common::succeeded as ok;

/// A fake provider on a runtime that keeps serving while the test blocks.
struct Provider {
    rt: tokio::runtime::Runtime,
    fake: Fake,
}

fn provider(replies: Vec<Reply>) -> Provider {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(agent_support::serve(Script::new(replies)));
    Provider { rt, fake }
}

/// Starts coworkd with `[agent]` pointing at the fake; pairs the local user.
fn start(p: &Provider, kind: &str, extra: &str) -> Instance {
    start_streaming(p, kind, extra, false)
}

fn start_streaming(p: &Provider, kind: &str, extra: &str, stream: bool) -> Instance {
    let dir = tempfile::Builder::new()
        .prefix("cwa")
        .tempdir_in("/tmp")
        .unwrap();
    let ca = dir.path().join("llm-ca.pem");
    std::fs::write(&ca, &p.fake.ca_pem).unwrap();
    let config = format!(
        "{DEV_CONFIG}\
         [sandbox]\nrequire_full_isolation = false\n\
         [agent]\nprovider = \"{kind}\"\nmodel = \"claude-test\"\nbase_url = \"{}\"\n\
         secret_name = \"llm_key\"\nca_file = \"{}\"\n{extra}\n\
         [agent.http]\nstream = {stream}\nmax_attempts = 1\n\
         [agent.prices.claude-test]\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 1.0\n",
        p.fake.base_url,
        ca.display()
    );
    std::fs::write(Instance::config_path(dir.path()), config).unwrap();
    let mut i = Instance::start_in(dir, &[], &[]);
    i.wait_notification("READY=1", Duration::from_secs(15));
    ok(&i.ctl_with_input(&["secret", "set", "llm_key"], API_KEY.as_bytes()));
    let code: Value = serde_json::from_str(&ok(&i.ctl(&[
        "pair",
        "new",
        "--channel",
        "local",
        "--json",
    ])))
    .unwrap();
    let paired = ok(&i.ctl(&["chat", &format!("/pair {}", code["code"].as_str().unwrap())]));
    assert!(paired.contains("Paired"), "{paired}");
    i
}

fn chat(i: &Instance, text: &str) -> String {
    ok(&i.ctl(&["chat", text]))
}

fn task_id(text: &str) -> String {
    let at = text
        .find("task t-")
        .unwrap_or_else(|| panic!("no task id in {text:?}"));
    text[at + 5..at + 5 + 14].to_string()
}

fn task(i: &Instance, id: &str) -> Value {
    serde_json::from_str(&ok(&i.ctl(&["tasks", "show", id, "--json"]))).unwrap()
}

fn approvals(i: &Instance) -> Vec<Value> {
    let v: Value = serde_json::from_str(&ok(&i.ctl(&["approvals", "list", "--json"]))).unwrap();
    v.as_array().unwrap().clone()
}

fn audit(i: &Instance) -> Vec<Value> {
    ok(&i.ctl(&["audit", "tail", "-n", "500", "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn kinds(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The last request the fake received, as JSON text.
fn last_request(p: &Provider) -> String {
    let n = p.fake.script.count();
    p.fake.script.request(n - 1).1.to_string()
}

#[test]
fn approved_command_runs_in_the_sandbox_and_the_answer_reaches_the_user() {
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "run_command",
            json!({"command": "echo hello-from-sandbox > out.txt; cat out.txt"}),
            10,
            5,
        ),
        anth_text("The command printed hello-from-sandbox.", 20, 8),
    ]);
    let i = start(&p, "anthropic", "");

    let first = chat(&i, "please run the greeting");
    assert!(first.contains("Working on it"), "{first}");
    assert!(first.contains("needs the owner's approval"), "{first}");
    assert!(
        first.contains("echo hello-from-sandbox > out.txt; cat out.txt"),
        "{first}"
    );
    let id = task_id(&first);
    assert_eq!(task(&i, &id)["state"], "awaiting_approval");

    let pending = approvals(&i);
    assert_eq!(pending.len(), 1, "{pending:?}");
    let a = &pending[0];
    assert_eq!(a["task_id"], id.as_str());
    assert_eq!(
        a["command"],
        "echo hello-from-sandbox > out.txt; cat out.txt"
    );
    assert_eq!(
        a["requester"],
        format!("local:uid:{}", nix::unistd::getuid())
    );
    let aid = a["id"].as_str().unwrap().to_string();

    let approved = ok(&i.ctl(&["approvals", "approve", &aid]));
    assert!(approved.contains("Approved"), "{approved}");
    let answer = ok(&i.ctl(&["chat", "--inbox"]));
    assert!(
        answer.contains("The command printed hello-from-sandbox."),
        "{answer}"
    );
    assert_eq!(task(&i, &id)["state"], "completed");
    // The model got the command's real output, and the key in its header.
    let sent = last_request(&p);
    assert!(sent.contains("hello-from-sandbox\\n"), "{sent}");
    assert!(sent.contains("tool_result"), "{sent}");
    let (headers, body) = p.fake.script.request(0);
    assert_eq!(headers["x-api-key"], API_KEY);
    // A DM on the local channel: every tool of the runtime, and no clipboard.
    let mut offered: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    offered.sort();
    assert_eq!(
        offered,
        [
            "list_files",
            "memory",
            "read_file",
            "run_command",
            "write_file"
        ]
    );
    // An approval is used once: approving again is refused.
    assert!(!i.ctl(&["approvals", "approve", &aid]).status.success());

    let entries = audit(&i);
    let k = kinds(&entries);
    for want in [
        "task.created",
        "task.started",
        "task.tool_call",
        "approval.requested",
        "approval.approved",
        "command.started",
        "command.finished",
        "command.run",
        "task.completed",
    ] {
        assert!(k.iter().any(|x| x == want), "no {want} in {k:?}");
    }
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(API_KEY), "API key in the audit trail");
    assert!(!i.log().contains(API_KEY), "API key in the log");
    assert!(
        !text.contains("please run the greeting"),
        "message text in the trail"
    );
    // Users, pairing, the vault, tasks and approvals all went through the
    // gateway's one connection to state.db; the replay writer has the only
    // other (its commits go beside the lookups every message makes).
    let gateway = i.pid_of("gateway").expect("the gateway's pid");
    let state_db: Vec<_> = std::fs::read_dir(format!("/proc/{gateway}/fd"))
        .expect("the gateway's descriptors")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.file_name().is_some_and(|n| n == "state.db"))
        .collect();
    assert_eq!(state_db.len(), 2, "state.db open {} times", state_db.len());
}

/// Runs the task the fake model drives with `message` through its one
/// approval; returns the final answer.
fn run_approved(i: &Instance, message: &str) -> String {
    let first = chat(i, message);
    assert!(first.contains("needs the owner's approval"), "{first}");
    let pending = approvals(i);
    assert_eq!(pending.len(), 1, "{pending:?}");
    let aid = pending[0]["id"].as_str().unwrap().to_string();
    ok(&i.ctl(&["approvals", "approve", &aid]));
    ok(&i.ctl(&["chat", "--inbox"]))
}

/// base64 of `s` (standard alphabet, padded), as `base64` prints it.
fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn vault_values_printed_by_commands_never_reach_the_trail() {
    // Shapes no pattern knows: only the vault's own values can hide them.
    const STORED: &str = "e2eVaultValue7Qx9mZ";
    const LATER: &str = "lateVaultValue3Kp2wR";
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "run_command",
            json!({"command": format!("echo {STORED}; printf %s {STORED} | base64")}),
            1,
            1,
        ),
        anth_text("printed it", 1, 1),
        anth_tool(
            "toolu_2",
            "run_command",
            json!({"command": format!("echo {LATER}; printf %s {LATER} | base64")}),
            1,
            1,
        ),
        anth_text("printed the new one", 1, 1),
    ]);
    let i = start(&p, "anthropic", "");
    ok(&i.ctl_with_input(&["secret", "set", "deploy_token"], STORED.as_bytes()));

    let answer = run_approved(&i, "print the stored token");
    assert!(answer.contains("printed it"), "{answer}");
    // The command really printed both forms (the model saw them).
    let sent = last_request(&p);
    assert!(
        sent.contains(STORED) && sent.contains(&b64(STORED)),
        "{sent}"
    );

    // A secret stored after start is redacted from the next entry on.
    ok(&i.ctl_with_input(
        &["secret", "set", "late_token"],
        format!("{LATER}\n").as_bytes(),
    ));
    let answer = run_approved(&i, "print the new token");
    assert!(answer.contains("printed the new one"), "{answer}");

    let entries = audit(&i);
    let k = kinds(&entries);
    for want in ["task.tool_call", "approval.requested", "command.finished"] {
        assert!(k.iter().any(|x| x == want), "no {want} in {k:?}");
    }
    let text = serde_json::to_string(&entries).unwrap();
    for (what, value) in [
        ("stored value", STORED.to_string()),
        ("stored value in base64", b64(STORED)),
        ("later value", LATER.to_string()),
        ("later value in base64", b64(LATER)),
    ] {
        assert!(!text.contains(&value), "{what} in the audit trail: {text}");
    }
    // Command lines and outputs of both tasks: at least 2 marks each.
    assert!(
        text.matches("[REDACTED:known_secret]").count() >= 4,
        "{text}"
    );
    assert!(!i.log().contains(STORED), "vault value in the log");
    assert!(!i.log().contains(LATER), "vault value in the log");
}

#[test]
fn deny_and_expiry_reach_the_model_as_denials() {
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "run_command",
            json!({"command": "touch a"}),
            1,
            1,
        ),
        anth_text("Understood, I did not run it.", 1, 1),
        anth_tool(
            "toolu_2",
            "run_command",
            json!({"command": "touch b"}),
            1,
            1,
        ),
        anth_text("The request expired.", 1, 1),
    ]);
    let i = start(&p, "anthropic", "approval_ttl_secs = 30");

    let first = chat(&i, "touch a");
    let aid = approvals(&i)[0]["id"].as_str().unwrap().to_string();
    // The first paired user (us) is no approver (issue 16.1): the local
    // channel names none, and nobody answers their own request in chat.
    let refused = chat(&i, &format!("deny {aid}"));
    assert!(refused.contains("not an approver"), "{refused}");
    assert_eq!(approvals(&i).len(), 1, "still waiting");
    let denied = ok(&i.ctl(&["approvals", "deny", &aid]));
    assert!(denied.contains("Denied"), "{denied}");
    let answer = ok(&i.ctl(&["chat", "--inbox"]));
    assert!(answer.contains("I did not run it"), "{answer}");
    assert!(last_request(&p).contains("denied: the owner denied"));
    assert_eq!(task(&i, &task_id(&first))["state"], "completed");

    // Hostile and unknown ids: refused, nothing changes.
    for bad in [
        "a-000000000000",
        "../../etc",
        "a-",
        &"a".repeat(5000),
        "t-zzzzzzzzzzzz",
    ] {
        let out = i.ctl(&["approvals", "approve", bad]);
        assert!(!out.status.success(), "{bad}");
        let out = i.ctl(&["tasks", "cancel", bad]);
        assert!(!out.status.success(), "{bad}");
        let out = i.ctl(&["tasks", "show", bad]);
        assert!(!out.status.success(), "{bad}");
    }

    // Listing limits out of range are clamped, not errors.
    for n in ["0", "4294967295"] {
        let list: Value =
            serde_json::from_str(&ok(&i.ctl(&["tasks", "list", "-n", n, "--json"]))).unwrap();
        assert!(!list.as_array().unwrap().is_empty(), "-n {n}");
    }
    // An answer in chat from a sender who is no approver: one plain sentence,
    // whatever the id.
    assert!(chat(&i, "approve a-0123456789ab").contains("not an approver"));

    let second = chat(&i, "touch b");
    let id = task_id(&second);
    assert_eq!(approvals(&i).len(), 1);
    wait_until(Duration::from_secs(40), "the approval to expire", || {
        (task(&i, &id)["state"] == "completed").then_some(())
    });
    assert!(last_request(&p).contains("expired without an answer"));
    let answer = ok(&i.ctl(&["chat", "--inbox"]));
    assert!(answer.contains("The request expired."), "{answer}");
    let trail = audit(&i);
    let k = kinds(&trail);
    assert!(k.iter().any(|x| x == "approval.denied"), "{k:?}");
    assert!(k.iter().any(|x| x == "approval.expired"), "{k:?}");
    // Who refused, and who was refused: the trail names both.
    let denied = trail
        .iter()
        .find(|e| e["kind"] == "approval.denied")
        .unwrap();
    assert_eq!(denied["payload"]["via"], "coworkctl", "{denied}");
    let refused = trail
        .iter()
        .find(|e| e["kind"] == "approval.refused")
        .unwrap();
    assert_eq!(refused["payload"]["why"], "not_an_approver", "{refused}");
    assert_eq!(
        refused["payload"]["sender"],
        format!("uid:{}", nix::unistd::getuid()),
        "{refused}"
    );
    assert!(
        !k.iter().any(|x| x == "command.started"),
        "nothing ran: {k:?}"
    );
}

#[test]
fn iteration_limit_and_openai_provider() {
    // The model asks for a blocked command forever; the limit ends it.
    let p = provider(Vec::new());
    *p.fake.script.fallback.lock().unwrap() = Some(oai_tool(
        "call_1",
        "run_command",
        &json!({"command": "rm -rf /"}),
    ));
    let i = start(&p, "openai", "");
    let out = chat(&i, "clean up");
    // [limits] default: 50 model calls.
    assert!(out.contains("limit of 50 model calls"), "{out}");
    assert_eq!(p.fake.script.count(), 50);
    assert!(last_request(&p).contains("blocked by the guard"));
    let k = kinds(&audit(&i));
    assert!(k.iter().any(|x| x == "task.limit_hit"), "{k:?}");
    assert!(!k.iter().any(|x| x == "command.started"), "{k:?}");
    // The OpenAI-compatible path answers too.
    *p.fake.script.fallback.lock().unwrap() = Some(oai_text("hi from the local model"));
    assert!(chat(&i, "hello").contains("hi from the local model"));
}

fn sleep_children_alive() -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && cmd.split(|b| *b == 0).any(|w| w == b"61.5")
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn cancel_stops_a_long_command_and_a_slow_model() {
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "run_command",
            json!({"command": "sleep 61.5"}),
            1,
            1,
        ),
        anth_text("unused", 1, 1),
    ]);
    let i = start(&p, "anthropic", "");
    // A trusted pattern lets `sleep` run without approval.
    let cfg = Instance::config_path(i.dir.path());
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replacen("[sandbox]", "[guard]\ntrusted = [\"sleep\"]\n[sandbox]", 1);
    std::fs::write(&cfg, text).unwrap();
    let i = i.restart();

    let ack = ok(&i.ctl(&["chat", "--no-wait", "sleep for a minute"]));
    let id = task_id(&ack);
    wait_until(Duration::from_secs(15), "the command to start", || {
        (!sleep_children_alive().is_empty()).then_some(())
    });
    let started = Instant::now();
    ok(&i.ctl(&["tasks", "cancel", &id]));
    wait_until(Duration::from_secs(2), "the task to be cancelled", || {
        (task(&i, &id)["state"] == "cancelled").then_some(())
    });
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_until(Duration::from_secs(2), "no sleep left", || {
        sleep_children_alive().is_empty().then_some(())
    });
    assert!(ok(&i.ctl(&["chat", "--inbox"])).contains("was cancelled"));

    // A slow model answer: cancel aborts the request.
    p.fake.script.replies.lock().unwrap().clear();
    *p.fake.script.fallback.lock().unwrap() = Some(Reply::Slow(
        Duration::from_secs(60),
        Box::new(anth_text("too late", 1, 1)),
    ));
    let asked = p.fake.script.count();
    let ack = ok(&i.ctl(&["chat", "--no-wait", "think slowly"]));
    let id = task_id(&ack);
    wait_until(Duration::from_secs(10), "the model asked", || {
        (p.fake.script.count() > asked).then_some(())
    });
    let started = Instant::now();
    ok(&i.ctl(&["tasks", "cancel", "--force", &id]));
    wait_until(
        Duration::from_secs(2),
        "the slow task to be cancelled",
        || (task(&i, &id)["state"] == "cancelled").then_some(()),
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Cancelling again: it has ended.
    assert!(!i.ctl(&["tasks", "cancel", &id]).status.success());
    let k = kinds(&audit(&i));
    assert!(k.iter().any(|x| x == "task.cancelled"), "{k:?}");
}

#[test]
fn restart_mid_task_leaves_it_interrupted_then_closed_or_resumed() {
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "run_command",
            json!({"command": "touch x"}),
            1,
            1,
        ),
        anth_tool(
            "toolu_2",
            "run_command",
            json!({"command": "touch y"}),
            1,
            1,
        ),
        anth_text("resumed and done", 1, 1),
    ]);
    let i = start(&p, "anthropic", "");
    let first = chat(&i, "touch x");
    let id = task_id(&first);
    assert_eq!(task(&i, &id)["state"], "awaiting_approval");
    let aid = approvals(&i)[0]["id"].as_str().unwrap().to_string();
    let i = i.restart();
    let list: Value = serde_json::from_str(&ok(&i.ctl(&["tasks", "list", "--json"]))).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["state"], "interrupted");
    // Its approval cannot resume anything now.
    assert!(!i.ctl(&["approvals", "approve", &aid]).status.success());
    let closed = ok(&i.ctl(&["tasks", "cancel", &id]));
    assert!(closed.contains("closed"), "{closed}");
    assert_eq!(task(&i, &id)["state"], "cancelled");
    assert!(!i.ctl(&["tasks", "resume", &id]).status.success());
    assert!(kinds(&audit(&i)).iter().any(|k| k == "task.interrupted"));

    // The next one is resumed after the restart: it runs again from its message.
    let second = chat(&i, "touch y");
    let id = task_id(&second);
    let i = i.restart();
    assert_eq!(task(&i, &id)["state"], "interrupted");
    let resumed = ok(&i.ctl(&["tasks", "resume", &id]));
    assert!(resumed.contains("resumed"), "{resumed}");
    let answer = ok(&i.ctl(&["chat", "--inbox"]));
    assert!(answer.contains("resumed and done"), "{answer}");
    assert_eq!(task(&i, &id)["state"], "completed");
    assert!(
        last_request(&p).contains("touch y"),
        "the model saw the message again"
    );
    assert!(kinds(&audit(&i)).iter().any(|k| k == "task.resumed"));
}

#[test]
fn without_a_provider_tasks_are_refused_plainly() {
    let i = Instance::start();
    let out = i.ctl(&["tasks", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no LLM provider is configured"));
    let out = i.ctl(&["settings", "test-agent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no LLM provider is configured"));
}

/// The owner's "test connection" (issue 15): one short request under the
/// settings in force; the model's words, or the provider's refusal in one
/// sentence without the key; both audited.
#[test]
fn test_connection_reaches_the_provider_and_says_why_not() {
    let p = provider(vec![
        anth_text("OK", 12, 1),
        Reply::Json(
            401,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
        ),
    ]);
    let i = start(&p, "anthropic", "");
    let said = ok(&i.ctl(&["settings", "test-agent"]));
    assert!(
        said.contains("anthropic answered with model claude-test: \"OK\" (12 tokens in, 1 out)"),
        "{said}"
    );
    let (headers, body) = p.fake.script.request(p.fake.script.count() - 1);
    assert_eq!(body["max_tokens"], 16, "a minimal request: {body}");
    assert_eq!(headers["x-api-key"], API_KEY);
    let out = i.ctl(&["settings", "test-agent", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let why = v["error"].as_str().unwrap_or_default().to_string();
    assert!(v["ok"] == false && why.contains("401"), "{v}");
    assert!(!why.contains(API_KEY));
    wait_until(Duration::from_secs(10), "both tests audited", || {
        let tested: Vec<Value> = audit(&i)
            .into_iter()
            .filter(|e| e["kind"] == "agent.provider_tested")
            .collect();
        (tested.len() == 2).then_some(())
    });
}

#[test]
fn admin_page_shows_and_decides_approvals() {
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "run_command",
            json!({"command": "echo via-admin"}),
            1,
            1,
        ),
        anth_text("Ran it from the admin page's approval.", 1, 1),
    ]);
    let i = start(&p, "anthropic", "");
    let id = task_id(&chat(&i, "echo via admin"));
    let info: Value = wait_until(Duration::from_secs(10), "admin info", || {
        let out = i.ctl(&["admin", "info", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    });
    let url = info["urls"][0]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let host = url.trim_start_matches("https://").to_string();
    let der = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {host} </dev/null 2>/dev/null | openssl x509 -outform DER"
        ))
        .output()
        .unwrap()
        .stdout;
    let token = ok(&i.ctl(&["admin", "setup-token"])).trim().to_string();
    let mut c = admin_common::Client::new(&url, &der);
    p.rt.block_on(c.setup(&token, "correct horse battery staple"));
    assert_eq!(
        p.rt.block_on(c.login("correct horse battery staple"))
            .status,
        303
    );

    let tasks = p.rt.block_on(c.get("/tasks")).body;
    assert!(tasks.contains("waiting_approval"), "{tasks}");
    let page = p.rt.block_on(c.get("/approvals")).body;
    assert!(page.contains("echo via-admin"), "{page}");
    let aid = approvals(&i)[0]["id"].as_str().unwrap().to_string();
    let number = u64::from_str_radix(&aid[2..], 16).unwrap().to_string();
    let r = p.rt.block_on(c.submit(
        "/approvals",
        "/approvals/decide",
        &[("id", &number), ("decision", "approve")],
    ));
    assert!(r.status == 303 || r.status == 200, "{}", r.body);
    let answer = ok(&i.ctl(&["chat", "--inbox"]));
    assert!(answer.contains("Ran it from the admin page"), "{answer}");
    assert_eq!(task(&i, &id)["state"], "completed");
    let approved = audit(&i)
        .into_iter()
        .find(|e| e["kind"] == "approval.approved")
        .unwrap();
    assert!(
        approved["payload"]["approver"]
            .as_str()
            .unwrap()
            .starts_with("admin"),
        "{approved}"
    );
    assert_eq!(approved["payload"]["via"], "admin page", "{approved}");
}

#[test]
fn streamed_answers_and_file_tools_through_the_sandbox() {
    let p = provider(vec![
        Reply::Sse(
            agent_support::anth_sse_tool_events(
                "toolu_1",
                "write_file",
                &json!({"path": "notes/plan.txt", "content": "step one"}),
            ),
            false,
        ),
        Reply::Sse(
            agent_support::anth_sse_tool_events(
                "toolu_2",
                "read_file",
                &json!({"path": "notes/plan.txt"}),
            ),
            false,
        ),
        Reply::Sse(
            agent_support::anth_sse_tool_events(
                "toolu_3",
                "read_file",
                &json!({"path": "../../../../etc/passwd"}),
            ),
            false,
        ),
        Reply::Sse(
            agent_support::anth_sse_text_events(&["The plan ", "is saved."]),
            false,
        ),
    ]);
    let i = start_streaming(&p, "anthropic", "", true);
    let out = chat(&i, "save the plan");
    assert!(out.contains("The plan is saved."), "{out}");
    // The read came back with what was written; the escape was refused.
    let third = p.fake.script.request(2).1.to_string();
    assert!(third.contains("step one"), "{third}");
    let fourth = last_request(&p);
    assert!(fourth.contains("is refused"), "{fourth}");
    assert!(!fourth.contains("root:x:0:0"), "{fourth}");
    let ws = std::fs::read_dir(i.dir.path().join("state/sandbox/workspaces"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("u-"))
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(ws.join("notes/plan.txt")).unwrap(),
        "step one"
    );
    let k = kinds(&audit(&i));
    assert_eq!(
        k.iter().filter(|x| *x == "task.tool_call").count(),
        3,
        "{k:?}"
    );
}

/// The workspace directory of the (only) paired user.
fn user_workspace(i: &Instance) -> std::path::PathBuf {
    std::fs::read_dir(i.dir.path().join("state/sandbox/workspaces"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("u-"))
        .unwrap()
        .path()
}

/// write_file of a file that configures execution (`.git/config`) is an approval,
/// not a write: approved, exactly the approved content is written; denied, nothing
/// is. An ordinary file is still written at once (issue 17.3, 16.5).
#[test]
fn writes_of_execution_configuring_files_need_approval() {
    let planted = "[core]\n\tfsmonitor = /workspace/hook.sh\n";
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "write_file",
            json!({"path": "notes.txt", "content": "plain"}),
            1,
            1,
        ),
        anth_tool(
            "toolu_2",
            "write_file",
            json!({"path": ".git/config", "content": planted}),
            1,
            1,
        ),
        anth_text("Denied, so not written.", 1, 1),
        anth_tool(
            "toolu_3",
            "write_file",
            json!({"path": "./.git/config", "content": planted}),
            1,
            1,
        ),
        anth_text("Written after approval.", 1, 1),
    ]);
    let i = start(&p, "anthropic", "");

    let first = chat(&i, "configure git");
    assert!(first.contains("needs the owner's approval"), "{first}");
    assert!(
        first.contains("write_file .git/config (39 bytes, sha256 "),
        "{first}"
    );
    assert!(first.contains("> [core]"), "first lines shown: {first}");
    let ws = user_workspace(&i);
    assert_eq!(
        std::fs::read_to_string(ws.join("notes.txt")).unwrap(),
        "plain"
    );
    assert!(!ws.join(".git").exists(), "written before approval");
    let pending = approvals(&i);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(
        pending[0]["command"]
            .as_str()
            .unwrap()
            .starts_with("write_file .git/config (39 bytes, sha256 "),
        "{pending:?}"
    );
    let aid = pending[0]["id"].as_str().unwrap().to_string();
    let denied = ok(&i.ctl(&["approvals", "deny", &aid]));
    assert!(denied.contains("Denied"), "{denied}");
    let answer = ok(&i.ctl(&["chat", "--inbox"]));
    assert!(answer.contains("Denied, so not written."), "{answer}");
    assert!(!ws.join(".git").exists(), "written after a denial");

    chat(&i, "configure git again");
    let aid = approvals(&i)[0]["id"].as_str().unwrap().to_string();
    let approved = ok(&i.ctl(&["approvals", "approve", &aid]));
    assert!(approved.contains("Approved"), "{approved}");
    let answer = ok(&i.ctl(&["chat", "--inbox"]));
    assert!(answer.contains("Written after approval."), "{answer}");
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/config")).unwrap(),
        planted
    );
    let k = kinds(&audit(&i));
    assert!(k.iter().any(|x| x == "file.write_approved"), "{k:?}");
    assert_eq!(k.iter().filter(|x| *x == "approval.requested").count(), 2);
}

/// `[limits]` output_cap_bytes, command_timeout_secs and max_file_bytes hold
/// for the agent's commands and file tools (issue 15).
#[test]
fn limits_bound_the_agents_commands_and_files() {
    let p = provider(vec![
        anth_tool(
            "toolu_1",
            "run_command",
            json!({"command": "seq 1 1000"}),
            1,
            1,
        ),
        anth_tool(
            "toolu_2",
            "run_command",
            json!({"command": "sleep 30"}),
            1,
            1,
        ),
        anth_text("Printed and waited.", 1, 1),
        anth_tool(
            "toolu_3",
            "write_file",
            json!({"path": "big.txt", "content": "y".repeat(2000)}),
            1,
            1,
        ),
        anth_tool("toolu_4", "read_file", json!({"path": "planted.txt"}), 1, 1),
        anth_tool(
            "toolu_5",
            "run_command",
            json!({"command": "head -c 3000 /dev/zero > big.bin"}),
            1,
            1,
        ),
        anth_text("Files tried.", 1, 1),
    ]);
    let i = start(
        &p,
        "anthropic",
        "[guard]\ntrusted = [\"seq\", \"sleep\", \"head\"]\n\
         [limits]\ncommand_timeout_secs = 2\noutput_cap_bytes = 100\nmax_file_bytes = 1000\n",
    );

    let started = Instant::now();
    let out = chat(&i, "print and wait");
    assert!(out.contains("Printed and waited."), "{out}");
    // The output, cut at 100 bytes and marked.
    let full: String = (1..=1000).map(|n| format!("{n}\n")).collect();
    let head = serde_json::to_string(&full[..100]).unwrap();
    let head = &head[1..head.len() - 1];
    let second = p.fake.script.request(1).1.to_string();
    assert!(
        second.contains(&format!("{head}\\n[output truncated at 100 bytes]")),
        "{second}"
    );
    assert!(!second.contains("\\n999\\n"), "{second}");
    // `sleep 30` stopped at the 2 s command timeout.
    let third = p.fake.script.request(2).1.to_string();
    assert!(third.contains("exit code 124 (timed_out)"), "{third}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let ws = user_workspace(&i);
    std::fs::write(ws.join("planted.txt"), "z".repeat(2000)).unwrap();
    let out = chat(&i, "try the files");
    assert!(out.contains("Files tried."), "{out}");
    let wrote = p.fake.script.request(4).1.to_string();
    assert!(
        wrote.contains("not written: the content is 2000 bytes, over the 1000-byte file limit"),
        "{wrote}"
    );
    assert!(!ws.join("big.txt").exists());
    let read = p.fake.script.request(5).1.to_string();
    assert!(
        read.contains("is 2000 bytes, over the 1000-byte limit"),
        "{read}"
    );
    assert!(!read.contains("zzzz"), "{read}");
    // The command's file stops at 1000 bytes: RLIMIT_FSIZE, SIGXFSZ (128 + 25).
    let ran = last_request(&p);
    assert!(ran.contains("exit code 153 (exited)"), "{ran}");
    assert_eq!(std::fs::metadata(ws.join("big.bin")).unwrap().len(), 1000);
}
