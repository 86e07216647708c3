//! The settings pages (issue 15) against the test backend, which validates and
//! edits a real configuration and owner's file with the supervisor's own code
//! (`config::owner::plan`): a valid save, every kind of invalid field shown at
//! its field with nothing written, a second tab's stale save refused, a
//! channel added, credentials stored write-only (never shown again), replace
//! and delete confirmed, the guardrail tester, and hostile forms.

#![allow(clippy::unwrap_used)]

mod admin_common;
use admin_common as common;

use common::*;

fn owner_text(h: &Harness) -> String {
    std::fs::read_to_string(h.backend.settings_files().1).unwrap_or_default()
}

/// The value attribute of the field for `key`.
fn field(body: &str, key: &str) -> Option<String> {
    let at = body.find(&format!("name=\"v:{key}\""))?;
    let rest = &body[at..];
    extract(rest, "value=\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_save_is_written_and_shown_as_the_owners() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let overview = c.get("/settings").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    for link in [
        "/settings/credentials",
        "/settings/channels",
        "/settings/agent",
        "/settings/limits",
        "/settings/guard",
        "/settings/channels/telegram",
    ] {
        assert!(overview.body.contains(link), "{link}");
    }
    let page = c.get("/settings/limits").await;
    assert_eq!(
        field(&page.body, "limits.max_iterations").as_deref(),
        Some("50")
    );
    let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/limits",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:limits.max_iterations", "20"),
                ("v:limits.max_cost_usd", "5.0"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), "/settings/limits");
    let page = c.get("/settings/limits").await;
    assert!(
        page.body.contains("Saved: 1 setting changed"),
        "{}",
        page.body
    );
    assert_eq!(
        field(&page.body, "limits.max_iterations").as_deref(),
        Some("20")
    );
    assert!(page.body.contains("you (this page)"));
    assert!(
        owner_text(&h).contains("max_iterations = 20"),
        "{}",
        owner_text(&h)
    );

    // The reset box returns a key to the image's value.
    let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/limits",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:limits.max_iterations", "20"),
                ("r:limits.max_iterations", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        !owner_text(&h).contains("max_iterations"),
        "{}",
        owner_text(&h)
    );

    // The agent: optional keys show as empty fields; a provider with its price.
    // Its connection test says there is none yet.
    let r = c
        .submit("/settings/agent", "/settings/agent/test", &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let said = extract(&r.body, "id=\"provider-test-result\">").unwrap_or_default();
    assert!(
        said.starts_with("Failed: no LLM provider is configured"),
        "{}",
        r.body
    );
    let page = c.get("/settings/agent").await;
    assert_eq!(field(&page.body, "agent.provider").as_deref(), Some(""));
    let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/agent",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:agent.provider", "openai"),
                ("v:agent.model", "llama"),
                ("v:agent.base_url", "http://127.0.0.1:9/v1"),
                ("other_key", "agent.prices.llama"),
                (
                    "other_value",
                    "{ input_usd_per_mtok = 0.0, output_usd_per_mtok = 0.0 }",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = c.get("/settings/agent").await;
    assert_eq!(
        field(&page.body, "agent.model").as_deref(),
        Some("&quot;llama&quot;")
    );
    // Now the test reaches the (fake) provider under the saved settings.
    let r = c
        .submit("/settings/agent", "/settings/agent/test", &[])
        .await;
    let said = extract(&r.body, "id=\"provider-test-result\">").unwrap_or_default();
    assert!(
        said.starts_with("Connected: fake answered with model llama"),
        "{}",
        r.body
    );
    // Without the page's token: refused, nothing asked.
    let r = c.post("/settings/agent/test", &[("csrf", "forged")]).await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fields_are_shown_at_the_field_and_nothing_is_written() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "/settings/limits",
            "limits.max_iterations",
            "abc",
            "invalid type",
        ),
        (
            "/settings/limits",
            "limits.max_iterations",
            "-3",
            "limits.max_iterations",
        ),
        (
            "/settings/channels/telegram",
            "channels.telegram.pairing_ttl_secs",
            "5",
            "5 is not between 60 and 3600 seconds",
        ),
        (
            "/settings/channels/telegram",
            "channels.telegram.transport.kind",
            "carrier-pigeon",
            "unknown variant",
        ),
        (
            "/settings/channels/telegram",
            "channels.telegram.transport.token_secret",
            "no_such_secret",
            "no secret named",
        ),
        (
            "/settings/admin",
            "admin.listen",
            "[\"8.8.8.8\"]",
            "8.8.8.8",
        ),
        ("/settings/agent", "agent.model", "llama", "no price"),
    ];
    for (page_path, key, value, want) in cases {
        let before = owner_text(&h);
        let page = c.get(page_path).await;
        assert_eq!(page.status, 200, "{page_path}: {}", page.body);
        let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
        let name = format!("v:{key}");
        let r = c
            .post(
                page_path,
                &[
                    ("csrf", &page.csrf()),
                    ("version", &version),
                    (&name, value),
                ],
            )
            .await;
        assert_eq!(r.status, 400, "{key}={value}: {}", r.body);
        assert!(r.body.contains("Nothing was saved"), "{key}: {}", r.body);
        // The message sits in the field's row, and the typed value is kept.
        let row = r
            .body
            .find(&format!("id=\"row-{key}\""))
            .unwrap_or_else(|| panic!("{key} row: {}", r.body));
        let row_text = &r.body[row..row + r.body[row..].find("</tr>").unwrap()];
        assert!(
            row_text.contains("field-error") && row_text.contains(want),
            "{key}: {row_text}"
        );
        assert_eq!(owner_text(&h), before, "{key}: written anyway");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tabs_stale_save_is_refused() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let tab1 = c.get("/settings/limits").await;
    let tab2 = c.get("/settings/limits").await;
    let v1 = extract(&tab1.body, "name=\"version\" value=\"").unwrap();
    let v2 = extract(&tab2.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/limits",
            &[
                ("csrf", &tab2.csrf()),
                ("version", &v2),
                ("v:limits.max_iterations", "30"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = c
        .post(
            "/settings/limits",
            &[
                ("csrf", &tab1.csrf()),
                ("version", &v1),
                ("v:limits.max_iterations", "40"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("changed since you opened them"),
        "{}",
        r.body
    );
    assert!(owner_text(&h).contains("max_iterations = 30"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_added_and_credentials_stored_write_only() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;

    // A secret first, then a channel that names it.
    let token = "123456:SECRET-token-value-never-shown";
    let r = c
        .submit(
            "/settings/credentials",
            "/settings/credentials/set",
            &[("name", "slack_bot_token"), ("value", token)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        h.backend.state().secret_values["slack_bot_token"],
        (1, token.as_bytes().to_vec())
    );
    let page = c.get("/settings/credentials").await;
    assert!(page.body.contains("slack_bot_token"));
    assert!(!page.body.contains(token), "a value was shown");
    // Storing over an existing name needs the replace box.
    let r = c
        .submit(
            "/settings/credentials",
            "/settings/credentials/set",
            &[("name", "slack_bot_token"), ("value", "other")],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(h.backend.state().secret_values["slack_bot_token"].0, 1);
    let r = c
        .submit(
            "/settings/credentials",
            "/settings/credentials/set",
            &[
                ("name", "slack_bot_token"),
                ("value", "other"),
                ("replace", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(h.backend.state().secret_values["slack_bot_token"].0, 2);
    for (name, value) in [("", "x"), ("bad name", "x"), ("ok", "")] {
        let r = c
            .submit(
                "/settings/credentials",
                "/settings/credentials/set",
                &[("name", name), ("value", value)],
            )
            .await;
        assert_eq!(r.status, 400, "{name:?}: {}", r.body);
    }

    let page = c.get("/settings/channels").await;
    let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/channels/add",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("name", "slack"),
                ("kind", "slack-socket"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), "/settings/channels/slack");
    let page = c.get("/settings/channels/slack").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/channels/slack",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:channels.slack.transport.token_secret", "slack_bot_token"),
                ("v:channels.slack.approvers", "[\"U123\"]"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = c.get("/settings/credentials").await;
    assert!(
        page.body.contains("channels.slack.transport.token_secret"),
        "used-by column: {}",
        page.body
    );
    for (name, value) in [
        ("", "slack-socket"),
        ("Bad", "slack-socket"),
        ("x", "carrier-pigeon"),
    ] {
        let r = c
            .submit(
                "/settings/channels",
                "/settings/channels/add",
                &[("version", &version), ("name", name), ("kind", value)],
            )
            .await;
        assert_eq!(r.status, 400, "{name:?} {value:?}: {}", r.body);
    }

    // Delete needs the confirmation box.
    let r = c
        .submit(
            "/settings/credentials",
            "/settings/credentials/delete",
            &[("name", "slack_bot_token")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        h.backend
            .state()
            .secrets
            .contains(&"slack_bot_token".to_string())
    );
    let r = c
        .submit(
            "/settings/credentials",
            "/settings/credentials/delete",
            &[("name", "slack_bot_token"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        !h.backend
            .state()
            .secrets
            .contains(&"slack_bot_token".to_string())
    );
    // The channel now names a missing secret, and says so; its live state too.
    let page = c.get("/settings/channels/slack").await;
    assert!(
        page.body.contains("which is not in the vault"),
        "{}",
        page.body
    );
    assert!(page.body.contains("channel-state waiting"), "{}", page.body);
    let list = c.get("/settings/channels").await;
    assert!(
        list.body.contains("the vault has no secret"),
        "{}",
        list.body
    );
    assert!(list.body.contains("channel-state running"), "{}", list.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_tester_and_hostile_forms() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let r = c
        .submit(
            "/settings/guard",
            "/settings/guard/check",
            &[("command", "rm -rf / --no-preserve-root")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let verdict = extract(&r.body, "id=\"guard-verdict\">").unwrap_or_else(|| r.body.clone());
    assert!(r.body.contains("id=\"guard-verdict\""), "{}", r.body);
    assert!(r.body.to_lowercase().contains("block"), "{verdict}");
    let r = c
        .submit(
            "/settings/guard",
            "/settings/guard/check",
            &[("command", "ls -la")],
        )
        .await;
    // No trusted rule yet: an ordinary command asks, and says why.
    assert!(r.body.contains("ask\trule: default"), "{}", r.body);
    let big = "x".repeat(20 * 1024);
    let r = c
        .submit(
            "/settings/guard",
            "/settings/guard/check",
            &[("command", &big)],
        )
        .await;
    assert_eq!(r.status, 400);

    let mutations = h.backend.state().mutations;
    for path in [
        "/settings/keystore",
        "/settings/nope",
        "/settings/channels/Bad",
        "/settings/channels/nope",
        "/settings/..%2fadmin",
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let page = c.get("/settings/limits").await;
    let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
    // A key of another section, no CSRF, a wrong CSRF, no version.
    let r = c
        .post(
            "/settings/limits",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:admin.port", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c
        .post(
            "/settings/limits",
            &[("version", &version), ("v:limits.max_iterations", "3")],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .post(
            "/settings/limits",
            &[
                ("csrf", "wrong"),
                ("version", &version),
                ("v:limits.max_iterations", "3"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .post(
            "/settings/limits",
            &[("csrf", &page.csrf()), ("v:limits.max_iterations", "3")],
        )
        .await;
    assert_eq!(r.status, 400);
    // Refused before the body is read: the server reads and drops the rest
    // (a lingering close), so the client gets the 413, not a broken pipe,
    // even when the body is far more than the socket buffers hold.
    for size in [200 * 1024, 900 * 1024] {
        let r = c.post_raw("/settings/limits", vec![b'a'; size]).await;
        assert_eq!(r.status, 413, "{size} bytes");
    }
    // Unchanged fields change nothing.
    let r = c
        .post(
            "/settings/limits",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:limits.max_iterations", "50"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(h.backend.state().mutations, mutations);
    assert_eq!(owner_text(&h), "");
}

/// "CA file upload for a LAN model server" (and a platform behind a private
/// CA): the PEM is checked, stored beside the owner's settings and the key
/// pointed at it; a bad one changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_stored_and_used() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let pem = rcgen::generate_simple_self_signed(vec!["llm.lan".into()])
        .unwrap()
        .cert
        .pem();
    let section = "channels.telegram";
    let key = "channels.telegram.transport.ca_file";
    let page = c.get("/settings/channels/telegram").await;
    assert!(page.body.contains("id=\"ca-upload\""), "{}", page.body);
    let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
    let csrf = page.csrf();
    let post = |section: &str, key: &str, pem: &str| {
        vec![
            ("csrf".to_string(), csrf.clone()),
            ("version".to_string(), version.clone()),
            ("section".to_string(), section.to_string()),
            ("key".to_string(), key.to_string()),
            ("pem".to_string(), pem.to_string()),
        ]
    };
    let bad_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let cases = [
        (post(section, key, "hello"), "no certificate"),
        (post(section, key, bad_cert), "not usable"),
        // A key of another section, or one that is not a CA file.
        (post("agent", key, &pem), "not a CA setting"),
        (
            post(section, "channels.telegram.dm", &pem),
            "not a CA setting",
        ),
    ];
    for (form, says) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = c.post("/settings/ca", &form).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(says), "{says}: {}", r.body);
        assert_eq!(owner_text(&h), "");
    }
    let form = post(section, key, &pem);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = c.post("/settings/ca", &form).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let parsed: toml::Table = owner_text(&h).parse().unwrap();
    let path = parsed["channels"]["telegram"]["transport"]["ca_file"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
}

/// The settings form of a page as a browser sends it untouched: csrf,
/// version and every `v:` field with the value shown.
fn form_as_shown(body: &str) -> Vec<(String, String)> {
    let form = &body[body.find("id=\"settings-form\"").expect("settings form")..];
    let form = &form[..form.find("</form>").unwrap()];
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    };
    let mut out = Vec::new();
    for name in ["csrf", "version"] {
        let v = extract(form, &format!("name=\"{name}\" value=\"")).unwrap();
        out.push((name.to_string(), v));
    }
    let mut rest = form;
    while let Some(at) = rest.find("name=\"v:") {
        rest = &rest[at + "name=\"".len()..];
        let name = &rest[..rest.find('"').unwrap()];
        let value = extract(rest, "value=\"").unwrap();
        out.push((name.to_string(), unescape(&value)));
    }
    out
}

fn pairs(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Found in the browser: a channel's form (about forty fields) was refused
/// whole as "too many fields", and so was the agent's once a price was set.
/// Every section's form, sent as shown, saves nothing and is accepted; a
/// change sent with all the other fields saves just that change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_sent_whole_as_shown_round_trips() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let mut pages: Vec<String> = [
        "agent",
        "limits",
        "guard",
        "sandbox",
        "webhook",
        "audit",
        "admin",
        "log",
        "update",
        "supervisor",
        "channels/local",
        "channels/telegram",
    ]
    .iter()
    .map(|p| format!("/settings/{p}"))
    .collect();
    pages.sort();
    let mut biggest = 0;
    for path in &pages {
        let page = c.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let form = form_as_shown(&page.body);
        biggest = biggest.max(form.len());
        let r = c.post(path, &pairs(&form)).await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
        let page = c.get(path).await;
        assert!(
            page.body.contains("Nothing changed."),
            "{path}: {}",
            page.body
        );
    }
    assert!(biggest > 25, "a channel's form has {biggest} fields");
    assert_eq!(owner_text(&h), "");

    // One change in the whole channel form; text values keep their quotes
    // once (not added again on the next save).
    let path = "/settings/channels/telegram";
    let page = c.get(path).await;
    let mut form = form_as_shown(&page.body);
    for (k, v) in &mut form {
        if k == "v:channels.telegram.dm" {
            assert_eq!(v, "\"pairing\"");
            *v = "allowlist".into();
        }
    }
    let r = c.post(path, &pairs(&form)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        owner_text(&h).trim(),
        "[channels.telegram]\ndm = \"allowlist\""
    );
    let page = c.get(path).await;
    assert_eq!(
        field(&page.body, "channels.telegram.dm").as_deref(),
        Some("&quot;allowlist&quot;")
    );
    let form = form_as_shown(&page.body);
    let r = c.post(path, &pairs(&form)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(c.get(path).await.body.contains("Nothing changed."));
    assert_eq!(
        owner_text(&h).trim(),
        "[channels.telegram]\ndm = \"allowlist\""
    );
}

/// Found in the browser: a second tab's refused form came back with its old
/// values under the new version, so saving it again undid the first tab's
/// save. It now shows the settings as they are, with what it sent listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stale_form_saved_again_undoes_nothing() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let tab1 = form_as_shown(&c.get("/settings/limits").await.body);
    let mut tab2 = form_as_shown(&c.get("/settings/limits").await.body);
    for (k, v) in &mut tab2 {
        if k == "v:limits.max_cost_usd" {
            *v = "2.5".into();
        }
    }
    let r = c.post("/settings/limits", &pairs(&tab2)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let mut tab1 = tab1;
    for (k, v) in &mut tab1 {
        if k == "v:limits.max_iterations" {
            *v = "40".into();
        }
    }
    let r = c.post("/settings/limits", &pairs(&tab1)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("changed since you opened them"),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"not-saved\""), "{}", r.body);
    assert!(
        r.body
            .contains("<code>limits.max_iterations</code> = <code>40</code>"),
        "{}",
        r.body
    );
    // The refused form as shown: the settings as they are now.
    assert_eq!(
        field(&r.body, "limits.max_cost_usd").as_deref(),
        Some("2.5")
    );
    assert_eq!(
        field(&r.body, "limits.max_iterations").as_deref(),
        Some("50")
    );
    let again = form_as_shown(&r.body);
    let r = c.post("/settings/limits", &pairs(&again)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(owner_text(&h).trim(), "[limits]\nmax_cost_usd = 2.5");

    // A refusal at a field keeps what was typed and the version it was
    // typed on: if another tab saves meanwhile, the retry is refused too.
    let page = c.get("/settings/limits").await;
    let mut form = form_as_shown(&page.body);
    for (k, v) in &mut form {
        if k == "v:limits.max_iterations" {
            *v = "abc".into();
        }
    }
    let r = c.post("/settings/limits", &pairs(&form)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        field(&r.body, "limits.max_iterations").as_deref(),
        Some("abc")
    );
    let mut retry = form_as_shown(&r.body);
    let other = c
        .submit(
            "/settings/limits",
            "/settings/limits",
            &[
                (
                    "version",
                    &extract(&page.body, "name=\"version\" value=\"").unwrap(),
                ),
                ("v:limits.max_tool_calls_per_turn", "3"),
            ],
        )
        .await;
    assert_eq!(other.status, 303, "{}", other.body);
    for (k, v) in &mut retry {
        if k == "v:limits.max_iterations" {
            *v = "45".into();
        }
    }
    let r = c.post("/settings/limits", &pairs(&retry)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("changed since you opened them"),
        "{}",
        r.body
    );
    let owner = owner_text(&h);
    assert!(owner.contains("max_tool_calls_per_turn = 3"), "{owner}");
    assert!(!owner.contains("max_iterations"), "{owner}");
}

/// An iMessage channel's page generates the appliance's SSH key for the
/// Mac: the private key goes to the vault only (never on a page), the
/// channel names it, and the page shows the public key with the restricted
/// `authorized_keys` line; a second key needs the replace box; another
/// kind of channel has no key to generate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imessage_channel_generates_its_ssh_key_and_shows_the_public_half() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    for (name, kind) in [("mac", "imessage"), ("slack", "slack-socket")] {
        let page = c.get("/settings/channels").await;
        let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
        let r = c
            .post(
                "/settings/channels/add",
                &[
                    ("csrf", &page.csrf()),
                    ("version", &version),
                    ("name", name),
                    ("kind", kind),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
    }
    let generate = |c: &mut Client, channel: &'static str, replace: bool| {
        let mut c = c.clone();
        async move {
            let page = c.get(&format!("/settings/channels/{channel}")).await;
            let version = extract(&page.body, "name=\"version\" value=\"").unwrap();
            let mut form = vec![("csrf", page.csrf()), ("version", version)];
            if replace {
                form.push(("replace", "yes".into()));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.post(&format!("/settings/channels/{channel}/ssh-key"), &form)
                .await
        }
    };
    let page = c.get("/settings/channels/mac").await;
    assert!(
        page.body.contains("id=\"ssh-key-generate\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("ssh-public-key"));

    let r = generate(&mut c, "mac", false).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (version, private) = h.backend.state().secret_values["mac_ssh_key"].clone();
    assert_eq!(version, 1);
    let private = String::from_utf8(private).unwrap();
    let public = cowork::gateway::channels::imessage::parse_private_key(&private)
        .unwrap()
        .public_key()
        .to_openssh()
        .unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA") && public.ends_with(" cowork@appliance"));
    let page = c.get("/settings/channels/mac").await;
    assert!(
        page.body
            .contains(&format!("id=\"ssh-public-key\">{public}</pre>")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "command=&quot;imsg rpc&quot;,restrict {public}</pre>"
        )),
        "{}",
        page.body
    );
    let secret_body: String = private.lines().nth(1).unwrap().to_string();
    assert!(
        !page.body.contains(&secret_body),
        "the private key was shown"
    );
    assert_eq!(
        field(&page.body, "channels.mac.transport.key_secret").as_deref(),
        Some("&quot;mac_ssh_key&quot;")
    );

    // A second key needs the box; with it, a new key replaces the old one.
    let r = generate(&mut c, "mac", false).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(h.backend.state().secret_values["mac_ssh_key"].0, 1);
    let r = generate(&mut c, "mac", true).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(h.backend.state().secret_values["mac_ssh_key"].0, 2);
    let page = c.get("/settings/channels/mac").await;
    assert!(!page.body.contains(&public), "the old key is still shown");

    // Another kind of channel has no SSH key.
    let r = generate(&mut c, "slack", false).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        !h.backend
            .state()
            .secret_values
            .contains_key("slack_ssh_key")
    );
}
