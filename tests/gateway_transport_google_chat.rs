//! Google Chat: the real client, webhook route and Pub/Sub loop against a
//! local fake of Google over TLS: its JWKS, its token endpoint (which checks
//! the jwt-bearer assertion's signature and claims with the test key before
//! it issues a token), the Chat API's `spaces.messages.create` (recording
//! each post, HTTP 429 or 401 once on demand) and a Pub/Sub subscription's
//! `:pull` and `:acknowledge`. Covers: a signed DM answered in its space and
//! thread with a token the fake issued; tokens that do not hold (issuer,
//! audience, expiry, unknown key, none, tampered, HS256) → 401 and nothing
//! changed; another organization's user refused and audited; a replayed
//! message name; group spaces and mentions; oversized, malformed and hostile
//! bodies; a reply over 32,000 bytes split on UTF-8 boundaries; 429 then
//! success and a refused token renewed; the Pub/Sub pull (dispatched, acked;
//! malformed acked and audited; our own failure not acked and delivered
//! again); the loop ending on the stop signal; both transports started by
//! the runner from settings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_transport_common;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use cowork::gateway::channels::SecretLookup;
use cowork::gateway::channels::google_chat::{
    self, CHAT_SCOPE, GoogleChat, GoogleChatClient, ISSUER, PUBSUB_SCOPE, PubSubClient,
    PubSubInbound, pull_once, run_pubsub, token_source,
};
use cowork::gateway::transport::jwt::{KeySet, KeySource};
use cowork::gateway::transport::pacer::Pacer;
use cowork::gateway::{
    AccessMode, ChannelSettings, GatewaySettings, PAIRING_PROMPT, TransportKind, TransportSettings,
};
use gateway_transport_common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const KEY_A: &str = include_str!("data/jwt/key-a.pem");
const KEY_B: &str = include_str!("data/jwt/key-b.pem");
const JWKS_A: &str = include_str!("data/jwt/jwks-a.json");
const PROJECT: &str = "1234567890";
const ORG: &str = "C03abc123";
const USER: &str = "users/112233445566778899000";
const SPACE: &str = "spaces/AAAAdmSpace1";
const GROUP: &str = "spaces/AAAAteamRoom";
const BOT: &str = "users/4242";
const CLIENT_EMAIL: &str = "cowork@cowork-project.iam.gserviceaccount.com";
const SUBSCRIPTION: &str = "projects/cowork-project/subscriptions/chat-events";
const KEY_SECRET: &str = "gchat_service_account";

/// The service account's JSON key as the vault holds it (key A).
static KEY_JSON: LazyLock<String> = LazyLock::new(|| {
    json!({"type": "service_account", "client_email": CLIENT_EMAIL, "private_key": KEY_A,
        "token_uri": "https://oauth2.googleapis.com/token"})
    .to_string()
});

/// What the fake Google saw and will do.
#[derive(Default)]
struct FakeGoogle {
    /// Issued tokens and their scope.
    tokens: HashMap<String, String>,
    /// Each message post: (space, text, thread, messageReplyOption).
    posts: Vec<(String, String, Option<String>, Option<String>)>,
    /// HTTP 429 / 401 answers to serve to the next message posts.
    posts_429: usize,
    posts_401: usize,
    /// The subscription: (ack id, data, delivered and not acknowledged).
    queue: Vec<(String, String, bool)>,
    acked: Vec<String>,
    pulls: usize,
    arrived: Arc<tokio::sync::Notify>,
}

impl FakeGoogle {
    /// Publishes `event` to the subscription.
    fn publish(&mut self, event: &Value) {
        let data = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        self.publish_raw(data);
    }

    fn publish_raw(&mut self, data: String) {
        let ack = format!("ack-{}", self.queue.len() + self.acked.len());
        self.queue.push((ack, data, false));
        self.arrived.notify_waiters();
    }

    /// Delivers again the messages pulled and not acknowledged (their ack
    /// deadline passed).
    fn redeliver(&mut self) {
        for m in &mut self.queue {
            m.2 = false;
        }
    }
}

type Fake = Arc<Mutex<FakeGoogle>>;

fn google_error(status: StatusCode, message: &str) -> axum::response::Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

/// The scope of the bearer token in `h`, if the fake issued it.
fn scope_of(fake: &Fake, h: &HeaderMap) -> Option<String> {
    let auth = h.get("authorization")?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ")?;
    fake.lock().unwrap().tokens.get(token).cloned()
}

/// The token endpoint: a jwt-bearer assertion signed by key A for this URL.
async fn token(
    State((fake, url)): State<(Fake, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let jwks: Value = serde_json::from_str(JWKS_A).unwrap();
    let k = &jwks["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        k["n"].as_str().unwrap(),
        k["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.set_audience(&[&url]);
    v.set_issuer(&[CLIENT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let claims = match jsonwebtoken::decode::<Value>(&assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "error_description": e.to_string()})),
            )
                .into_response();
        }
    };
    let scope = claims["scope"].as_str().unwrap_or_default().to_string();
    assert!(scope == CHAT_SCOPE || scope == PUBSUB_SCOPE, "{scope}");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    let mut f = fake.lock().unwrap();
    let issued = format!("ya29.fake-{}", f.tokens.len());
    f.tokens.insert(issued.clone(), scope);
    Json(json!({"access_token": issued, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn create_message(
    State(fake): State<Fake>,
    Path(space): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    if scope_of(&fake, &h).as_deref() != Some(CHAT_SCOPE) {
        return google_error(StatusCode::UNAUTHORIZED, "Request had invalid credentials.");
    }
    let mut f = fake.lock().unwrap();
    if f.posts_401 > 0 {
        f.posts_401 -= 1;
        return google_error(StatusCode::UNAUTHORIZED, "Request had invalid credentials.");
    }
    if f.posts_429 > 0 {
        f.posts_429 -= 1;
        return google_error(StatusCode::TOO_MANY_REQUESTS, "Resource has been exhausted");
    }
    let text = body["text"].as_str().unwrap_or_default().to_string();
    if text.len() > 32_000 {
        return google_error(StatusCode::BAD_REQUEST, "message too long");
    }
    f.posts.push((
        format!("spaces/{space}"),
        text,
        body["thread"]["name"].as_str().map(String::from),
        q.get("messageReplyOption").cloned(),
    ));
    Json(json!({"name": format!("spaces/{space}/messages/out")})).into_response()
}

/// `projects/{p}/subscriptions/{name}:pull` and `:acknowledge`.
async fn subscription(
    State(fake): State<Fake>,
    Path((project, call)): Path<(String, String)>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    if scope_of(&fake, &h).as_deref() != Some(PUBSUB_SCOPE) {
        return google_error(StatusCode::UNAUTHORIZED, "Request had invalid credentials.");
    }
    let Some((name, method)) = call.split_once(':') else {
        return google_error(StatusCode::NOT_FOUND, "no method");
    };
    assert_eq!(
        format!("projects/{project}/subscriptions/{name}"),
        SUBSCRIPTION
    );
    match method {
        "pull" => {
            assert_eq!(body["maxMessages"], 10);
            let mut waited = false;
            loop {
                let (out, arrived) = {
                    let mut f = fake.lock().unwrap();
                    f.pulls += 1;
                    let mut out = Vec::new();
                    for m in f.queue.iter_mut().filter(|m| !m.2).take(10) {
                        m.2 = true;
                        out.push(json!({"ackId": m.0, "message": {"data": m.1,
                            "messageId": "1", "publishTime": "2027-01-15T08:00:00Z"}}));
                    }
                    (out, Arc::clone(&f.arrived))
                };
                if !out.is_empty() || waited {
                    return Json(json!({"receivedMessages": out})).into_response();
                }
                // A short pull: answered empty after 2 s unless a message comes.
                let _ = tokio::time::timeout(Duration::from_secs(2), arrived.notified()).await;
                waited = true;
            }
        }
        "acknowledge" => {
            let ids: Vec<String> = serde_json::from_value(body["ackIds"].clone()).unwrap();
            let mut f = fake.lock().unwrap();
            f.queue.retain(|m| !ids.contains(&m.0));
            f.acked.extend(ids);
            Json(json!({})).into_response()
        }
        _ => google_error(StatusCode::NOT_FOUND, "no method"),
    }
}

/// The fake Google over TLS: its state, base URL and certificates.
async fn serve_google() -> (Fake, String, TestTls) {
    let fake: Fake = Arc::default();
    let tls = test_tls();
    // The token endpoint checks the assertion's audience against its own URL,
    // known once the listener is bound: a late-bound cell holds it.
    let url_cell: Arc<Mutex<String>> = Arc::default();
    let (f, u) = (fake.clone(), url_cell.clone());
    let router = Router::new()
        .route("/jwks", get(|| async { JWKS_A }))
        .route(
            "/token",
            post(move |form| {
                let state = (f.clone(), u.lock().unwrap().clone());
                token(State(state), form)
            }),
        )
        .route("/v1/spaces/{space}/messages", post(create_message))
        .route(
            "/v1/projects/{project}/subscriptions/{call}",
            post(subscription),
        )
        .with_state(fake.clone());
    let base = serve_tls(router, &tls).await;
    *url_cell.lock().unwrap() = format!("{base}/token");
    (fake, base, tls)
}

fn vault() -> Vault {
    Vault([(KEY_SECRET, KEY_JSON.as_str())].into_iter().collect())
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A MESSAGE event from `user` of `domain` in `space` (`DIRECT_MESSAGE` or
/// `SPACE`), message `id`, thread `t1`.
fn message(space: &str, space_type: &str, id: &str, text: &str) -> Value {
    let sender = json!({"name": USER, "displayName": "Ada", "type": "HUMAN", "domainId": ORG});
    json!({
        "type": "MESSAGE",
        "eventTime": rfc3339(NOW),
        "space": {"name": space, "spaceType": space_type},
        "message": {
            "name": format!("{space}/messages/{id}"),
            "sender": sender,
            "createTime": rfc3339(NOW),
            "text": text,
            "argumentText": text,
            "thread": {"name": format!("{space}/threads/t1")},
        },
        "user": sender,
    })
}

fn dm(id: &str, text: &str) -> Value {
    message(SPACE, "DIRECT_MESSAGE", id, text)
}

/// A token signed with `pem`, naming `kid`.
fn sign(pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": PROJECT, "iat": NOW - 5, "exp": NOW + 3600})
}

fn good_token() -> String {
    sign(KEY_A, "test-key-a", &claims())
}

struct Harness {
    env: Env,
    fake: Fake,
    addr: std::net::SocketAddr,
    client: Arc<GoogleChatClient>,
    _tls: TestTls,
}

fn allowlisted(c: &mut ChannelSettings) {
    c.dm = AccessMode::Allowlist;
    c.group = AccessMode::Allowlist;
    c.allowlist = vec![USER.into()];
    c.group_allowlist = vec![GROUP.into()];
}

async fn harness() -> Harness {
    harness_with(env_with(&["google-chat"], allowlisted)).await
}

fn chat_client(base: &str, tls: &TestTls) -> Arc<GoogleChatClient> {
    let secrets: Arc<dyn SecretLookup> = Arc::new(vault());
    let tokens = token_source(
        &secrets,
        KEY_SECRET,
        CHAT_SCOPE,
        &format!("{base}/token"),
        Some(&tls.ca_pem),
    )
    .unwrap();
    Arc::new(GoogleChatClient::new(&http_config(base, tls), tokens).unwrap())
}

async fn harness_with(env: Env) -> Harness {
    let (fake, base, tls) = serve_google().await;
    let client = chat_client(&base, &tls);
    env.replies.register("google-chat", client.clone());
    let keys = KeySet::new(
        "google-chat",
        KeySource::Jwks(format!("{base}/jwks")),
        Some(&tls.ca_pem),
    )
    .unwrap();
    let verifier = GoogleChat::endpoint(PROJECT, ORG)
        .unwrap()
        .bot_user(Some(BOT))
        .unwrap();
    let route_client = client.clone();
    let addr = start_webhook(&env, "/google-chat/events", |hooks| {
        google_chat::webhook_route(hooks, verifier, keys, route_client)
    })
    .await;
    Harness {
        env,
        fake,
        addr,
        client,
        _tls: tls,
    }
}

async fn post_event(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/google-chat/events"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

impl Harness {
    async fn post(&self, event: &Value) -> u16 {
        post_event(
            self.addr,
            Some(&good_token()),
            event.to_string().into_bytes(),
        )
        .await
        .0
    }

    /// Nothing was dispatched, remembered, queued or answered since `before`.
    fn nothing_done(&self, before: (usize, i64)) {
        assert!(self.env.audited("gateway.message").is_empty());
        assert_eq!(self.env.snapshot(), before);
        assert!(self.env.try_task().is_none());
        assert!(self.fake.lock().unwrap().posts.is_empty());
    }

    async fn posts(&self, n: usize) -> Vec<(String, String, Option<String>, Option<String>)> {
        eventually("Chat API posts", || {
            self.fake.lock().unwrap().posts.len() >= n
        })
        .await;
        self.fake.lock().unwrap().posts.clone()
    }
}

#[tokio::test]
async fn a_signed_dm_from_an_allowlisted_user_is_answered_in_its_space_and_thread() {
    let h = harness().await;
    let (status, body) = post_event(
        h.addr,
        Some(&good_token()),
        dm("m1", "how full is the disk?").to_string().into_bytes(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let posts = h.posts(1).await;
    assert_eq!(
        posts[0],
        (
            SPACE.to_string(),
            ACK.to_string(),
            Some(format!("{SPACE}/threads/t1")),
            Some("REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD".to_string())
        )
    );
    let task = h.env.try_task().unwrap();
    assert_eq!(
        (
            task.user.sender.as_str(),
            task.inbound.chat(),
            task.inbound.text()
        ),
        (USER, SPACE, "how full is the disk?")
    );
    assert_eq!(h.env.audited("gateway.message"), ["authorized_allowlisted"]);
    // The bearer token the API took is one the fake issued, for chat.bot.
    let tokens = h.fake.lock().unwrap().tokens.clone();
    assert_eq!(tokens.values().collect::<Vec<_>>(), [CHAT_SCOPE]);
}

#[tokio::test]
async fn an_unknown_sender_in_a_dm_gets_the_pairing_prompt() {
    let h = harness_with(env(&["google-chat"])).await;
    assert_eq!(h.post(&dm("m1", "hello")).await, 200);
    assert_eq!(h.posts(1).await[0].1, PAIRING_PROMPT);
    assert!(h.env.try_task().is_none());
}

#[tokio::test]
async fn tokens_that_do_not_hold_are_401_and_change_nothing() {
    let h = harness().await;
    let body = dm("m1", "hello").to_string().into_bytes();
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        sign(KEY_A, "test-key-a", &c)
    };
    let mut tampered: Vec<String> = good_token().split('.').map(String::from).collect();
    tampered[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"iss": ISSUER, "aud": PROJECT, "exp": NOW + 99_999}).to_string());
    let hs256 = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("test-key-a".into());
        jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(JWKS_A.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let before = h.env.snapshot();
    let cases: Vec<(&str, Option<String>)> = vec![
        (
            "wrong issuer",
            Some(with("iss", json!("accounts.google.com"))),
        ),
        ("wrong audience", Some(with("aud", json!("999")))),
        ("expired", Some(with("exp", json!(NOW - 3600)))),
        ("unknown key", Some(sign(KEY_B, "test-key-b", &claims()))),
        (
            "signed by another key",
            Some(sign(KEY_B, "test-key-a", &claims())),
        ),
        ("tampered", Some(tampered.join("."))),
        ("HS256", Some(hs256)),
        ("not a JWT", Some("AbCdEf123456".into())),
        ("no header", None),
    ];
    for (what, token) in &cases {
        let (status, _) = post_event(h.addr, token.as_deref(), body.clone()).await;
        assert_eq!(status, 401, "{what}");
    }
    let mut want = vec!["bad_token"; cases.len() - 1];
    want.push("bad_auth_header");
    assert_eq!(h.env.audited("gateway.webhook_rejected"), want);
    h.nothing_done(before);
}

#[tokio::test]
async fn another_organizations_user_is_refused_and_audited() {
    let h = harness().await;
    let mut foreign = dm("m1", "hello");
    foreign["user"]["domainId"] = json!("C0evilcorp");
    foreign["message"]["sender"]["domainId"] = json!("C0evilcorp");
    let mut consumer = dm("m2", "hello");
    consumer["user"].as_object_mut().unwrap().remove("domainId");
    consumer["message"]["sender"]
        .as_object_mut()
        .unwrap()
        .remove("domainId");
    let before = h.env.snapshot();
    assert_eq!(h.post(&foreign).await, 200);
    assert_eq!(h.post(&consumer).await, 200);
    assert_eq!(
        h.env.audited("gateway.inbound_rejected"),
        ["other_organization", "other_organization"]
    );
    let entries = h.env.audit.entries();
    let refused = entries
        .iter()
        .find(|e| e.kind == "gateway.inbound_rejected")
        .unwrap();
    assert_eq!(refused.subject, format!("google-chat:{USER}"));
    assert!(
        refused.payload.to_string().contains("C0evilcorp"),
        "{refused:?}"
    );
    h.nothing_done(before);
}

#[tokio::test]
async fn a_replayed_message_name_is_not_acted_on_twice() {
    let h = harness().await;
    let ev = dm("m1", "hello");
    assert_eq!(h.post(&ev).await, 200);
    h.posts(1).await;
    assert!(h.env.try_task().is_some());
    // The same message again (a captured body with a token still valid).
    assert_eq!(h.post(&ev).await, 409);
    assert_eq!(h.env.audited("gateway.replay"), ["replayed_event"]);
    assert!(h.env.try_task().is_none());
    assert_eq!(h.fake.lock().unwrap().posts.len(), 1);
}

#[tokio::test]
async fn group_spaces_answer_only_a_mention_of_the_app() {
    let h = harness().await;
    let plain = message(GROUP, "SPACE", "g1", "chatter");
    let mut other_app = message(GROUP, "SPACE", "g2", "@Other status?");
    other_app["message"]["annotations"] = json!([{"type": "USER_MENTION",
        "userMention": {"type": "MENTION", "user": {"name": "users/7", "type": "BOT"}}}]);
    let mut mention = message(GROUP, "SPACE", "g3", "@Cowork status?");
    mention["message"]["argumentText"] = json!(" status?");
    mention["message"]["annotations"] = json!([{"type": "USER_MENTION", "startIndex": 0, "length": 7,
        "userMention": {"type": "MENTION", "user": {"name": BOT, "displayName": "Cowork", "type": "BOT"}}}]);
    for ev in [&plain, &other_app, &mention] {
        assert_eq!(h.post(ev).await, 200);
    }
    let posts = h.posts(1).await;
    assert_eq!(posts[0].0, GROUP);
    assert_eq!(
        posts[0].2.as_deref(),
        Some("spaces/AAAAteamRoom/threads/t1")
    );
    let task = h.env.try_task().unwrap();
    assert_eq!(
        (task.inbound.chat(), task.inbound.text()),
        (GROUP, "status?")
    );
    assert!(
        h.env.try_task().is_none(),
        "unmentioned messages are no task"
    );
    assert_eq!(
        h.env.audited("gateway.message"),
        ["not_mentioned", "not_mentioned", "authorized_allowlisted"]
    );
}

#[tokio::test]
async fn oversized_malformed_hostile_and_stale_bodies_are_refused() {
    let h = harness().await;
    let before = h.env.snapshot();
    let token = good_token();
    let post = |body: Vec<u8>| post_event(h.addr, Some(&token), body);
    let mut want = Vec::new();
    assert_eq!(post(vec![b' '; 1024 * 1024 + 1]).await.0, 413);
    want.push("body_too_large");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let mut spoofed = dm("m1", "x");
    spoofed["message"]["sender"]["name"] = json!("ada@example.com");
    let mut path = dm("m2", "x");
    path["space"]["name"] = json!("spaces/../../v1/x");
    let mut nul = dm("m3", "x");
    nul["message"]["argumentText"] = json!("a\u{0}b");
    for hostile in [
        b"not json".to_vec(),
        b"\xff\xfe".to_vec(),
        b"{\"type\": \"MESSAGE\"}".to_vec(),
        deep.into_bytes(),
        spoofed.to_string().into_bytes(),
        path.to_string().into_bytes(),
        nul.to_string().into_bytes(),
    ] {
        assert_eq!(post(hostile).await.0, 400);
        want.push("malformed");
    }
    assert_eq!(h.env.audited("gateway.webhook_rejected"), want);
    // Authentic but stale: refused in the trail, answered 200.
    let mut stale = dm("m4", "x");
    stale["eventTime"] = json!(rfc3339(NOW - 3600));
    assert_eq!(post(stale.to_string().into_bytes()).await.0, 200);
    // Authentic events that are no message: nothing to do.
    let mut added = dm("m5", "x");
    added["type"] = json!("ADDED_TO_SPACE");
    assert_eq!(post(added.to_string().into_bytes()).await.0, 200);
    assert_eq!(h.env.audited("gateway.inbound_rejected"), ["stale_event"]);
    h.nothing_done(before);
}

#[tokio::test]
async fn a_reply_over_32000_bytes_is_split_on_utf8_boundaries() {
    let h = harness().await;
    // 3- and 4-byte characters, so 32,000 falls inside one.
    let long = "€uro 😀 ".repeat(6000);
    assert!(long.len() > 64_000);
    h.env
        .replies
        .deliver("google-chat", SPACE, &long)
        .await
        .unwrap();
    let posts = h.fake.lock().unwrap().posts.clone();
    assert_eq!(posts.len(), 3);
    assert!(posts.iter().all(|p| p.1.len() <= 32_000 && p.0 == SPACE));
    let joined: String = posts.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(joined, long);
    // No inbound message yet: no thread to follow.
    assert!(posts.iter().all(|p| p.2.is_none() && p.3.is_none()));
}

#[tokio::test]
async fn rate_limited_then_sent_and_a_refused_token_renewed() {
    let h = harness().await;
    h.fake.lock().unwrap().posts_429 = 1;
    h.client.send_text(SPACE, "after a wait").await.unwrap();
    assert_eq!(h.posts(1).await[0].1, "after a wait");
    assert_eq!(h.fake.lock().unwrap().tokens.len(), 1);
    // The API refuses the token once: a new one is fetched and the post made.
    h.fake.lock().unwrap().posts_401 = 1;
    h.client.send_text(SPACE, "again").await.unwrap();
    assert_eq!(h.posts(2).await[1].1, "again");
    assert_eq!(h.fake.lock().unwrap().tokens.len(), 2);
    // Refused twice in a row: the error says so, without the token.
    h.fake.lock().unwrap().posts_401 = 2;
    let e = h
        .client
        .send_text(SPACE, "no")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401") && !e.contains("ya29"), "{e}");
    // Under a lasting rate limit the reply is given up, saying why.
    h.fake.lock().unwrap().posts_429 = 5;
    let e = h.client.send_text(SPACE, "later").await.unwrap_err();
    assert_rate_limited(&e, "3 tries", "ya29");
}

/// The vault with a key the owner may replace.
struct SwappableVault(Mutex<String>);

impl SecretLookup for SwappableVault {
    fn secret(
        &self,
        name: &str,
    ) -> Result<cowork::gateway::channels::Redacted, cowork::gateway::GatewayError> {
        assert_eq!(name, KEY_SECRET);
        Ok(self.0.lock().unwrap().clone().into())
    }
}

#[tokio::test]
async fn a_key_replaced_in_the_vault_signs_the_next_token_request() {
    let (fake, base, tls) = serve_google().await;
    let vault = Arc::new(SwappableVault(Mutex::new(KEY_JSON.clone())));
    let secrets: Arc<dyn SecretLookup> = vault.clone();
    let tokens = token_source(
        &secrets,
        KEY_SECRET,
        CHAT_SCOPE,
        &format!("{base}/token"),
        Some(&tls.ca_pem),
    )
    .unwrap();
    let client = GoogleChatClient::new(&http_config(&base, &tls), tokens).unwrap();
    client.send_text(SPACE, "one").await.unwrap();
    // Key B replaces key A (which the fake Google still expects): the next
    // token is asked for with B, without a restart, and refused.
    *vault.0.lock().unwrap() = json!({"type": "service_account", "client_email": CLIENT_EMAIL,
        "private_key": KEY_B, "token_uri": "https://oauth2.googleapis.com/token"})
    .to_string();
    fake.lock().unwrap().posts_401 = 1;
    let e = client
        .send_text(SPACE, "two")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid_grant") && e.contains("get access token"),
        "{e}"
    );
    assert_eq!(fake.lock().unwrap().posts.len(), 1);
}

/// The Pub/Sub side on `env`: its parser, the subscription client and the
/// Chat client registered as the channel's way out.
fn pubsub_inbound(env: &Env, base: &str, tls: &TestTls) -> Arc<PubSubInbound> {
    let secrets: Arc<dyn SecretLookup> = Arc::new(vault());
    let tokens = token_source(
        &secrets,
        KEY_SECRET,
        PUBSUB_SCOPE,
        &format!("{base}/token"),
        Some(&tls.ca_pem),
    )
    .unwrap();
    let chat = chat_client(base, tls);
    env.replies.register("google-chat", chat.clone());
    Arc::new(PubSubInbound {
        pubsub: PubSubClient::new(&http_config(base, tls), SUBSCRIPTION, tokens).unwrap(),
        parser: GoogleChat::pubsub(ORG).unwrap(),
        dispatcher: env.dispatcher.clone(),
        chat,
    })
}

#[tokio::test]
async fn pubsub_messages_are_pulled_dispatched_and_acknowledged() {
    let env = env_with(&["google-chat"], allowlisted);
    let (fake, base, tls) = serve_google().await;
    let inbound = pubsub_inbound(&env, &base, &tls);
    {
        let mut f = fake.lock().unwrap();
        f.publish(&dm("p1", "status?"));
        f.publish_raw("***not base64***".into());
        f.publish_raw(base64::engine::general_purpose::STANDARD.encode("{\"type\": 5}"));
        let mut added = dm("p2", "x");
        added["type"] = json!("ADDED_TO_SPACE");
        f.publish(&added);
        let mut foreign = dm("p3", "x");
        foreign["user"]["domainId"] = json!("C0evilcorp");
        f.publish(&foreign);
        // An hour late (the box was offline): still served by Pub/Sub.
        let mut late = dm("p4", "and the memory?");
        late["eventTime"] = json!(rfc3339(NOW - 3600));
        f.publish(&late);
    }
    let stats = pull_once(&inbound).await.unwrap();
    assert_eq!(
        (
            stats.received,
            stats.dispatched,
            stats.not_dispatched,
            stats.acknowledged
        ),
        (6, 2, 4, 6)
    );
    {
        let f = fake.lock().unwrap();
        assert!(f.queue.is_empty(), "everything was acknowledged");
        let posts: Vec<&str> = f.posts.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(posts, [ACK, ACK]);
        assert_eq!(
            f.posts[0].2.as_deref(),
            Some("spaces/AAAAdmSpace1/threads/t1")
        );
        let mut scopes: Vec<&str> = f.tokens.values().map(String::as_str).collect();
        scopes.sort_unstable();
        assert_eq!(scopes, [CHAT_SCOPE, PUBSUB_SCOPE]);
    }
    assert_eq!(
        env.audited("gateway.inbound_rejected"),
        ["malformed", "malformed", "other_organization"]
    );
    assert_eq!(env.try_task().unwrap().inbound.text(), "status?");
    assert_eq!(env.try_task().unwrap().inbound.text(), "and the memory?");
    // Delivered again (an ack lost on the way): dropped as a replay.
    fake.lock().unwrap().publish(&dm("p1", "status?"));
    let stats = pull_once(&inbound).await.unwrap();
    assert_eq!((stats.replays, stats.acknowledged), (1, 1));
    assert!(env.try_task().is_none());
}

#[tokio::test]
async fn a_message_not_handled_through_our_fault_is_not_acknowledged() {
    let audit = Arc::new(FlakyAudit::default());
    let env = env_full(&["google-chat"], allowlisted, ACK, Some(audit.clone()));
    let (fake, base, tls) = serve_google().await;
    let inbound = pubsub_inbound(&env, &base, &tls);
    fake.lock().unwrap().publish(&dm("p1", "status?"));
    audit.fail_next(1);
    assert!(pull_once(&inbound).await.is_err());
    assert!(fake.lock().unwrap().acked.is_empty());
    assert!(env.try_task().is_none());
    // Its ack deadline passes: Pub/Sub delivers it again, and now it is handled.
    fake.lock().unwrap().redeliver();
    let stats = pull_once(&inbound).await.unwrap();
    assert_eq!((stats.dispatched, stats.acknowledged), (1, 1));
    assert!(env.try_task().is_some());
    assert_eq!(fake.lock().unwrap().acked, ["ack-0"]);
}

#[tokio::test]
async fn the_pubsub_loop_serves_until_the_stop_signal() {
    let env = env_with(&["google-chat"], allowlisted);
    let (fake, base, tls) = serve_google().await;
    let inbound = pubsub_inbound(&env, &base, &tls);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(run_pubsub(inbound, Pacer::unobserved("google-chat"), rx));
    fake.lock().unwrap().publish(&dm("p1", "status?"));
    eventually("the answer", || fake.lock().unwrap().posts.len() == 1).await;
    eventually("the acknowledgement", || {
        fake.lock().unwrap().acked.len() == 1
    })
    .await;
    // Stopped while a pull waits for messages.
    stop_runner(stop, runner).await;
}

#[tokio::test]
async fn the_runner_starts_both_transports_from_settings() {
    let env = env_with(&["gchat", "gchat-ps"], allowlisted);
    let (fake, base, tls) = serve_google().await;
    let ca = env.dir.path().join("google-ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let transport = |kind| TransportSettings {
        kind,
        api_base: Some(base.clone()),
        token_secret: Some(KEY_SECRET.into()),
        organization_id: Some(ORG.into()),
        token_url: Some(format!("{base}/token")),
        ca_file: Some(ca.clone()),
        ..TransportSettings::default()
    };
    let mut settings = GatewaySettings::default();
    let mut endpoint = ChannelSettings::default();
    allowlisted(&mut endpoint);
    let mut pubsub = endpoint.clone();
    endpoint.transport = TransportSettings {
        project_number: Some(PROJECT.into()),
        keys_url: Some(format!("{base}/jwks")),
        ..transport(TransportKind::GoogleChat)
    };
    pubsub.transport = TransportSettings {
        subscription: Some(SUBSCRIPTION.into()),
        pubsub_base: Some(base.clone()),
        ..transport(TransportKind::GoogleChatPubsub)
    };
    settings.channels.insert("gchat".into(), endpoint);
    settings.channels.insert("gchat-ps".into(), pubsub);
    let running = start_runner(&env, &settings, &vault()).await;
    assert!(running.failed.is_empty(), "{:?}", running.failed);
    assert_eq!(running.started.len(), 2);
    let addr = running.webhook_addr.unwrap();
    let (status, _) = post_event(
        addr,
        Some(&good_token()),
        dm("w1", "by the endpoint").to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    fake.lock().unwrap().publish(&dm("p1", "by pub/sub"));
    eventually("both answers", || fake.lock().unwrap().posts.len() == 2).await;
    let mut channels = vec![
        env.try_task().unwrap().inbound.channel().to_string(),
        env.try_task().unwrap().inbound.channel().to_string(),
    ];
    channels.sort_unstable();
    assert_eq!(channels, ["gchat", "gchat-ps"]);
    running.stop();
    // A key missing from the vault keeps that channel down, said by name.
    let running2 = start_runner(&env, &settings, &Vault(HashMap::new())).await;
    assert_eq!(running2.failed.len(), 2);
    running2.stop();
}
