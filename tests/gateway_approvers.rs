//! Who answers approval requests in chat, and what revoking a sender ends,
//! through the running appliance (the real coworkd in development mode, a fake
//! Telegram Bot API and a fake OpenAI-compatible LLM, both over TLS on loopback).
//! Issue 16.1: only the senders named in `[channels.NAME] approvers` answer in
//! chat, never their own request, and in a group only under the group's rules;
//! the first paired user is nobody special (the reproduction: 111 approving
//! their own `touch first_user_was_here && id`, then 222 after 111's
//! revocation, is refused at each step and nothing runs). Every decision and
//! every refusal is in the trail with who made it.
//! Issue 16.7: revoking a sender (`users revoke`, `users revoke-all`) cancels
//! their task waiting for an approval and their task running a command
//! (killed), denies the approval, and says so.

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
const BOT: &str = "cowork_bot";
const U111: i64 = 111;
const U222: i64 = 222;
const U333: i64 = 333;
const GROUP: i64 = -100;
const REPRO: &str = "touch first_user_was_here && id";

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

/// coworkd with a Telegram channel (`channel` lines added to it, `sections`
/// before it) and the fake LLM answering `replies`; `pair` redeem a code each
/// through their DM, in that order.
fn start(replies: Vec<Reply>, channel: &str, sections: &str, pair: &[i64]) -> Setup {
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
        .prefix("cwp")
        .tempdir_in("/tmp")
        .unwrap();
    let tg_ca = dir.path().join("tg-ca.pem");
    std::fs::write(&tg_ca, &tls.ca_pem).unwrap();
    let llm_ca = dir.path().join("llm-ca.pem");
    std::fs::write(&llm_ca, &llm.ca_pem).unwrap();
    let config = format!(
        "{DEV_CONFIG}\
         [sandbox]\nrequire_full_isolation = false\n{sections}\n\
         [agent]\nprovider = \"openai\"\nmodel = \"fake\"\nbase_url = \"{}\"\n\
         secret_name = \"llm_key\"\nca_file = \"{}\"\n\
         [agent.http]\nstream = false\nmax_attempts = 1\n\
         [agent.prices.fake]\ninput_usd_per_mtok = 0.0\noutput_usd_per_mtok = 0.0\n\
         [channels.telegram]\n{channel}\n\
         [channels.telegram.transport]\nkind = \"telegram-polling\"\napi_base = \"{tg_base}\"\n\
         token_secret = \"telegram_bot_token\"\nbot_user = \"{BOT}\"\nca_file = \"{}\"\n",
        llm.base_url,
        llm_ca.display(),
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
    for user in pair {
        let code: Value = serde_json::from_str(&ok(
            &s.i,
            &["pair", "new", "--channel", "telegram", "--json"],
        ))
        .unwrap();
        let code = code["code"].as_str().unwrap().to_string();
        s.send_dm(*user, &format!("/pair {code}"));
        s.reply_containing(*user, "Paired");
    }
    s
}

impl Setup {
    fn push(&mut self, update: impl FnOnce(i64) -> Value) {
        let n = self.next_update;
        self.next_update += 1;
        self.tg.lock().unwrap().push(update(n));
    }

    fn send_dm(&mut self, from: i64, text: &str) {
        self.push(|n| dm(n, from, text));
    }

    /// A group message that mentions the bot.
    fn send_group(&mut self, from: i64, text: &str) {
        self.push(|n| group_mention(n, GROUP, from, BOT, text));
    }

    /// A group message without a mention of the bot.
    fn send_group_unmentioned(&mut self, from: i64, text: &str) {
        self.push(|n| {
            let mut m = group_mention(n, GROUP, from, BOT, text);
            m["message"]["text"] = json!(text);
            m["message"]["entities"] = json!([]);
            m
        });
    }

    /// The messages sent to `chat` containing `needle`.
    fn sent_to(&self, chat: i64, needle: &str) -> Vec<String> {
        let chat = chat.to_string();
        self.tg
            .lock()
            .unwrap()
            .sent
            .iter()
            .filter(|(c, t)| *c == chat && t.contains(needle))
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Waits for the `n`th message (from 1) to `chat` containing `needle`.
    fn nth_reply(&self, chat: i64, needle: &str, n: usize) -> String {
        wait_until(
            Duration::from_secs(20),
            &format!("reply {n} to {chat} with {needle:?}"),
            || self.sent_to(chat, needle).get(n - 1).cloned(),
        )
    }

    fn reply_containing(&self, chat: i64, needle: &str) -> String {
        self.nth_reply(chat, needle, 1)
    }

    fn pending(&self) -> Vec<Value> {
        let v: Value =
            serde_json::from_str(&ok(&self.i, &["approvals", "list", "--json"])).unwrap();
        v.as_array().unwrap().clone()
    }

    /// The one pending approval (waits for it to be listed).
    fn only_pending(&self) -> String {
        let p = wait_until(Duration::from_secs(20), "one pending approval", || {
            let p = self.pending();
            (p.len() == 1).then_some(p)
        });
        p[0]["id"].as_str().unwrap().to_string()
    }

    fn audit(&self) -> Vec<Value> {
        ok(&self.i, &["audit", "tail", "-n", "1000", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn entries(&self, kind: &str) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    fn tasks(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&ok(&self.i, &["tasks", "list", "--json"])).unwrap();
        v.as_array().unwrap().clone()
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

fn run(command: &str) -> Reply {
    oai_tool("c1", "run_command", &json!({"command": command}))
}

/// The reproduction of issue 16.1, refused at each step: the first paired user
/// approving their own command, then the next one after the first is revoked.
#[test]
fn the_first_paired_user_is_not_an_approver_nor_the_next_after_a_revocation() {
    let mut s = start(vec![run(REPRO), run(REPRO)], "", "", &[U111, U222]);

    s.send_dm(U111, "please check who I am");
    s.reply_containing(U111, "needs the owner's approval");
    let first = s.only_pending();
    s.send_dm(U111, &format!("approve {first}"));
    let refused = s.reply_containing(U111, "not an approver");
    assert!(!refused.contains('\n'), "one sentence: {refused}");
    // The second paired user cannot answer it either.
    s.send_dm(U222, &format!("approve {first}"));
    s.reply_containing(U222, "not an approver");
    assert_eq!(s.pending().len(), 1, "still waiting");

    // 111 revoked: their request goes with them, and 222 gains nothing.
    let revoked = ok(
        &s.i,
        &[
            "users",
            "revoke",
            "--channel",
            "telegram",
            &U111.to_string(),
        ],
    );
    assert!(revoked.contains("1 task cancelled"), "{revoked}");
    assert!(s.pending().is_empty());
    assert!(!s.i.ctl(&["approvals", "approve", &first]).status.success());

    s.send_dm(U222, "please check who I am");
    s.reply_containing(U222, "needs the owner's approval");
    let second = s.only_pending();
    s.send_dm(U222, &format!("approve {second}"));
    s.nth_reply(U222, "not an approver", 2);
    assert_eq!(s.pending().len(), 1, "still waiting");

    // Nothing ran, and the trail says who tried and why they were refused.
    let audit = s.audit();
    let kinds: Vec<&str> = audit.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(!kinds.contains(&"command.started"), "{kinds:?}");
    assert!(!kinds.contains(&"approval.approved"), "{kinds:?}");
    assert_eq!(s.llm.script.count(), 2, "no tool result went back");
    let refusals: Vec<(String, String, String)> = audit
        .iter()
        .filter(|e| e["kind"] == "approval.refused")
        .map(|e| {
            let p = &e["payload"];
            (
                p["sender"].as_str().unwrap().to_string(),
                p["approval"].as_str().unwrap().to_string(),
                p["why"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |who: i64, id: &str| (who.to_string(), id.to_string(), "not_an_approver".into());
    assert_eq!(
        refusals,
        vec![want(U111, &first), want(U222, &first), want(U222, &second)]
    );
}

#[test]
fn a_designated_approver_approves_in_their_dm() {
    let mut s = start(
        vec![run("echo approved-by-$((200+22))"), oai_text("Done.")],
        "approvers = [\"222\"]",
        "",
        &[U111, U222],
    );
    s.send_dm(U111, "run the check");
    s.reply_containing(U111, "needs the owner's approval");
    let id = s.only_pending();
    // The approver hears about it in their DM; the requester once, in theirs.
    s.reply_containing(U222, &format!("approve {id}"));
    assert_eq!(s.sent_to(U111, &id).len(), 1);

    s.send_dm(U222, &format!("approve {id}"));
    s.reply_containing(U222, "Approved");
    s.reply_containing(U111, "Done.");
    assert!(s.tool_result(1).contains("approved-by-222"));
    let approved = s.entries("approval.approved");
    assert_eq!(approved.len(), 1, "{approved:?}");
    let p = &approved[0]["payload"];
    assert_eq!(p["approval"], id.as_str());
    assert_eq!(p["approver"], "telegram:222");
    assert_eq!(p["via"], "chat");
    assert_eq!(p["approver_sender"], "222");
    assert_eq!(p["approver_context"], "dm");
    let started = s.entries("command.started");
    assert_eq!(started[0]["payload"]["approver"], "telegram:222");
    assert_eq!(s.sent_to(U111, &id).len(), 1, "the requester told once");
    assert_eq!(s.sent_to(U222, &id).len(), 1, "the approver told once");
}

#[test]
fn a_requester_who_is_an_approver_cannot_answer_their_own_request() {
    let mut s = start(
        vec![run("echo ran-$((40+2))"), oai_text("Done.")],
        "approvers = [\"111\"]",
        "",
        &[U111],
    );
    s.send_dm(U111, "run the check");
    s.reply_containing(U111, "needs the owner's approval");
    let id = s.only_pending();
    // Told once, in their own chat, not a second time as an approver.
    assert_eq!(s.sent_to(U111, &id).len(), 1);

    // Neither in the DM nor in a group, neither approve nor deny.
    s.send_dm(U111, &format!("approve {id}"));
    s.reply_containing(U111, "your own task");
    s.send_group(U111, &format!("approve {id}"));
    s.reply_containing(GROUP, "your own task");
    s.send_dm(U111, &format!("deny {id}"));
    s.nth_reply(U111, "your own task", 2);
    assert_eq!(s.pending().len(), 1, "still waiting");
    let refused = s.entries("approval.refused");
    let whys: Vec<(&str, &str, &str)> = refused
        .iter()
        .map(|e| {
            let p = &e["payload"];
            (
                p["why"].as_str().unwrap(),
                p["context"].as_str().unwrap(),
                p["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        whys,
        [
            ("own_request", "dm", "approve"),
            ("own_request", "group", "approve"),
            ("own_request", "dm", "deny")
        ]
    );
    assert_eq!(refused[0]["payload"]["requester"], "telegram:111");

    // An operator can: the trail names coworkctl and the caller's uid.
    ok(&s.i, &["approvals", "approve", &id]);
    s.reply_containing(U111, "Done.");
    let approved = s.entries("approval.approved");
    let p = &approved[0]["payload"];
    assert_eq!(p["via"], "coworkctl");
    assert_eq!(
        p["approver"],
        format!("coworkctl:uid={}", nix::unistd::getuid())
    );
    // Still told only once, long after the request.
    assert_eq!(s.sent_to(U111, &id).len(), 1);
}

#[test]
fn in_a_group_an_approver_answers_under_the_group_rules() {
    let mut s = start(
        vec![run("echo ran-$((40+2))"), oai_text("Done.")],
        // 333 is named but never paired: not an authorized sender.
        "approvers = [\"222\", \"333\"]",
        "",
        &[U111, U222],
    );
    s.send_dm(U111, "run the check");
    s.reply_containing(U111, "needs the owner's approval");
    let id = s.only_pending();

    // Without the mention the group requires: not heard.
    s.send_group_unmentioned(U222, &format!("approve {id}"));
    // A named approver who is not authorized in the group: not heard.
    s.send_group(U333, &format!("approve {id}"));
    // Mentioned, from an authorized approver: taken.
    s.send_group(U222, &format!("approve {id}"));
    s.reply_containing(GROUP, "Approved");
    s.reply_containing(U111, "Done.");

    let audit = s.audit();
    let group = GROUP.to_string();
    let reasons: Vec<(String, String)> = audit
        .iter()
        .filter(|e| e["kind"] == "gateway.message" && e["payload"]["chat"] == group.as_str())
        .map(|e| {
            (
                e["subject"].as_str().unwrap().to_string(),
                e["payload"]["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("telegram:222".to_string(), "not_mentioned".to_string()),
            ("telegram:333".into(), "unknown_sender_in_group".into()),
            ("telegram:222".into(), "authorized_paired".into()),
        ]
    );
    let approved: Vec<&Value> = audit
        .iter()
        .filter(|e| e["kind"] == "approval.approved")
        .collect();
    assert_eq!(approved.len(), 1);
    let p = &approved[0]["payload"];
    assert_eq!(p["approver"], "telegram:222");
    assert_eq!(p["approver_context"], "group");
    assert_eq!(p["approver_chat"], GROUP.to_string());
    assert!(!audit.iter().any(|e| e["kind"] == "approval.refused"));
    // Nobody got the pairing prompt or any answer in the group but 222's.
    assert_eq!(s.sent_to(GROUP, "").len(), 1);
}

/// Processes whose command line has the word `word` (the long command).
fn processes_with_arg(word: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && cmd.split(|b| *b == 0).any(|w| w == word.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn revoking_a_sender_ends_their_running_and_waiting_tasks() {
    const LONG: &str = "61.7";
    let mut s = start(
        vec![run("touch waited"), run(&format!("sleep {LONG}"))],
        "approvers = [\"222\"]",
        // `sleep` runs without an approval.
        "[guard]\ntrusted = [\"sleep\"]\n",
        &[U111, U222],
    );
    // A DM task waiting for its approval...
    s.send_dm(U111, "touch a file");
    s.reply_containing(U111, "needs the owner's approval");
    let waiting = s.only_pending();
    // ...and a group task running a long command.
    s.send_group(U111, "wait a minute");
    wait_until(Duration::from_secs(20), "the long command to run", || {
        (!processes_with_arg(LONG).is_empty()).then_some(())
    });
    let live = s.tasks();
    assert_eq!(live.len(), 2, "{live:?}");

    let revoked = ok(
        &s.i,
        &[
            "users",
            "revoke",
            "--channel",
            "telegram",
            &U111.to_string(),
        ],
    );
    assert!(
        revoked.contains("1 user revoked; 2 tasks cancelled"),
        "{revoked}"
    );
    wait_until(Duration::from_secs(5), "both tasks to end", || {
        s.tasks()
            .iter()
            .all(|t| t["state"] == "cancelled")
            .then_some(())
    });
    wait_until(Duration::from_secs(5), "no long command left", || {
        processes_with_arg(LONG).is_empty().then_some(())
    });
    // The approval is gone and cannot be answered by anyone any more.
    assert!(s.pending().is_empty());
    assert!(
        !s.i.ctl(&["approvals", "approve", &waiting])
            .status
            .success()
    );
    s.send_dm(U222, &format!("approve {waiting}"));
    let late = s.reply_containing(U222, &format!("approval {waiting} is denied"));
    assert!(late.contains("not waiting"), "{late}");
    assert_eq!(
        s.llm.script.count(),
        2,
        "no model call after the revocation"
    );

    let audit = s.audit();
    let cancelled: Vec<&Value> = audit
        .iter()
        .filter(|e| e["kind"] == "task.cancelled")
        .collect();
    assert_eq!(cancelled.len(), 2, "{cancelled:?}");
    for e in &cancelled {
        assert_eq!(e["subject"], "telegram:111");
        assert_eq!(e["payload"]["why"], "access_revoked");
        assert!(
            e["payload"]["by"]
                .as_str()
                .unwrap()
                .starts_with("coworkctl:uid="),
            "{e}"
        );
    }
    let denied: Vec<&Value> = audit
        .iter()
        .filter(|e| e["kind"] == "approval.denied")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["payload"]["approval"], waiting.as_str());
    assert_eq!(denied[0]["payload"]["approver"], "revocation");
    assert_eq!(denied[0]["payload"]["why"], "access_revoked");
    let user = audit.iter().find(|e| e["kind"] == "user.revoked").unwrap();
    assert_eq!(user["payload"]["tasks_cancelled"], 2);
    assert!(!audit.iter().any(|e| e["kind"] == "approval.approved"));
    assert!(s.i.ctl(&["audit", "verify"]).status.success());
}

#[test]
fn revoking_everyone_on_a_channel_ends_their_waiting_tasks_too() {
    let mut s = start(vec![run("touch waited")], "", "", &[U111]);
    s.send_dm(U111, "touch a file");
    s.reply_containing(U111, "needs the owner's approval");
    let waiting = s.only_pending();
    let revoked = ok(
        &s.i,
        &["users", "revoke-all", "--channel", "telegram", "--yes"],
    );
    assert!(
        revoked.contains("1 user revoked; 1 task cancelled"),
        "{revoked}"
    );
    assert!(s.pending().is_empty());
    assert!(
        !s.i.ctl(&["approvals", "approve", &waiting])
            .status
            .success()
    );
    assert_eq!(s.tasks()[0]["state"], "cancelled");
    let all = s.entries("user.revoked_all");
    assert_eq!(all[0]["payload"]["tasks_cancelled"], 1, "{all:?}");
    let denied = s.entries("approval.denied");
    assert_eq!(denied[0]["payload"]["approver"], "revocation");
}

/// A store that cannot be read is said as such in chat, never as "no such
/// request" or "budget used", and nothing is decided or started: a column
/// of the approvals table, then of the daily usage table, renamed under the
/// running daemon (the stores' reads fail; a whole table renamed away would
/// be re-created empty).
#[test]
fn an_unreadable_store_is_said_plainly_and_nothing_is_decided() {
    let mut s = start(
        vec![run("echo never-$((1+1))")],
        "approvers = [\"222\"]",
        "",
        &[U111, U222],
    );
    s.send_dm(U111, "run the check");
    s.reply_containing(U111, "needs the owner's approval");
    let id = s.only_pending();
    let db = rusqlite::Connection::open(s.i.dir.path().join("state/gateway/state.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let rename = |table: &str, from: &str, to: &str| {
        db.execute_batch(&format!("ALTER TABLE {table} RENAME COLUMN {from} TO {to}"))
            .unwrap();
    };

    rename("agent_approvals", "task_id", "task_id_away");
    s.send_dm(U222, &format!("approve {id}"));
    let said = s.reply_containing(U222, "cannot look up approval request");
    assert!(said.contains(&id) && !said.contains("task_id"), "{said}");
    assert!(s.sent_to(U222, "There is no approval request").is_empty());
    rename("agent_approvals", "task_id_away", "task_id");
    assert_eq!(s.pending().len(), 1, "nothing was decided");

    rename("gateway_usage_daily", "tokens", "tokens_away");
    s.send_dm(U222, "another task please");
    let said = s.reply_containing(U222, "today's usage cannot be read");
    assert!(!said.contains("tokens_away"), "{said}");
    rename("gateway_usage_daily", "tokens_away", "tokens");
    assert_eq!(s.tasks().len(), 1, "no second task started");
    assert!(s.entries("approval.approved").is_empty());
    assert!(s.entries("command.started").is_empty());
}
