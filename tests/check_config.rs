//! `coworkd check-config`: exit codes and FILE:LINE:COLUMN messages, the shipped
//! configuration files, and hostile input.

mod common;

use std::process::Command;

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("coworkd.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(common::COWORKD)
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn shipped_configs_are_valid() {
    for f in ["config/coworkd.toml", "config/dev.toml"] {
        let out = Command::new(common::COWORKD)
            .arg("check-config")
            .arg(f)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn errors_name_file_line_and_column() {
    let (code, err) =
        check("profile = \"production\"\n\n[supervisor]\nrestart_burst = -1\nbogus = true\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("FILE:4:17:"), "{err}");
    // Every problem, not only the first one serde meets.
    assert!(err.contains("\nFILE:5:1: unknown field `bogus`"), "{err}");
    let (code, err) = check("[channels.telegram]\ndm = \"open\"\n[log]\nlevel = \"trace\"\n");
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("FILE:4:1: log level \"trace\""),
        "{err}"
    );
    assert!(lines[1].starts_with("FILE:2:1: open mode"), "{err}");
}

#[test]
fn hostile_files_are_errors() {
    for text in [
        "\0\0\0",
        "x = \"\\u{zzzz}\"",
        &"[a]\n".repeat(10_000),
        &format!("s = \"{}\"", "a".repeat(2_000_000)),
    ] {
        let (code, err) = check(text);
        assert_eq!(code, 1, "{err}");
        assert!(err.starts_with("FILE:"), "{err}");
    }
}

/// `coworkctl channels kinds --json` lists every transport the configuration
/// accepts: each kind passes `check-config` with its required settings, and
/// with every setting it reads; a kind the registry does not list is refused.
#[test]
fn channel_kinds_from_the_registry_are_what_check_config_accepts() {
    let out = Command::new(common::COWORKCTL)
        .args(["channels", "kinds", "--json"])
        .output()
        .expect("run coworkctl");
    assert!(out.status.success(), "{out:?}");
    let kinds: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = kinds
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "telegram",
            "slack",
            "discord",
            "line",
            "whatsapp",
            "teams",
            "google-chat",
            "email",
            "matrix",
            "mattermost",
            "twitch",
            "bluebubbles",
            "signal",
            "imessage",
            "local"
        ]
    );
    let mut checked = 0;
    for k in kinds.as_array().unwrap() {
        for t in k["transports"].as_array().unwrap() {
            let kind = t["kind"].as_str().unwrap();
            let strs = |f: &str| -> Vec<String> {
                t[f].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            let (required, settings) = (strs("required"), strs("settings"));
            for s in t["secrets"].as_array().unwrap() {
                assert!(
                    settings.contains(&s["key"].as_str().unwrap().to_string()),
                    "{t}"
                );
            }
            let value = |key: &str| match key {
                "api_base" | "keys_url" | "token_url" | "pubsub_base" => {
                    "\"https://127.0.0.1:9\"".to_string()
                }
                "imap_url" => "\"imaps://127.0.0.1:9\"".to_string(),
                "smtp_url" => "\"smtp+starttls://127.0.0.1:9\"".to_string(),
                "server" => "\"ircs://127.0.0.1:9\"".to_string(),
                "channels" => "[\"#owner\"]".to_string(),
                "socket_path" => "\"/run/signal-cli/socket\"".to_string(),
                "account" => "\"+15550001111\"".to_string(),
                "bot_user" if kind == "matrix" => "\"@cowbot:example.org\"".to_string(),
                "host" => "\"192.168.1.20\"".to_string(),
                "port" => "22".to_string(),
                "host_key" => format!(
                    "\"{}\"",
                    cowork::gateway::channels::imessage::generate_key()
                        .unwrap()
                        .1
                ),
                "contacts" => "[\"+15551234567\"]".to_string(),
                "ca_file" => "\"/etc/ssl/certs/ca-certificates.crt\"".to_string(),
                "team_allowlist" | "channel_allowlist" => {
                    "[\"8xk3w5yq1bfzmc9ejr7unhd4oa\"]".to_string()
                }
                _ => format!("\"{key}_value\""),
            };
            let config = |keys: &[String]| {
                let mut c = format!(
                    "profile = \"production\"\n[channels.c1]\n[channels.c1.transport]\nkind = \"{kind}\"\n"
                );
                for key in keys {
                    c.push_str(&format!("{key} = {}\n", value(key)));
                }
                c
            };
            let (code, err) = check(&config(&required));
            assert_eq!(code, 0, "{kind} with {required:?}: {err}");
            let (code, err) = check(&config(&settings));
            assert_eq!(code, 0, "{kind} with every setting it reads: {err}");
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
    let (code, err) = check("[channels.c1.transport]\nkind = \"carrier-pigeon\"\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("carrier-pigeon"), "{err}");
}

/// A transport reads only what the registry lists for it: a key it would
/// ignore (here Slack's app-level token on a Telegram bot) is refused, named
/// with where it stands and what that transport reads.
#[test]
fn a_setting_the_transport_does_not_read_is_refused_by_name() {
    let (code, err) = check(
        "profile = \"production\"\n[channels.telegram.transport]\nkind = \"telegram-polling\"\n\
         token_secret = \"tg\"\napp_token_secret = \"xapp\"\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("app_token_secret")
            && err.contains("telegram-polling")
            && err.contains("it reads token_secret"),
        "{err}"
    );
    // The local channel's transport reads nothing at all.
    let (code, err) = check("[channels.local.transport]\nkind = \"none\"\nbot_user = \"x\"\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reads nothing"), "{err}");
}

/// A LINE channel grants access to LINE ids only: an allowlist entry shaped
/// like a display name or an e-mail address is refused where it stands.
#[test]
fn line_allowlists_take_line_ids_only() {
    let config = |list: &str| {
        format!(
            "profile = \"production\"\n[channels.line]\ndm = \"allowlist\"\nallowlist = [{list}]\n\
             [channels.line.transport]\nkind = \"line\"\ntoken_secret = \"t\"\nsigning_secret = \"s\"\n"
        )
    };
    let (code, err) = check(&config("\"U0123456789abcdef0123456789abcdef\""));
    assert_eq!(code, 0, "{err}");
    for bad in ["\"alice\"", "\"alice@example.com\"", "\"U0123\""] {
        let (code, err) = check(&config(bad));
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(
            err.contains("is not a LINE user, group or room id"),
            "{err}"
        );
    }
}

/// A Twitch channel grants access by user id only (the `user-id` tag, never
/// a login name, which another account may take after a rename), and its
/// IRC server is TLS only.
#[test]
fn twitch_takes_user_ids_and_tls_servers_only() {
    let config = |list: &str, server: &str| {
        format!(
            "profile = \"production\"\n[channels.tw]\nallowlist = [{list}]\n\
             [channels.tw.transport]\nkind = \"twitch\"\ntoken_secret = \"tw\"\nbot_user = \"cowbot\"\n\
             channels = [\"owner\"]\nserver = \"{server}\"\n"
        )
    };
    let tls = "ircs://irc.chat.twitch.tv:6697";
    let (code, err) = check(&config("\"12345678\"", tls));
    assert_eq!(code, 0, "{err}");
    let (code, err) = check(&config("\"alice\"", tls));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a Twitch user id"), "{err}");
    for plain in [
        "irc://irc.chat.twitch.tv:6667",
        "https://irc.chat.twitch.tv",
    ] {
        let (code, err) = check(&config("\"1\"", plain));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("use ircs://"), "{err}");
    }
    let bad_channel = config("\"1\"", tls).replace("[\"owner\"]", "[\"#Owner Channel\"]");
    let (code, err) = check(&bad_channel);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a Twitch channel name"), "{err}");
}

/// A Signal channel grants access by ACI only (never the phone number,
/// which can change hands); groups by their base64 id. The account is a
/// number in E.164 and the socket an absolute path.
#[test]
fn signal_takes_acis_and_group_ids_only() {
    let config = |list: &str, account: &str, socket: &str| {
        format!(
            "profile = \"production\"\n[channels.sig]\nallowlist = [{list}]\n\
             group_allowlist = [\"Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=\"]\n\
             [channels.sig.transport]\nkind = \"signal\"\naccount = \"{account}\"\n\
             socket_path = \"{socket}\"\n"
        )
    };
    let (aci, bot, sock) = (
        "\"7ccae375-cd51-4c82-8b1e-7be3280aa485\"",
        "+15550001111",
        "/run/signal-cli/socket",
    );
    let (code, err) = check(&config(aci, bot, sock));
    assert_eq!(code, 0, "{err}");
    for list in [
        "\"+15550002222\"",
        "\"7CCAE375-CD51-4C82-8B1E-7BE3280AA485\"",
        "\"alice\"",
    ] {
        let (code, err) = check(&config(list, bot, sock));
        assert_eq!(code, 1, "{list}: {err}");
        assert!(err.contains("is not a Signal ACI"), "{err}");
    }
    let (code, err) = check(&config(aci, "15550001111", sock));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E.164"), "{err}");
    let (code, err) = check(&config(aci, bot, "run/socket"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not an absolute path"), "{err}");
}

/// A Teams channel grants access by Microsoft Entra object id only (never a
/// display name or an e-mail address, which an owner of another tenant's
/// account could choose).
#[test]
fn teams_allowlists_take_entra_object_ids_only() {
    let config = |list: &str| {
        format!(
            "profile = \"production\"\n[channels.teams]\ndm = \"allowlist\"\nallowlist = [{list}]\n\
             [channels.teams.transport]\nkind = \"teams\"\napplication_id = \"a\"\n\
             organization_id = \"o\"\ntoken_secret = \"t\"\n"
        )
    };
    let (code, err) = check(&config(
        "\"7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e90\", \"19:abc_DEF-1@thread.tacv2\", \"a:1XJKJMvc5GBtc2JwZq\"",
    ));
    assert_eq!(code, 0, "{err}");
    for bad in [
        "\"alice\"",
        "\"alice@example.com\"",
        "\"7FAF1A9C-4B0E-4A52-9D0B-3F1B2C6D8E90\"",
        "\"29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB25ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ\"",
        "\"19:alice@example.com\"",
    ] {
        let (code, err) = check(&config(bad));
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(err.contains("is not a Microsoft Entra object id"), "{err}");
    }
}

/// A Google Chat channel grants access to Google Chat ids only: users
/// (`users/` and digits) in the allowlist, spaces in the group allowlist; an
/// e-mail address or a display name is refused where it stands.
#[test]
fn google_chat_allowlists_take_google_chat_ids_only() {
    let config = |list: &str| {
        format!(
            "profile = \"production\"\n[channels.gchat]\ndm = \"allowlist\"\nallowlist = [{list}]\n\
             group_allowlist = [\"spaces/AAAAteamRoom\"]\n\
             [channels.gchat.transport]\nkind = \"google-chat\"\ntoken_secret = \"k\"\n\
             project_number = \"1234567890\"\norganization_id = \"C03abc123\"\n"
        )
    };
    let (code, err) = check(&config("\"users/112233445566778899000\""));
    assert_eq!(code, 0, "{err}");
    for bad in [
        "\"ada@example.com\"",
        "\"Ada\"",
        "\"users/ada\"",
        "\"112233\"",
    ] {
        let (code, err) = check(&config(bad));
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(err.contains("is not a Google Chat user id"), "{err}");
    }
    // The Pub/Sub transport reads no project number (its events carry no token).
    let (code, err) = check(
        "[channels.gchat.transport]\nkind = \"google-chat-pubsub\"\ntoken_secret = \"k\"\n\
         subscription = \"projects/p/subscriptions/chat\"\norganization_id = \"C03abc123\"\n\
         project_number = \"1234567890\"\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not read project_number"), "{err}");
}

/// A Mattermost channel grants access by id only: user ids in the
/// allowlist, team and channel ids in the transport's allowlists (26
/// lowercase letters and digits); a user name, a team or channel name or an
/// e-mail address is refused where it stands.
#[test]
fn mattermost_allowlists_take_mattermost_ids_only() {
    let config = |user: &str, team: &str| {
        format!(
            "profile = \"production\"\n[channels.mm]\ndm = \"allowlist\"\nallowlist = [{user}]\n\
             [channels.mm.transport]\nkind = \"mattermost\"\napi_base = \"https://chat.example.com\"\n\
             token_secret = \"mattermost_token\"\nteam_allowlist = [{team}]\n"
        )
    };
    let (user, team) = (
        "\"u5eru5eru5eru5eru5eru5eru5\"",
        "\"7eam7eam7eam7eam7eam7eam7e\"",
    );
    let (code, err) = check(&config(user, team));
    assert_eq!(code, 0, "{err}");
    for (user, team, at) in [
        ("\"ada\"", team, "allowlist"),
        ("\"ada@example.com\"", team, "allowlist"),
        ("\"U5ERU5ERU5ERU5ERU5ERU5ERU5\"", team, "allowlist"),
        (user, "\"engineering\"", "team_allowlist"),
    ] {
        let (code, err) = check(&config(user, team));
        assert_eq!(code, 1, "{user} {team}: {err}");
        assert!(
            err.contains("is not a Mattermost id") && err.contains(at),
            "{err}"
        );
    }
    // Plain http only to a loopback address (a local test server).
    let (code, err) =
        check(&config(user, team).replace("https://chat.example.com", "http://chat.example.com"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only to a loopback address"), "{err}");
}

/// A Matrix channel grants access by full user id (`@name:server`), never
/// a display name; the bot's own `bot_user` is one too; the homeserver is
/// `https://` (plain http only on loopback).
#[test]
fn matrix_takes_full_user_ids_and_https_homeservers() {
    let config = |user: &str, bot: &str, server: &str| {
        format!(
            "profile = \"production\"\n[channels.mx]\nallowlist = [{user}]\n\
             [channels.mx.transport]\nkind = \"matrix\"\napi_base = \"{server}\"\n\
             token_secret = \"matrix_token\"\nbot_user = \"{bot}\"\n"
        )
    };
    let (user, bot, server) = (
        "\"@ada:example.org\"",
        "@cowbot:example.org",
        "https://matrix.example.org",
    );
    let (code, err) = check(&config(user, bot, server));
    assert_eq!(code, 0, "{err}");
    let (code, err) = check(&config(user, bot, "http://127.0.0.1:8008"));
    assert_eq!(code, 0, "{err}");
    for (user, bot, server, why) in [
        ("\"ada\"", bot, server, "full Matrix user id"),
        ("\"@ada\"", bot, server, "full Matrix user id"),
        (user, "cowbot", server, "not a full Matrix user id"),
        (
            user,
            bot,
            "http://matrix.example.org",
            "only to a loopback address",
        ),
    ] {
        let (code, err) = check(&config(user, bot, server));
        assert_eq!(code, 1, "{user} {bot} {server}: {err}");
        assert!(err.contains(why), "{err}");
    }
}

/// A BlueBubbles channel grants access by handle (an E.164 number or a
/// lowercase Apple ID e-mail address) or chat guid, never a contact's name;
/// its server must be on the local network.
#[test]
fn bluebubbles_takes_handles_and_a_local_network_server_only() {
    let config = |list: &str, server: &str| {
        format!(
            "profile = \"production\"\n[channels.imessage]\ndm = \"allowlist\"\nallowlist = [{list}]\n\
             group_allowlist = [\"iMessage;+;chat123456\"]\n\
             [channels.imessage.transport]\nkind = \"bluebubbles\"\napi_base = \"{server}\"\n\
             password_secret = \"bb_password\"\nsigning_secret = \"bb_webhook\"\n"
        )
    };
    let (handles, lan) = (
        "\"+15551234567\", \"ada@example.com\"",
        "http://192.168.1.20:1234",
    );
    let (code, err) = check(&config(handles, lan));
    assert_eq!(code, 0, "{err}");
    for bad in ["\"Mom\"", "\"Ada@Example.com\"", "\"+1 555 123 4567\""] {
        let (code, err) = check(&config(bad, lan));
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(err.contains("is not a BlueBubbles handle"), "{err}");
    }
    for public in ["https://bluebubbles.example.com", "http://203.0.113.7:1234"] {
        let (code, err) = check(&config(handles, public));
        assert_eq!(code, 1, "{public}: {err}");
        assert!(err.contains("not a local-network address"), "{err}");
    }
}

/// An iMessage (imsg) channel grants access by handle or chat id, never a
/// contact's name; its Mac must be on the local network, its host key an
/// ed25519 key, its imsg command one plain word.
#[test]
fn imessage_takes_handles_a_pinned_key_and_a_local_network_mac_only() {
    let key = cowork::gateway::channels::imessage::generate_key()
        .unwrap()
        .1;
    let config = |list: &str, host: &str, host_key: &str, imsg: &str| {
        format!(
            "profile = \"production\"\n[channels.mac]\ndm = \"allowlist\"\nallowlist = [{list}]\n\
             group_allowlist = [\"42\"]\n\
             [channels.mac.transport]\nkind = \"imessage\"\nhost = \"{host}\"\nuser = \"ada\"\n\
             host_key = \"{host_key}\"\nkey_secret = \"mac_ssh_key\"\nimsg_path = \"{imsg}\"\n\
             contacts = [{list}]\n"
        )
    };
    let handles = "\"+15551234567\", \"ada@example.com\"";
    let (code, err) = check(&config(handles, "mac.local", &key, "imsg"));
    assert_eq!(code, 0, "{err}");
    for bad in ["\"Mom\"", "\"Ada@Example.com\""] {
        let (code, err) = check(&config(bad, "mac.local", &key, "imsg"));
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(err.contains("is not an iMessage handle"), "{err}");
    }
    for (host, host_key, imsg, says) in [
        (
            "mac.example.com",
            key.as_str(),
            "imsg",
            "not a local-network address",
        ),
        (
            "203.0.113.7",
            key.as_str(),
            "imsg",
            "not a local-network address",
        ),
        ("mac.local", "ssh-rsa AAAA", "imsg", "host_key"),
        ("mac.local", key.as_str(), "imsg; reboot", "imsg_path"),
    ] {
        let (code, err) = check(&config(handles, host, host_key, imsg));
        assert_eq!(code, 1, "{host} {imsg}: {err}");
        assert!(err.contains(says), "{err}");
    }
}
