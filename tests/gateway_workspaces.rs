//! Workspaces per context and what one sender may use, through the running
//! appliance (the real coworkd in development mode, a fake Telegram Bot API and
//! a fake OpenAI-compatible LLM, both over TLS on loopback).
//! Issue 17.4: by default a sender's group task does not see what their DM
//! tasks wrote (one workspace per chat); with `workspace_scope = "per-sender"` the
//! owner shares one, and then an approval lapses and is asked again when
//! another task writes the workspace between the request and the run.
//! Issue 17.5: a sender's tasks at once and daily tokens are bounded; file-tool
//! writes stop at the workspace quota, a command writing past it is stopped,
//! and below the disk reserve nothing grows; each ends in a plain refusal while
//! the appliance keeps answering and auditing.

#![allow(clippy::unwrap_used)]

mod agent_support;
mod common;
mod gateway_transport_common;

use std::sync::Arc;
use std::time::Duration;

use agent_support::{API_KEY, Fake, Reply, Script, oai_text, oai_tool};
use common::{DEV_CONFIG, Instance, wait_until};
use gateway_transport_common::telegram::{self, SharedTelegram, dm, group_mention};
use gateway_transport_common::{serve_tls, test_tls};
use serde_json::{Value, json};

const TG_TOKEN: &str = "123456:AAbbCC-dd_ee";
const USER: i64 = 111;
const GROUP: i64 = -100;

struct Setup {
    rt: tokio::runtime::Runtime,
    llm: Fake,
    tg: SharedTelegram,
    i: Instance,
    next_update: i64,
}

fn ok(i: &Instance, args: &[&str]) -> String {
    let out = i.ctl(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lines added to the configuration's sections.
#[derive(Default)]
struct Extra {
    channel: &'static str,
    sandbox: &'static str,
    limits: &'static str,
}

/// coworkd with a Telegram channel and the fake LLM answering `replies`; user
/// 111 paired through a DM.
fn start(replies: Vec<Reply>, channel_extra: &'static str) -> Setup {
    start_with(
        replies,
        Extra {
            channel: channel_extra,
            ..Extra::default()
        },
    )
}

fn start_with(replies: Vec<Reply>, extra: Extra) -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tg: SharedTelegram = Arc::default();
    let tls = test_tls();
    let (llm, tg_base) = rt.block_on(async {
        let llm = agent_support::serve(Script::new(replies)).await;
        let base = serve_tls(telegram::router(tg.clone(), TG_TOKEN), &tls).await;
        (llm, base)
    });
    let dir = tempfile::Builder::new()
        .prefix("cww")
        .tempdir_in("/tmp")
        .unwrap();
    let tg_ca = dir.path().join("tg-ca.pem");
    std::fs::write(&tg_ca, &tls.ca_pem).unwrap();
    let llm_ca = dir.path().join("llm-ca.pem");
    std::fs::write(&llm_ca, &llm.ca_pem).unwrap();
    let config = format!(
        "{DEV_CONFIG}\
         [sandbox]\nrequire_full_isolation = false\n{}\n[limits]\n{}\n\
         [agent]\nprovider = \"openai\"\nmodel = \"fake\"\nbase_url = \"{}\"\n\
         secret_name = \"llm_key\"\nca_file = \"{}\"\n\
         [agent.http]\nstream = false\nmax_attempts = 1\n\
         [agent.prices.fake]\ninput_usd_per_mtok = 0.0\noutput_usd_per_mtok = 0.0\n\
         [channels.telegram]\n{}\n\
         [channels.telegram.transport]\nkind = \"telegram-polling\"\napi_base = \"{tg_base}\"\n\
         token_secret = \"telegram_bot_token\"\nbot_user = \"cowork_bot\"\nca_file = \"{}\"\n",
        extra.sandbox,
        extra.limits,
        llm.base_url,
        llm_ca.display(),
        extra.channel,
        tg_ca.display()
    );
    std::fs::write(Instance::config_path(dir.path()), config).unwrap();
    let mut i = Instance::start_in(dir, &[], &[]);
    i.wait_notification("READY=1", Duration::from_secs(15));
    for (name, value) in [("llm_key", API_KEY), ("telegram_bot_token", TG_TOKEN)] {
        let out = i.ctl_with_input(&["secret", "set", name], value.as_bytes());
        assert!(out.status.success(), "{out:?}");
    }
    ok(&i, &["reload"]);
    let mut s = Setup {
        rt,
        llm,
        tg,
        i,
        next_update: 1,
    };
    let code: Value = serde_json::from_str(&ok(
        &s.i,
        &["pair", "new", "--channel", "telegram", "--json"],
    ))
    .unwrap();
    let code = code["code"].as_str().unwrap().to_string();
    s.send_dm(&format!("/pair {code}"));
    s.reply_containing(USER, "Paired");
    s
}

impl Setup {
    fn send_dm(&mut self, text: &str) {
        let n = self.next_update;
        self.next_update += 1;
        self.tg.lock().unwrap().push(dm(n, USER, text));
    }

    fn send_group(&mut self, text: &str) {
        let n = self.next_update;
        self.next_update += 1;
        self.tg
            .lock()
            .unwrap()
            .push(group_mention(n, GROUP, USER, "cowork_bot", text));
    }

    /// Waits for a message to `chat` containing `needle`; returns its text.
    fn reply_containing(&self, chat: i64, needle: &str) -> String {
        let chat = chat.to_string();
        wait_until(
            Duration::from_secs(20),
            &format!("a reply with {needle:?}"),
            || {
                self.tg
                    .lock()
                    .unwrap()
                    .sent
                    .iter()
                    .find(|(c, t)| *c == chat && t.contains(needle))
                    .map(|(_, t)| t.clone())
            },
        )
    }

    fn pending(&self) -> Vec<Value> {
        let v: Value =
            serde_json::from_str(&ok(&self.i, &["approvals", "list", "--json"])).unwrap();
        v.as_array().unwrap().clone()
    }

    fn audit_kinds(&self) -> Vec<String> {
        ok(&self.i, &["audit", "tail", "-n", "500", "--json"])
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// The tool result the model was sent in request `n`.
    fn tool_result(&self, n: usize) -> String {
        let (_, body) = self.llm.script.request(n);
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["role"], "tool", "{body}");
        last["content"].as_str().unwrap().to_string()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.i.stop();
        let _ = &self.rt;
    }
}

#[test]
fn a_group_task_does_not_see_the_dm_workspace() {
    let mut s = start(
        vec![
            // DM: write a private note, then answer.
            oai_tool(
                "c1",
                "write_file",
                &json!({"path": "dm-private.txt", "content": "only for the DM"}),
            ),
            oai_text("Noted."),
            // Group: list the workspace, then answer.
            oai_tool("c2", "list_files", &json!({"path": "."})),
            oai_text("Listed."),
        ],
        "",
    );
    s.send_dm("keep a private note");
    s.reply_containing(USER, "Noted.");
    s.send_group("what files are there?");
    s.reply_containing(GROUP, "Listed.");
    let listing = s.tool_result(3);
    assert!(
        !listing.contains("dm-private.txt"),
        "the group task listed the DM's file: {listing}"
    );
}

#[test]
fn a_shared_workspace_written_after_the_request_makes_the_approval_lapse() {
    let mut s = start(
        vec![
            // DM task: a command that needs the owner's approval.
            oai_tool(
                "c1",
                "run_command",
                &json!({"command": "cat notes.txt 2>/dev/null; echo ran-$((40+2))"}),
            ),
            // Group task of the same sender, same (shared) workspace: a write.
            oai_tool(
                "c2",
                "write_file",
                &json!({"path": "notes.txt", "content": "written by the group task"}),
            ),
            oai_text("Written."),
            // The DM task, after the second approval.
            oai_text("Done."),
        ],
        "workspace_scope = \"per-sender\"",
    );
    s.send_dm("run the check");
    s.reply_containing(USER, "needs the owner's approval");
    let first = s.pending();
    assert_eq!(first.len(), 1, "{first:?}");
    let first_id = first[0]["id"].as_str().unwrap().to_string();

    // Meanwhile the group task writes into the shared workspace.
    s.send_group("write the notes");
    s.reply_containing(GROUP, "Written.");

    // Approving now would run against a workspace the owner has not seen.
    let approved = ok(&s.i, &["approvals", "approve", &first_id]);
    assert!(approved.contains("Approved"), "{approved}");
    let second = wait_until(Duration::from_secs(20), "a new approval request", || {
        s.pending()
            .into_iter()
            .find(|a| a["id"].as_str() != Some(first_id.as_str()))
    });
    assert_eq!(second["command"], first[0]["command"]);
    assert!(s.audit_kinds().iter().any(|k| k == "approval.lapsed"));
    assert_eq!(s.llm.script.count(), 3, "the lapsed approval ran nothing");

    // Approved again, with the workspace as it is: it runs.
    let second_id = second["id"].as_str().unwrap().to_string();
    ok(&s.i, &["approvals", "approve", &second_id]);
    s.reply_containing(USER, "Done.");
    let result = s.tool_result(3);
    assert!(result.contains("ran-42"), "{result}");
    assert!(result.contains("written by the group task"), "{result}");
}

impl Setup {
    /// The appliance still answers and its trail verifies.
    fn still_answers_and_audits(&self) {
        let status = self.i.ctl(&["status"]);
        assert!(status.status.success(), "{status:?}");
        let verify = self.i.ctl(&["audit", "verify"]);
        assert!(verify.status.success(), "{verify:?}");
    }
}

#[test]
fn a_sender_runs_a_bounded_number_of_tasks_at_once() {
    let mut s = start_with(
        vec![oai_tool(
            "c1",
            "run_command",
            &json!({"command": "echo waiting-for-$((1+1))"}),
        )],
        Extra {
            limits: "max_tasks_per_user = 1",
            ..Extra::default()
        },
    );
    s.send_dm("run something");
    s.reply_containing(USER, "needs the owner's approval");
    // The same sender from a group: a second task at once is refused.
    s.send_group("and something else");
    let refused = s.reply_containing(GROUP, "in progress");
    assert!(refused.contains("at most 1 at once"), "{refused}");
    assert!(s.audit_kinds().iter().any(|k| k == "task.refused"));
    assert_eq!(s.llm.script.count(), 1, "the refused task called no model");
    s.still_answers_and_audits();
}

#[test]
fn a_sender_past_the_daily_budget_is_told_so() {
    let mut s = start_with(
        vec![
            // 24 + 27 tokens: past the day's 40.
            oai_tool("c1", "list_files", &json!({"path": "."})),
            oai_text("Listed."),
        ],
        Extra {
            limits: "max_tokens_per_user_per_day = 40",
            ..Extra::default()
        },
    );
    s.send_dm("list my files");
    s.reply_containing(USER, "Listed.");
    // The reply goes out just before the task stops counting as in progress:
    // a message in between is told so, and is sent again.
    let refused = loop {
        let seen = s.tg.lock().unwrap().sent.len();
        s.send_dm("and again");
        let answer = wait_until(Duration::from_secs(20), "an answer", || {
            s.tg.lock().unwrap().sent.get(seen).map(|(_, t)| t.clone())
        });
        if !answer.contains("still in progress") {
            break answer;
        }
    };
    assert!(refused.contains("today's budget"), "{refused}");
    assert!(refused.contains("40 tokens"), "{refused}");
    assert_eq!(s.llm.script.count(), 2, "the refused task called no model");
    s.still_answers_and_audits();
}

#[test]
fn file_writes_stop_at_the_workspace_quota() {
    let chunk = "x".repeat(400 * 1024);
    let write = |n: u32| {
        oai_tool(
            &format!("c{n}"),
            "write_file",
            &json!({"path": format!("part{n}.txt"), "content": chunk}),
        )
    };
    let mut s = start_with(
        vec![write(1), write(2), write(3), oai_text("Stored.")],
        Extra {
            sandbox: "workspace_quota_bytes = 1048576",
            ..Extra::default()
        },
    );
    s.send_dm("store three parts");
    s.reply_containing(USER, "Stored.");
    assert!(s.tool_result(1).contains("wrote"), "{}", s.tool_result(1));
    assert!(s.tool_result(2).contains("wrote"), "{}", s.tool_result(2));
    let third = s.tool_result(3);
    assert!(
        third.contains("not written") && third.contains("quota"),
        "{third}"
    );
    s.still_answers_and_audits();
}

#[test]
fn a_command_writing_past_the_quota_is_stopped() {
    let mut s = start_with(
        vec![
            oai_tool(
                "c1",
                "run_command",
                &json!({"command": "head -c 5000000 /dev/zero > big.bin; echo exit-$?"}),
            ),
            oai_text("Tried."),
        ],
        Extra {
            sandbox: "workspace_quota_bytes = 1048576",
            ..Extra::default()
        },
    );
    s.send_dm("make a big file");
    s.reply_containing(USER, "needs the owner's approval");
    let id = s.pending()[0]["id"].as_str().unwrap().to_string();
    ok(&s.i, &["approvals", "approve", &id]);
    s.reply_containing(USER, "Tried.");
    let result = s.tool_result(1);
    // The file size limit (the quota) stops the write: head fails.
    assert!(!result.contains("exit-0"), "{result}");
    let kinds = s.audit_kinds();
    assert!(kinds.iter().any(|k| k == "command.finished"), "{kinds:?}");
    s.still_answers_and_audits();
}

#[test]
fn below_the_disk_reserve_no_workspace_grows() {
    let mut s = start_with(
        vec![
            oai_tool(
                "c1",
                "write_file",
                &json!({"path": "a.txt", "content": "small"}),
            ),
            oai_text("Could not."),
        ],
        // More than any test machine has free: the disk counts as full.
        Extra {
            sandbox: "disk_reserve_bytes = 1152921504606846976",
            ..Extra::default()
        },
    );
    s.send_dm("write a file");
    s.reply_containing(USER, "Could not.");
    let result = s.tool_result(1);
    assert!(result.contains("nearly full"), "{result}");
    // Loudly degraded, still answering and auditing.
    let status = s.i.ctl(&["status"]);
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("DEGRADED") && text.contains("under the"),
        "{text}"
    );
    let json = s.i.ctl(&["status", "--json"]);
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["degraded"], true);
    assert!(json["disk"]["free_bytes"].as_u64().is_some(), "{json}");
    let verify = s.i.ctl(&["audit", "verify"]);
    assert!(verify.status.success(), "{verify:?}");
    assert!(s.i.log().contains("APPLIANCE DEGRADED: the data disk"));
}

#[test]
fn a_command_growing_past_the_quota_while_it_runs_is_stopped() {
    // Many files, each under the file size limit, written over seconds: the
    // sandbox's watch of the workspace stops it.
    let mut s = start_with(
        vec![
            oai_tool(
                "c1",
                "run_command",
                &json!({"command": "for i in $(seq 1 100); do head -c 200000 /dev/zero > f$i; sleep 0.1; done; echo finished"}),
            ),
            oai_text("Tried."),
        ],
        Extra {
            sandbox: "workspace_quota_bytes = 1048576",
            ..Extra::default()
        },
    );
    s.send_dm("fill the workspace slowly");
    s.reply_containing(USER, "needs the owner's approval");
    let id = s.pending()[0]["id"].as_str().unwrap().to_string();
    ok(&s.i, &["approvals", "approve", &id]);
    s.reply_containing(USER, "Tried.");
    let result = s.tool_result(1);
    assert!(!result.contains("finished"), "{result}");
    assert!(
        result.contains("the sandbox stopped the command: the workspace uses"),
        "{result}"
    );
    s.still_answers_and_audits();
}
