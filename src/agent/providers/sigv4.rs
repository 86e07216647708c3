//! AWS SigV4 request signing through the maintained `aws-sigv4` crate (no
//! hand-written crypto). Only the signer's output headers are produced here.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::agent::error::ProviderError;
use crate::agent::secret::SecretString;

/// AWS access credentials. The secret parts never print.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where and when a signature applies: region, service name, signing time.
#[derive(Debug, Clone, Copy)]
pub struct SigningScope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

/// Sign a request with SigV4 (headers form). `url` is the full, already
/// percent-encoded URL; `headers` must include `host` and every other header
/// to sign. Returns the headers to add (`x-amz-date`, `authorization`, and
/// `x-amz-security-token` with a session token).
pub fn sign_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &AwsCredentials,
    scope: &SigningScope<'_>,
) -> Result<Vec<(String, String)>, ProviderError> {
    let provider = "bedrock";
    let creds = Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_string(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "cowork-vault",
    );
    let identity: Identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| ProviderError::Sign { provider })?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| ProviderError::Sign { provider })?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|_| ProviderError::Sign { provider })?
        .into_parts();
    let (out, _params) = instructions.into_parts();
    Ok(out
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
}
