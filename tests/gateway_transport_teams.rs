//! Microsoft Teams (Azure Bot Service), started by the runner from its
//! settings like in production, against a local fake of Microsoft over TLS:
//! the Bot Framework's OpenID metadata and keys, the Entra token endpoint
//! (client credentials) and the Bot Connector. Covered: pairing end to end
//! with answers through the connector on the bot's own token, long answers
//! split, 429 then success, an app password replaced in the vault taken up
//! without a restart, replays, and every way a request's token or activity
//! can fail to hold (401/400/413, audited, nothing changed, nothing sent), and
//! another tenant's activities (audited, answered 200, not acted on).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_transport_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use cowork::gateway::channels::{Redacted, SecretLookup};
use cowork::gateway::{
    ChannelSettings, GatewayError, GatewaySettings, PAIRED_REPLY, PAIRING_PROMPT, TransportKind,
    TransportSettings,
};
use gateway_transport_common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const APP: &str = "2f0a6a5e-8d1c-4f7e-9b3a-1c2d3e4f5a6b";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const USER: &str = "7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e90";
const CONV: &str = "a:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB25ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt";
const KEY_A: &[u8] = include_bytes!("data/jwt/key-a.pem");
const KEY_B: &[u8] = include_bytes!("data/jwt/key-b.pem");
const JWKS_A: &[u8] = include_bytes!("data/jwt/jwks-a.json");

/// What the fake Microsoft holds and saw.
#[derive(Default)]
struct FakeMicrosoft {
    base: String,
    /// Client secrets Entra accepts for the app.
    passwords: Vec<String>,
    /// Tokens issued and still good.
    tokens: Vec<String>,
    token_requests: usize,
    /// Answer the next send with 429.
    busy_once: bool,
    /// (the path's prefix before `/v3`, the conversation, the text).
    sent: Vec<(String, String, String)>,
}

type Fake = Arc<Mutex<FakeMicrosoft>>;

async fn token(
    State(fake): State<Fake>,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let mut f = fake.lock().unwrap();
    f.token_requests += 1;
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(APP)
        && form.get("scope").map(String::as_str) == Some("https://api.botframework.com/.default")
        && form
            .get("client_secret")
            .is_some_and(|s| f.passwords.contains(s));
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})),
        )
            .into_response();
    }
    let t = format!("eyJ0-token-{}", f.token_requests);
    f.tokens.push(t.clone());
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": t}))
        .into_response()
}

async fn activities(
    State(fake): State<Fake>,
    prefix: String,
    conv: String,
    h: HeaderMap,
    body: Value,
) -> axum::response::Response {
    let mut f = fake.lock().unwrap();
    let auth = h.get("authorization").and_then(|v| v.to_str().ok());
    let good = auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| f.tokens.iter().any(|x| x == t));
    if !good {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Authorization has been denied for this request."})),
        )
            .into_response();
    }
    if std::mem::take(&mut f.busy_once) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "slow down",
        )
            .into_response();
    }
    assert_eq!(
        (body["type"].as_str(), body["textFormat"].as_str()),
        (Some("message"), Some("plain"))
    );
    let text = body["text"].as_str().unwrap().to_string();
    f.sent.push((prefix, conv, text));
    Json(json!({"id": "1:reply"})).into_response()
}

/// The fake on TLS: its base URL, state and certificate authority.
async fn serve_fake() -> (Fake, String, TestTls) {
    let fake: Fake = Arc::default();
    fake.lock().unwrap().passwords.push("password-one".into());
    let router = Router::new()
        .route(
            "/openid",
            get(|State(f): State<Fake>| async move {
                let base = f.lock().unwrap().base.clone();
                Json(json!({"issuer": "https://api.botframework.com", "jwks_uri": format!("{base}/keys"),
                    "id_token_signing_alg_values_supported": ["RS256"]}))
            }),
        )
        .route("/keys", get(|| async { JWKS_A }))
        .route(&format!("/{TENANT}/oauth2/v2.0/token"), post(token))
        .route(
            "/v3/conversations/{conv}/activities",
            post(|s: State<Fake>, Path(c): Path<String>, h: HeaderMap, Json(b): Json<Value>| {
                activities(s, String::new(), c, h, b)
            }),
        )
        .route(
            "/default/v3/conversations/{conv}/activities",
            post(|s: State<Fake>, Path(c): Path<String>, h: HeaderMap, Json(b): Json<Value>| {
                activities(s, "/default".into(), c, h, b)
            }),
        )
        .with_state(fake.clone());
    let tls = test_tls();
    let base = serve_tls(router, &tls).await;
    fake.lock().unwrap().base = base.clone();
    (fake, base, tls)
}

/// The vault, with the app password the test replaces.
struct Passwords(Mutex<String>);

impl SecretLookup for Passwords {
    fn secret(&self, name: &str) -> Result<Redacted, GatewayError> {
        assert_eq!(name, "teams_password");
        Ok(Redacted::from(self.0.lock().unwrap().clone()))
    }
}

struct Harness {
    env: Env,
    fake: Fake,
    base: String,
    addr: std::net::SocketAddr,
    vault: Arc<Passwords>,
    _running: cowork::gateway::runner::Running,
    _tls: TestTls,
}

async fn harness() -> Harness {
    let env = env(&["teams"]);
    let (fake, base, tls) = serve_fake().await;
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let mut settings = GatewaySettings::default();
    settings.channels.insert(
        "teams".into(),
        ChannelSettings {
            transport: TransportSettings {
                kind: TransportKind::Teams,
                application_id: Some(APP.into()),
                organization_id: Some(TENANT.into()),
                token_secret: Some("teams_password".into()),
                keys_url: Some(format!("{base}/openid")),
                token_url: Some(format!("{base}/{TENANT}/oauth2/v2.0/token")),
                api_base: Some(format!("{base}/default")),
                ca_file: Some(ca),
                ..TransportSettings::default()
            },
            ..Default::default()
        },
    );
    let vault = Arc::new(Passwords(Mutex::new("password-one".into())));
    let running = start_runner_with(&env, &settings, vault.clone()).await;
    assert!(running.failed.is_empty(), "{:?}", running.failed);
    Harness {
        env,
        fake,
        addr: running.webhook_addr.unwrap(),
        base,
        vault,
        _running: running,
        _tls: tls,
    }
}

impl Harness {
    fn service_url(&self) -> String {
        format!("{}/", self.base)
    }

    fn claims(&self) -> Value {
        json!({"iss": "https://api.botframework.com", "aud": APP, "exp": NOW + 3600,
            "nbf": NOW - 60, "serviceurl": self.service_url()})
    }

    /// A personal-chat message `id` from the user.
    fn dm(&self, id: &str, text: &str) -> Value {
        json!({"type": "message", "id": id, "timestamp": "2027-01-15T08:00:00.000Z",
            "serviceUrl": self.service_url(), "channelId": "msteams",
            "from": {"id": "29:1abcDEF", "name": "Ann", "aadObjectId": USER},
            "conversation": {"conversationType": "personal", "tenantId": TENANT, "id": CONV},
            "recipient": {"id": format!("28:{APP}"), "name": "CoWork"},
            "text": text, "textFormat": "plain", "locale": "en-US",
            "entities": [{"type": "clientInfo", "locale": "en-US", "platform": "Web"}],
            "channelData": {"tenant": {"id": TENANT}}})
    }

    async fn post_raw(&self, auth: Option<&str>, body: Vec<u8>) -> u16 {
        let mut req = reqwest::Client::new()
            .post(format!("http://{}/teams/messages", self.addr))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn post_signed(&self, pem: &[u8], kid: &str, claims: &Value, activity: &Value) -> u16 {
        let token = sign(pem, kid, claims);
        self.post_raw(
            Some(&format!("Bearer {token}")),
            activity.to_string().into_bytes(),
        )
        .await
    }

    async fn post(&self, activity: &Value) -> u16 {
        self.post_signed(KEY_A, "test-key-a", &self.claims(), activity)
            .await
    }

    async fn sent(&self, n: usize) -> Vec<(String, String, String)> {
        eventually("connector sends", || {
            self.fake.lock().unwrap().sent.len() >= n
        })
        .await;
        self.fake.lock().unwrap().sent.clone()
    }
}

fn sign(pem: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
}

#[tokio::test]
async fn pairing_then_answers_through_the_connector_on_the_bots_own_token() {
    let h = harness().await;
    assert_eq!(h.post(&h.dm("1001", "hello")).await, 200);
    // Into the conversation, at the service URL the activity named.
    assert_eq!(
        h.sent(1).await[0],
        (String::new(), CONV.to_string(), PAIRING_PROMPT.to_string())
    );
    let code = h.env.pairing.issue("teams").unwrap();
    let pair = format!("/pair {}", code.code.as_str());
    assert_eq!(h.post(&h.dm("1002", &pair)).await, 200);
    assert_eq!(h.sent(2).await[1].2, PAIRED_REPLY);
    assert_eq!(h.post(&h.dm("1003", "status?")).await, 200);
    assert_eq!(h.sent(3).await[2].2, ACK);
    let task = h.env.try_task().unwrap();
    assert_eq!(
        (task.user.sender.as_str(), task.inbound.chat()),
        (USER, CONV)
    );
    // A long answer later: 4,000-character pieces; one token for everything.
    let long = "é".repeat(9000);
    h.env.replies.deliver("teams", CONV, &long).await.unwrap();
    let lens: Vec<usize> = h.sent(6).await[3..]
        .iter()
        .map(|s| s.2.chars().count())
        .collect();
    assert_eq!(lens, [4000, 4000, 1000]);
    assert_eq!(h.fake.lock().unwrap().token_requests, 1);
}

#[tokio::test]
async fn a_conversation_not_heard_from_goes_through_the_configured_connector_and_429_waits() {
    let h = harness().await;
    h.fake.lock().unwrap().busy_once = true;
    h.env
        .replies
        .deliver("teams", "19:abc@thread.v2", "later")
        .await
        .unwrap();
    assert_eq!(
        h.sent(1).await,
        [(
            "/default".to_string(),
            "19:abc@thread.v2".to_string(),
            "later".to_string()
        )]
    );
}

/// The owner adds a second client secret in Entra, stores it in the vault and
/// deletes the first: the next token is asked with the new one, no restart.
#[tokio::test]
async fn a_replaced_app_password_is_taken_up_without_a_restart() {
    let h = harness().await;
    h.env.replies.deliver("teams", CONV, "one").await.unwrap();
    *h.vault.0.lock().unwrap() = "password-two".into();
    {
        let mut f = h.fake.lock().unwrap();
        f.passwords = vec!["password-two".into()];
        // The old password's token is revoked with it.
        f.tokens.clear();
    }
    h.env.replies.deliver("teams", CONV, "two").await.unwrap();
    let sent: Vec<String> = h.sent(2).await.into_iter().map(|s| s.2).collect();
    assert_eq!(sent, ["one", "two"]);
    assert_eq!(h.fake.lock().unwrap().token_requests, 2);
    // A password Entra refuses: the failure says so, nothing is sent.
    *h.vault.0.lock().unwrap() = "wrong".into();
    h.fake.lock().unwrap().tokens.clear();
    let e = h
        .env
        .replies
        .deliver("teams", CONV, "three")
        .await
        .unwrap_err();
    assert!(e.contains("invalid_client") && !e.contains("wrong"), "{e}");
    assert_eq!(h.fake.lock().unwrap().sent.len(), 2);
}

#[tokio::test]
async fn a_replayed_activity_is_not_acted_on_twice() {
    let h = harness().await;
    let a = h.dm("2001", "hello");
    assert_eq!(h.post(&a).await, 200);
    h.sent(1).await;
    assert_eq!(h.post(&a).await, 409);
    assert_eq!(h.env.audited("gateway.replay").len(), 1);
    // The same activity id in another conversation is another message.
    let mut other = a.clone();
    other["conversation"]["id"] = json!("a:another");
    assert_eq!(h.post(&other).await, 200);
    assert_eq!(h.env.audited("gateway.replay").len(), 1);
}

/// A harness whose channel has answered one message; what must stay as it
/// is; a fresh activity.
async fn after_one_message() -> (Harness, (usize, i64), Value) {
    let h = harness().await;
    assert_eq!(h.post(&h.dm("1", "first")).await, 200);
    h.sent(1).await;
    let before = h.env.snapshot();
    let a = h.dm("2", "hi");
    (h, before, a)
}

#[tokio::test]
async fn tokens_and_activities_that_do_not_hold_change_nothing() {
    let (h, before, a) = after_one_message().await;
    let mut want = Vec::new();
    let with = |k: &str, v: Value| {
        let mut c = h.claims();
        c[k] = v;
        c
    };
    let body = a.to_string().into_bytes();
    assert_eq!(h.post_raw(None, body.clone()).await, 401);
    want.push("bad_auth_header");
    assert_eq!(h.post_raw(Some("Basic abc"), body.clone()).await, 401);
    want.push("bad_auth_header");
    assert_eq!(
        h.post_raw(Some("Bearer not.a.jwt"), body.clone()).await,
        401
    );
    want.push("bad_token");
    for claims in [
        with("iss", json!("https://sts.windows.net/evil/")),
        with("aud", json!("00000000-0000-0000-0000-000000000000")),
        with("exp", json!(NOW - 301)),
        with("nbf", json!(NOW + 301)),
        with("serviceurl", json!("https://attacker.example/")),
    ] {
        assert_eq!(
            h.post_signed(KEY_A, "test-key-a", &claims, &a).await,
            401,
            "{claims}"
        );
        want.push("bad_token");
    }
    let mut no_url = h.claims();
    no_url.as_object_mut().unwrap().remove("serviceurl");
    assert_eq!(h.post_signed(KEY_A, "test-key-a", &no_url, &a).await, 401);
    want.push("bad_token");
    // B's key is not published (and the keys were fetched under a minute
    // ago); B's signature under A's key id does not verify.
    assert_eq!(
        h.post_signed(KEY_B, "test-key-b", &h.claims(), &a).await,
        401
    );
    want.push("bad_token");
    assert_eq!(
        h.post_signed(KEY_B, "test-key-a", &h.claims(), &a).await,
        401
    );
    want.push("bad_token");
    // HS256 keyed with the published JWKS text: refused before any key.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("test-key-a".into());
    let forged =
        jsonwebtoken::encode(&hs, &h.claims(), &EncodingKey::from_secret(JWKS_A).unwrap()).unwrap();
    assert_eq!(
        h.post_raw(Some(&format!("Bearer {forged}")), body.clone())
            .await,
        401
    );
    want.push("bad_token");
    // Key A is endorsed for msteams and webchat, not for another channel.
    let mut skype = a.clone();
    skype["channelId"] = json!("skype");
    assert_eq!(h.post(&skype).await, 401);
    want.push("bad_token");
    assert_eq!(h.env.audited("gateway.webhook_rejected"), want);
    assert_eq!(h.env.snapshot(), before);
    assert_eq!(h.fake.lock().unwrap().sent.len(), 1);
}

#[tokio::test]
async fn other_tenants_and_hostile_or_idle_activities_change_nothing() {
    let (h, before, a) = after_one_message().await;
    let mut want = Vec::new();
    // Another tenant: authentic, so answered 200, but refused and audited
    // with who and where (an activity naming two tenants, or none, too).
    let other = "11111111-2222-3333-4444-555555555555";
    let mut foreign = a.clone();
    foreign["conversation"]["tenantId"] = json!(other);
    foreign["channelData"]["tenant"]["id"] = json!(other);
    let mut mixed = a.clone();
    mixed["channelData"]["tenant"]["id"] = json!(other);
    let mut tenantless = a.clone();
    tenantless["conversation"]
        .as_object_mut()
        .unwrap()
        .remove("tenantId");
    tenantless.as_object_mut().unwrap().remove("channelData");
    for refused in [&foreign, &mixed, &tenantless] {
        assert_eq!(h.post(refused).await, 200);
    }
    assert_eq!(
        h.env.audited("gateway.inbound_rejected"),
        ["other_organization"; 3]
    );
    let entry = h
        .env
        .audit
        .entries()
        .into_iter()
        .find(|e| e.kind == "gateway.inbound_rejected")
        .unwrap();
    assert_eq!(entry.subject, format!("teams:{USER}"));
    assert!(reason(&entry).contains("other_organization"));
    // Oversized, and malformed under a good token.
    let token = format!("Bearer {}", sign(KEY_A, "test-key-a", &h.claims()));
    assert_eq!(
        h.post_raw(Some(&token), vec![b' '; 1024 * 1024 + 1]).await,
        413
    );
    want.push("body_too_large");
    for hostile in [
        b"not json".to_vec(),
        b"{\"type\": 5}".to_vec(),
        b"\xff\xfe".to_vec(),
        "[".repeat(10_000).into_bytes(),
    ] {
        assert_eq!(h.post_raw(Some(&token), hostile).await, 400);
        want.push("malformed");
    }
    assert_eq!(h.env.audited("gateway.webhook_rejected"), want);
    // An authentic activity that is no message, or whose sender has no
    // Entra object id: 200, nothing done.
    let mut update = a.clone();
    update["type"] = json!("conversationUpdate");
    assert_eq!(h.post(&update).await, 200);
    let mut anonymous = a.clone();
    anonymous["from"]
        .as_object_mut()
        .unwrap()
        .remove("aadObjectId");
    assert_eq!(h.post(&anonymous).await, 200);
    assert_eq!(h.env.snapshot(), before);
    assert_eq!(h.fake.lock().unwrap().sent.len(), 1);
}
