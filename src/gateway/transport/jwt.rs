//! Bearer JWTs signed by a platform (the Bot Framework for Microsoft Teams,
//! Google for Google Chat): RS256 only, verified by `jsonwebtoken` against the
//! keys the platform publishes as a JWKS, found directly or through OpenID
//! metadata. [`KeySet`] fetches the keys once and keeps them; it fetches again
//! when a token names a key it does not hold (at most once a minute, so
//! tokens with made-up key ids cannot make the appliance hammer the platform)
//! and once a day. The JWKS is parsed here, not by `jsonwebtoken::jwk`,
//! because the Bot Framework adds `endorsements` (the channels a key may sign
//! for) to its keys.
//!
//! Times are checked against the caller's `now` (the dispatcher's clock), with
//! [`CLOCK_SKEW_SECS`] of leeway either way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Headers, read_capped};
use crate::gateway::error::{AuthFailure, GatewayError};

/// Allowed clock difference with the platform, both ways (5 minutes).
pub const CLOCK_SKEW_SECS: i64 = 300;
/// Longest bearer token read (a platform's tokens are 1–2 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most keys one JWKS may hold.
pub const MAX_KEYS: usize = 64;
/// Shortest time between two fetches of the keys.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Keys are fetched again after this long even when every `kid` is known.
const MAX_KEYS_AGE: Duration = Duration::from_secs(24 * 3600);

/// One published signing key.
pub struct PublishedKey {
    key: DecodingKey,
    /// The Bot Framework's channel ids this key may sign for; empty when
    /// the platform says nothing.
    endorsements: Vec<String>,
}

impl PublishedKey {
    /// Whether the key is endorsed for `channel_id` (Bot Framework keys).
    pub fn endorses(&self, channel_id: &str) -> bool {
        self.endorsements.iter().any(|e| e == channel_id)
    }
}

impl std::fmt::Debug for PublishedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublishedKey(endorsements {:?})", self.endorsements)
    }
}

/// A parsed JWKS: the RSA signing keys by `kid`.
#[derive(Debug, Default)]
pub struct Jwks {
    keys: HashMap<String, Arc<PublishedKey>>,
}

impl Jwks {
    /// Parses a JWKS document. Keys that are not RSA signing keys (another
    /// `kty`, `use` other than `sig`, `alg` other than `RS256`) are skipped;
    /// a document with none left, or with more than [`MAX_KEYS`], is refused.
    pub fn parse(json: &[u8]) -> Result<Jwks, String> {
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<RawKey>,
        }
        #[derive(Deserialize)]
        struct RawKey {
            kty: String,
            kid: Option<String>,
            n: Option<String>,
            e: Option<String>,
            #[serde(rename = "use")]
            usage: Option<String>,
            alg: Option<String>,
            #[serde(default)]
            endorsements: Vec<String>,
        }
        let doc: Doc = serde_json::from_slice(json).map_err(|e| format!("JWKS: {e}"))?;
        if doc.keys.len() > MAX_KEYS {
            return Err(format!(
                "JWKS: {} keys, more than {MAX_KEYS}",
                doc.keys.len()
            ));
        }
        let mut keys = HashMap::new();
        for raw in doc.keys {
            let (Some(kid), Some(n), Some(e)) = (raw.kid, raw.n, raw.e) else {
                continue;
            };
            if raw.kty != "RSA"
                || raw.usage.as_deref().is_some_and(|u| u != "sig")
                || raw.alg.as_deref().is_some_and(|a| a != "RS256")
                || kid.is_empty()
                || kid.len() > 256
            {
                continue;
            }
            let key = DecodingKey::from_rsa_components(&n, &e)
                .map_err(|err| format!("JWKS: key {kid:?}: {err}"))?;
            keys.insert(
                kid,
                Arc::new(PublishedKey {
                    key,
                    endorsements: raw.endorsements,
                }),
            );
        }
        if keys.is_empty() {
            return Err("JWKS: no RSA signing key".into());
        }
        Ok(Jwks { keys })
    }

    pub fn get(&self, kid: &str) -> Option<Arc<PublishedKey>> {
        self.keys.get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(h: &Headers) -> Result<&str, AuthFailure> {
    const NAME: &str = "Authorization";
    let value = h.require(NAME)?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or(AuthFailure::MalformedHeader(NAME))?
        .trim();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(AuthFailure::MalformedHeader(NAME));
    }
    Ok(token)
}

/// The id of the key that signed `token`, read from its header; a token not
/// signed with RS256 or naming no key is refused before any key is looked up.
pub fn key_id(token: &str) -> Result<String, AuthFailure> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::BadToken("not a JWT"))?;
    if header.alg != Algorithm::RS256 {
        return Err(AuthFailure::BadToken("not signed with RS256"));
    }
    match header.kid {
        Some(kid) if !kid.is_empty() && kid.len() <= 256 => Ok(kid),
        _ => Err(AuthFailure::BadToken("names no key")),
    }
}

/// Verifies `token`'s RS256 signature with `key`, its issuer (one of
/// `issuers`), audience, expiry and not-before (±[`CLOCK_SKEW_SECS`] around
/// `now`), and returns its claims.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    key: &PublishedKey,
    issuers: &[&str],
    audience: &str,
    now: i64,
) -> Result<C, AuthFailure> {
    let claims = check_signature(token, key, issuers, audience)?;
    check_times(&claims, now)?;
    claims_as(&claims)
}

type Claims = serde_json::Map<String, serde_json::Value>;

/// The signature, issuer and audience (what a cached token need not redo).
fn check_signature(
    token: &str,
    key: &PublishedKey,
    issuers: &[&str],
    audience: &str,
) -> Result<Claims, AuthFailure> {
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(issuers);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    // Times are checked by check_times against the caller's clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    jsonwebtoken::decode::<Claims>(token, &key.key, &v)
        .map(|data| data.claims)
        .map_err(|e| {
            AuthFailure::BadToken(match e.kind() {
                ErrorKind::InvalidSignature => "signature does not match",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                ErrorKind::InvalidAlgorithm => "not signed with RS256",
                _ => "malformed",
            })
        })
}

fn check_times(claims: &Claims, now: i64) -> Result<(), AuthFailure> {
    let time = |name: &str| claims.get(name).map(|v| v.as_i64());
    match time("exp") {
        Some(Some(exp)) if now <= exp.saturating_add(CLOCK_SKEW_SECS) => {}
        Some(Some(_)) => return Err(AuthFailure::BadToken("expired")),
        _ => return Err(AuthFailure::BadToken("exp is not a number")),
    }
    match time("nbf") {
        None => Ok(()),
        Some(Some(nbf)) if nbf <= now.saturating_add(CLOCK_SKEW_SECS) => Ok(()),
        Some(Some(_)) => Err(AuthFailure::BadToken("not valid yet")),
        Some(None) => Err(AuthFailure::BadToken("nbf is not a number")),
    }
}

fn claims_as<C: DeserializeOwned>(claims: &Claims) -> Result<C, AuthFailure> {
    C::deserialize(claims).map_err(|_| AuthFailure::BadToken("claims of the wrong shape"))
}

/// Most tokens [`VerifiedTokens`] keeps.
const MAX_VERIFIED_TOKENS: usize = 1024;

/// [`verify`] for one issuer and audience, remembering the tokens whose
/// signature held (by SHA-256 of the token): a platform sends one token with
/// many requests (the Bot Framework's and Google's live about an hour) and an
/// RS256 check costs about 100 µs. Times are checked at every use; a token is
/// only ever found under the key id it names, which the caller looked up.
pub struct VerifiedTokens {
    issuers: Vec<String>,
    audience: String,
    seen: std::sync::Mutex<HashMap<[u8; 32], Arc<Claims>>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VerifiedTokens({:?} for {})",
            self.issuers, self.audience
        )
    }
}

impl VerifiedTokens {
    pub fn new(issuers: &[&str], audience: &str) -> VerifiedTokens {
        VerifiedTokens {
            issuers: issuers.iter().map(|i| i.to_string()).collect(),
            audience: audience.to_string(),
            seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// [`VerifiedTokens::verify`] of the request's `Authorization: Bearer` token.
    pub fn verify_request<C: DeserializeOwned>(
        &self,
        headers: &Headers,
        key: &PublishedKey,
        now: i64,
    ) -> Result<C, AuthFailure> {
        self.verify(bearer(headers)?, key, now)
    }

    /// As [`verify`], the signature checked only the first time.
    pub fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        key: &PublishedKey,
        now: i64,
    ) -> Result<C, AuthFailure> {
        use sha2::{Digest, Sha256};
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let lock = || self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let known = lock().get(&digest).cloned();
        let claims = match known {
            Some(claims) => claims,
            None => {
                let issuers: Vec<&str> = self.issuers.iter().map(String::as_str).collect();
                let claims = Arc::new(check_signature(token, key, &issuers, &self.audience)?);
                let mut seen = lock();
                if seen.len() >= MAX_VERIFIED_TOKENS {
                    seen.clear();
                }
                seen.insert(digest, Arc::clone(&claims));
                claims
            }
        };
        check_times(&claims, now)?;
        claims_as(&claims)
    }
}

/// Where a platform publishes its keys.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An OpenID configuration document whose `jwks_uri` holds the keys.
    OpenIdMetadata(String),
    /// The JWKS itself.
    Jwks(String),
}

/// A platform's published keys, fetched when needed (see the module doc).
#[derive(Debug)]
pub struct KeySet {
    channel: &'static str,
    http: reqwest::Client,
    source: KeySource,
    refetch_after: Duration,
    held: tokio::sync::Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    jwks: Arc<Jwks>,
    fetched: Option<Instant>,
    tried: Option<Instant>,
}

impl KeySet {
    /// Keys from `source` (https, or http to a loopback address), trusting
    /// `extra_root_pem` besides the built-in roots.
    pub fn new(
        channel: &'static str,
        source: KeySource,
        extra_root_pem: Option<&[u8]>,
    ) -> Result<KeySet, GatewayError> {
        let (KeySource::OpenIdMetadata(url) | KeySource::Jwks(url)) = &source;
        crate::net::parse_url(url, "https", "http").map_err(|e| GatewayError::HttpClient {
            channel,
            reason: format!("keys URL: {e}"),
        })?;
        Ok(KeySet {
            channel,
            http: super::http_client(channel, extra_root_pem, Duration::from_secs(15))?,
            source,
            refetch_after: REFETCH_AFTER,
            held: tokio::sync::Mutex::new(Held::default()),
        })
    }

    /// The same, fetching again on an unknown key as soon as asked (tests).
    pub fn refetching_at_once(mut self) -> KeySet {
        self.refetch_after = Duration::ZERO;
        self
    }

    /// The key that signed `token` (fetching the set when it is not held).
    /// A token naming a key the platform does not publish is a verification
    /// failure; no keys at all (the platform unreachable since the start) is
    /// the appliance's own failure, answered 500 so the platform retries.
    pub async fn key_for(&self, token: &str) -> Result<Arc<PublishedKey>, GatewayError> {
        let kid = key_id(token).map_err(|r| GatewayError::verify(self.channel, r))?;
        let mut held = self.held.lock().await;
        let stale = held.fetched.is_none_or(|at| at.elapsed() > MAX_KEYS_AGE);
        let may_try = held
            .tried
            .is_none_or(|at| at.elapsed() >= self.refetch_after);
        let mut failure = None;
        if (stale || held.jwks.get(&kid).is_none()) && may_try {
            held.tried = Some(Instant::now());
            match self.fetch().await {
                Ok(jwks) => {
                    tracing::info!(
                        channel = self.channel,
                        keys = jwks.len(),
                        "signing keys fetched"
                    );
                    held.jwks = Arc::new(jwks);
                    held.fetched = Some(Instant::now());
                }
                // The keys held go on serving; the next unknown key tries again.
                Err(e) => {
                    tracing::warn!(channel = self.channel, error = %e, "signing keys not fetched");
                    failure = Some(e);
                }
            }
        }
        if let Some(key) = held.jwks.get(&kid) {
            return Ok(key);
        }
        if held.jwks.is_empty() {
            return Err(failure.unwrap_or_else(|| {
                self.err("not fetched yet; tried again within a minute".into())
            }));
        }
        Err(GatewayError::verify(
            self.channel,
            AuthFailure::BadToken("signed by a key the platform does not publish"),
        ))
    }

    /// The key that signed the request's `Authorization: Bearer` token.
    pub async fn key_for_request(
        &self,
        headers: &Headers,
    ) -> Result<Arc<PublishedKey>, GatewayError> {
        let token = bearer(headers).map_err(|r| GatewayError::verify(self.channel, r))?;
        self.key_for(token).await
    }

    async fn fetch(&self) -> Result<Jwks, GatewayError> {
        let url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::OpenIdMetadata(url) => {
                #[derive(Deserialize)]
                struct Metadata {
                    jwks_uri: String,
                }
                let doc: Metadata = serde_json::from_slice(&self.get(url).await?)
                    .map_err(|e| self.err(format!("OpenID metadata: {e}")))?;
                crate::net::parse_url(&doc.jwks_uri, "https", "http")
                    .map_err(|e| self.err(format!("OpenID metadata: jwks_uri: {e}")))?;
                doc.jwks_uri
            }
        };
        Jwks::parse(&self.get(&url).await?).map_err(|e| self.err(e))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, GatewayError> {
        const OP: &str = "fetch signing keys";
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(super::api_err(self.channel, OP))?;
        let status = resp.status();
        let body = read_capped(self.channel, OP, resp).await?;
        if !status.is_success() {
            return Err(self.err(format!("HTTP {status}")));
        }
        Ok(body)
    }

    fn err(&self, reason: String) -> GatewayError {
        GatewayError::ChannelApi {
            channel: self.channel,
            operation: "fetch signing keys",
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const KEY_A: &[u8] = include_bytes!("../../../tests/data/jwt/key-a.pem");
    const KEY_B: &[u8] = include_bytes!("../../../tests/data/jwt/key-b.pem");
    const JWKS_A: &[u8] = include_bytes!("../../../tests/data/jwt/jwks-a.json");
    const JWKS_AB: &[u8] = include_bytes!("../../../tests/data/jwt/jwks-ab.json");
    const NOW: i64 = 1_800_000_000;

    fn sign(pem: &[u8], kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"iss": "issuer", "aud": "app", "exp": NOW + 600, "nbf": NOW - 10, "extra": "x"})
    }

    fn check(token: &str) -> Result<serde_json::Value, AuthFailure> {
        let jwks = Jwks::parse(JWKS_AB).unwrap();
        let key = jwks
            .get(&key_id(token)?)
            .ok_or(AuthFailure::BadToken("unknown"))?;
        verify(token, &key, &["issuer"], "app", NOW)
    }

    #[test]
    fn a_token_holds_only_with_its_key_issuer_audience_and_times() {
        let good = sign(KEY_A, "test-key-a", claims());
        assert_eq!(check(&good).unwrap()["extra"], "x");
        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims();
            c[k] = v;
            check(&sign(KEY_A, "test-key-a", c))
        };
        let bad = |r: &'static str| Err(AuthFailure::BadToken(r));
        assert_eq!(with("iss", "other".into()), bad("wrong issuer"));
        assert_eq!(with("aud", "other".into()), bad("wrong audience"));
        assert_eq!(
            with("aud", serde_json::json!(["x", "app"])).map(|_| ()),
            Ok(())
        );
        // Five minutes of skew either way, not more.
        assert!(with("exp", (NOW - 300).into()).is_ok());
        assert_eq!(with("exp", (NOW - 301).into()), bad("expired"));
        assert!(with("exp", "soon".into()).is_err());
        assert!(with("nbf", (NOW + 300).into()).is_ok());
        assert_eq!(with("nbf", (NOW + 301).into()), bad("not valid yet"));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            check(&sign(KEY_A, "test-key-a", c)),
            bad("a required claim is missing")
        );
        // Signed by B but naming A's key; a payload changed after signing.
        assert_eq!(
            check(&sign(KEY_B, "test-key-a", claims())),
            bad("signature does not match")
        );
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(
                &serde_json::json!({"iss": "issuer", "aud": "app", "exp": NOW + 9999}),
            )
            .unwrap(),
        );
        assert_eq!(check(&parts.join(".")), bad("signature does not match"));
    }

    #[test]
    fn a_remembered_token_skips_only_the_signature() {
        let jwks = Jwks::parse(JWKS_AB).unwrap();
        let (a, b) = (
            jwks.get("test-key-a").unwrap(),
            jwks.get("test-key-b").unwrap(),
        );
        let tokens = VerifiedTokens::new(&["issuer"], "app");
        let good = sign(KEY_A, "test-key-a", claims());
        for _ in 0..3 {
            let c: serde_json::Value = tokens.verify(&good, &a, NOW).unwrap();
            assert_eq!(c["extra"], "x");
        }
        // Its times still count at every use.
        assert_eq!(
            tokens.verify::<serde_json::Value>(&good, &a, NOW + 10_000),
            Err(AuthFailure::BadToken("expired"))
        );
        // A failed token is not remembered: it fails every time.
        let forged = sign(KEY_B, "test-key-a", claims());
        for _ in 0..2 {
            assert_eq!(
                tokens.verify::<serde_json::Value>(&forged, &a, NOW),
                Err(AuthFailure::BadToken("signature does not match"))
            );
        }
        let other_aud = VerifiedTokens::new(&["issuer"], "other");
        assert!(
            other_aud
                .verify::<serde_json::Value>(&good, &a, NOW)
                .is_err()
        );
        // Full: the oldest are dropped, nothing is refused for it.
        for i in 0..=MAX_VERIFIED_TOKENS {
            let mut c = claims();
            c["n"] = i.into();
            let t = sign(KEY_B, "test-key-b", c);
            tokens.verify::<serde_json::Value>(&t, &b, NOW).unwrap();
        }
        assert!(tokens.seen.lock().unwrap().len() <= MAX_VERIFIED_TOKENS);
        tokens.verify::<serde_json::Value>(&good, &a, NOW).unwrap();
    }

    #[test]
    fn other_algorithms_and_keyless_or_malformed_tokens_are_refused_before_any_key() {
        // HS256 "signed" with the public key's text: the classic confusion.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("test-key-a".into());
        let hs = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(JWKS_A).unwrap(),
        )
        .unwrap();
        assert_eq!(
            key_id(&hs),
            Err(AuthFailure::BadToken("not signed with RS256"))
        );
        let none = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"alg":"none","kid":"test-key-a"}"#
            ),
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                claims().to_string()
            ),
        );
        assert!(key_id(&none).is_err());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = None;
        let keyless = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_rsa_pem(KEY_A).unwrap(),
        )
        .unwrap();
        assert_eq!(key_id(&keyless), Err(AuthFailure::BadToken("names no key")));
        for junk in ["", "a.b.c", "...", "\u{0}", &"A".repeat(20_000)] {
            assert_eq!(
                key_id(junk),
                Err(AuthFailure::BadToken("not a JWT")),
                "{junk:.20}"
            );
        }
        assert_eq!(
            check(&sign(KEY_A, "nobody", claims())),
            Err(AuthFailure::BadToken("unknown"))
        );
    }

    #[test]
    fn bearer_header_shapes() {
        let h = |v: &str| {
            let mut h = Headers::new();
            h.insert("authorization", v);
            h
        };
        assert_eq!(bearer(&h("Bearer abc")), Ok("abc"));
        assert!(bearer(&Headers::new()).is_err());
        for bad in ["Basic abc", "Bearer ", "bearer abc", "Bearerabc"] {
            assert_eq!(
                bearer(&h(bad)),
                Err(AuthFailure::MalformedHeader("Authorization")),
                "{bad}"
            );
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(bearer(&h(&long)).is_err());
    }

    #[test]
    fn a_jwks_keeps_rsa_signing_keys_only_and_refuses_junk() {
        let jwks = Jwks::parse(JWKS_AB).unwrap();
        assert_eq!(jwks.len(), 2);
        assert!(jwks.get("test-key-a").unwrap().endorses("webchat"));
        assert!(!jwks.get("test-key-b").unwrap().endorses("webchat"));
        let a: serde_json::Value = serde_json::from_slice(JWKS_A).unwrap();
        let key = a["keys"][0].clone();
        let doc = |keys: Vec<serde_json::Value>| {
            serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
        };
        let mut ec = key.clone();
        ec["kty"] = "EC".into();
        let mut enc = key.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let mut hs = key.clone();
        hs["alg"] = "HS256".into();
        hs["kid"] = "hs".into();
        let kept = Jwks::parse(&doc(vec![ec, enc, hs, key.clone()])).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(Jwks::parse(&doc(vec![])).is_err());
        assert!(Jwks::parse(&doc(vec![key.clone(); MAX_KEYS + 1])).is_err());
        let mut bad_n = key.clone();
        bad_n["n"] = "***".into();
        assert!(Jwks::parse(&doc(vec![bad_n])).is_err());
        for junk in [&b""[..], b"{}", b"[]", b"{\"keys\":7}", b"\xff"] {
            assert!(Jwks::parse(junk).is_err());
        }
    }

    /// A JWKS (and OpenID metadata) server on loopback whose keys the test
    /// swaps, counting the fetches.
    async fn key_server(
        jwks: Arc<std::sync::Mutex<&'static [u8]>>,
        fetches: Arc<AtomicUsize>,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let meta = serde_json::json!({ "jwks_uri": format!("{base}/keys") }).to_string();
        let app = axum::Router::new()
            .route(
                "/meta",
                axum::routing::get(move || std::future::ready(meta.clone())),
            )
            .route(
                "/keys",
                axum::routing::get(move || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    std::future::ready(jwks.lock().unwrap().to_vec())
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn keys_are_fetched_once_then_again_only_for_an_unknown_key_and_at_most_once_a_minute() {
        let served = Arc::new(std::sync::Mutex::new(JWKS_A));
        let fetches = Arc::new(AtomicUsize::new(0));
        let base = key_server(Arc::clone(&served), Arc::clone(&fetches)).await;
        let a = sign(KEY_A, "test-key-a", claims());
        let b = sign(KEY_B, "test-key-b", claims());

        let keys =
            KeySet::new("t", KeySource::OpenIdMetadata(format!("{base}/meta")), None).unwrap();
        keys.key_for(&a).await.unwrap();
        keys.key_for(&a).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // B is published now, but the last fetch was under a minute ago.
        *served.lock().unwrap() = JWKS_AB;
        assert!(matches!(
            keys.key_for(&b).await.unwrap_err(),
            GatewayError::VerifyRequest {
                reason: AuthFailure::BadToken("signed by a key the platform does not publish"),
                ..
            }
        ));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // Without the minute's wait, an unknown key fetches the set again.
        *served.lock().unwrap() = JWKS_A;
        let keys = KeySet::new("t", KeySource::Jwks(format!("{base}/keys")), None)
            .unwrap()
            .refetching_at_once();
        keys.key_for(&a).await.unwrap();
        *served.lock().unwrap() = JWKS_AB;
        keys.key_for(&b).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        // A set that stops parsing leaves the held keys serving.
        *served.lock().unwrap() = b"not json";
        keys.key_for(&a).await.unwrap();
        keys.key_for(&b).await.unwrap();
        assert!(keys.key_for(&sign(KEY_A, "gone", claims())).await.is_err());
    }

    #[tokio::test]
    async fn no_keys_at_all_is_the_appliances_failure_not_the_requests() {
        let served = Arc::new(std::sync::Mutex::new(&b"{\"keys\": []}"[..]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let base = key_server(Arc::clone(&served), Arc::clone(&fetches)).await;
        let keys = KeySet::new("t", KeySource::Jwks(format!("{base}/keys")), None).unwrap();
        let a = sign(KEY_A, "test-key-a", claims());
        for _ in 0..2 {
            let e = keys.key_for(&a).await.unwrap_err();
            assert!(matches!(e, GatewayError::ChannelApi { .. }), "{e}");
        }
        // Within the minute, nothing more is asked of the platform.
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A token that is no JWT is the request's failure still.
        assert!(matches!(
            keys.key_for("junk").await.unwrap_err(),
            GatewayError::VerifyRequest { .. }
        ));
    }

    #[test]
    fn key_urls_must_be_https_or_loopback() {
        for bad in ["http://example.com/keys", "file:///etc/passwd", "nonsense"] {
            assert!(
                KeySet::new("t", KeySource::Jwks(bad.into()), None).is_err(),
                "{bad}"
            );
        }
    }
}
