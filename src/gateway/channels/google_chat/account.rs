//! The appliance's Google service account: its JSON key lives in the vault
//! (`token_secret`) and is read again for every new access token, so a key
//! replaced there is used from the next token on. A token is asked for with
//! a signed assertion (RFC 7523: `grant_type=urn:ietf:params:oauth:
//! grant-type:jwt-bearer`, an RS256 JWT from the account to the token
//! endpoint for one scope, valid an hour).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::parse::CHANNEL;
use crate::gateway::channels::SecretLookup;
use crate::gateway::error::GatewayError;
use crate::gateway::transport::oauth::{Grant, TokenSource};

/// Google's token endpoint, unless the key or `token_url` says another.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Sending messages as the Chat app.
pub const CHAT_SCOPE: &str = "https://www.googleapis.com/auth/chat.bot";
/// Pulling and acknowledging the subscription's messages.
pub const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";
/// What an assertion is good for (Google's most).
const ASSERTION_LIFETIME_SECS: u64 = 3600;
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a service account's JSON key that are used.
pub struct ServiceAccountKey {
    pub client_email: String,
    private_key: Zeroizing<String>,
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccountKey({})", self.client_email)
    }
}

impl ServiceAccountKey {
    /// Parses the key file's JSON (as Google Cloud console downloads it).
    pub fn parse(json: &str) -> Result<ServiceAccountKey, GatewayError> {
        #[derive(Deserialize)]
        struct Raw {
            client_email: String,
            private_key: String,
            token_uri: Option<String>,
        }
        let bad = |reason| GatewayError::VerifierKey {
            channel: CHANNEL,
            reason,
        };
        let raw: Raw = serde_json::from_str(json).map_err(|_| {
            bad("the service account key is not the JSON key file (client_email, private_key)")
        })?;
        let key = ServiceAccountKey {
            client_email: raw.client_email,
            private_key: Zeroizing::new(raw.private_key),
            token_uri: raw.token_uri,
        };
        if key.client_email.is_empty() || key.client_email.len() > 256 {
            return Err(bad(
                "the service account key's client_email is empty or too long",
            ));
        }
        key.signer()?;
        Ok(key)
    }

    fn signer(&self) -> Result<EncodingKey, GatewayError> {
        EncodingKey::from_rsa_pem(self.private_key.as_bytes()).map_err(|_| {
            GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "the service account key's private_key is not an RSA key in PEM",
            }
        })
    }

    /// An assertion asking `audience` (the token endpoint) for `scope`,
    /// issued at `now` (Unix seconds).
    pub fn assertion(&self, scope: &str, audience: &str, now: u64) -> Result<String, GatewayError> {
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.signer()?).map_err(
            |e| GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: "sign the token request",
                reason: e.to_string(),
            },
        )
    }
}

/// Reads the key named `secret` from the vault.
pub fn read_key(
    secrets: &dyn SecretLookup,
    secret: &str,
) -> Result<ServiceAccountKey, GatewayError> {
    ServiceAccountKey::parse(secrets.secret(secret)?.expose())
}

/// Access tokens for `scope` from `token_url`, each asked for with the key
/// the vault holds under `secret` at that moment.
pub fn token_source(
    secrets: &Arc<dyn SecretLookup>,
    secret: &str,
    scope: &'static str,
    token_url: &str,
    extra_root_pem: Option<&[u8]>,
) -> Result<TokenSource, GatewayError> {
    let (secrets, secret, audience) = (
        Arc::clone(secrets),
        secret.to_string(),
        token_url.to_string(),
    );
    let grant: Grant = Box::new(move || {
        let key = read_key(&*secrets, &secret)?;
        // The token endpoint checks iat and exp against real time.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(vec![
            ("grant_type", GRANT_TYPE.to_string()),
            ("assertion", key.assertion(scope, &audience, now)?),
        ])
    });
    TokenSource::new(CHANNEL, token_url, extra_root_pem, grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = include_str!("../../../../tests/data/jwt/key-a.pem");
    const JWKS_A: &[u8] = include_bytes!("../../../../tests/data/jwt/jwks-a.json");

    fn key_json(pem: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "client_email": "cowork@project.iam.gserviceaccount.com",
            "private_key": pem,
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    #[test]
    fn an_assertion_is_signed_by_the_key_for_one_scope_and_the_endpoint() {
        let key = ServiceAccountKey::parse(&key_json(KEY_A)).unwrap();
        assert_eq!(key.token_uri.as_deref(), Some(GOOGLE_TOKEN_URL));
        let jwt = key
            .assertion(CHAT_SCOPE, GOOGLE_TOKEN_URL, 1_800_000_000)
            .unwrap();
        let jwks: serde_json::Value = serde_json::from_slice(JWKS_A).unwrap();
        let k = &jwks["keys"][0];
        let dk = jsonwebtoken::DecodingKey::from_rsa_components(
            k["n"].as_str().unwrap(),
            k["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.set_audience(&[GOOGLE_TOKEN_URL]);
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &dk, &v)
            .unwrap()
            .claims;
        assert_eq!(claims["iss"], "cowork@project.iam.gserviceaccount.com");
        assert_eq!(claims["scope"], CHAT_SCOPE);
        assert_eq!(claims["exp"].as_u64(), Some(1_800_000_000 + 3600));
    }

    #[test]
    fn keys_that_are_not_a_service_account_key_are_refused() {
        for bad in [
            "".to_string(),
            "{}".to_string(),
            "not json".to_string(),
            key_json("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            serde_json::json!({"client_email": "", "private_key": KEY_A}).to_string(),
        ] {
            assert!(ServiceAccountKey::parse(&bad).is_err(), "{bad:.40}");
        }
        let e = format!("{:?}", ServiceAccountKey::parse(&key_json(KEY_A)).unwrap());
        assert!(!e.contains("PRIVATE"), "{e}");
    }
}
