//! Errors of the gateway's access-control core. Variants are named after the
//! operation that failed and carry the channel, field or path involved.
//! Secrets (signing secrets, tokens, pairing codes) never appear in an error.

use std::path::PathBuf;

/// Why a webhook request failed its authenticity check. Carried by
/// [`GatewayError::VerifyRequest`]; each maps to HTTP 401 (or 413 for the size cap).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} given more than once")]
    DuplicateHeader(&'static str),
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    #[error("signature does not match")]
    BadSignature,
    /// A bearer JWT that does not hold (signature, issuer, audience, times,
    /// or a claim the platform binds to the request).
    #[error("bearer token: {0}")]
    BadToken(&'static str),
    /// The secret a webhook URL carries (an unsigned platform's only proof:
    /// BlueBubbles): missing, given twice or not the configured one.
    #[error("webhook URL secret {0}")]
    BadUrlSecret(&'static str),
    #[error("timestamp {timestamp} outside the {window_secs}s window around {now}")]
    StaleTimestamp {
        timestamp: i64,
        now: i64,
        window_secs: i64,
    },
    #[error("body of {len} bytes exceeds the cap of {max}")]
    BodyTooLarge { len: usize, max: usize },
}

/// Everything that can go wrong in the gateway's access-control core.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("open gateway state db {path}: {source}")]
    OpenStore {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// `state.db`'s schema: from a newer image, or a step that failed.
    #[error("opening state.db")]
    Schema(#[from] crate::schema::SchemaError),
    #[error("state db: {operation}: {source}")]
    Db {
        operation: &'static str,
        source: rusqlite::Error,
    },
    #[error("state db: {operation}: unexpected value {value:?}")]
    CorruptRow {
        operation: &'static str,
        value: String,
    },
    #[error("gateway settings: channels.{channel}.{field}: {reason}")]
    Settings {
        channel: String,
        field: &'static str,
        reason: String,
    },
    #[error("inbound message: field {field}: {reason}")]
    ValidateInbound {
        field: &'static str,
        reason: &'static str,
    },
    #[error("verify {channel} request: {reason}")]
    VerifyRequest {
        channel: &'static str,
        reason: AuthFailure,
    },
    #[error("parse {channel} payload: {reason}")]
    ParseEvent {
        channel: &'static str,
        reason: String,
    },
    #[error("{channel} interaction for application {got:?}, expected the configured one")]
    ApplicationMismatch { channel: &'static str, got: String },
    #[error("configure {channel} verifier: {reason}")]
    VerifierKey {
        channel: &'static str,
        reason: &'static str,
    },
    #[error("issue pairing code for channel {channel}: {reason}")]
    IssueCode { channel: String, reason: String },
    #[error("redeem pairing code on channel {channel}: {reason}")]
    RedeemCode {
        channel: String,
        reason: &'static str,
    },
    #[error("{channel} API {operation}: {reason}")]
    ChannelApi {
        channel: &'static str,
        operation: &'static str,
        reason: String,
    },
    #[error("build {channel} HTTP client: {reason}")]
    HttpClient {
        channel: &'static str,
        reason: String,
    },
    #[error("{sink} sink: {reason}")]
    Sink { sink: &'static str, reason: String },
    #[error("webhook listener on {addr}: {reason}")]
    Listen { addr: String, reason: String },
}

impl GatewayError {
    pub(crate) fn db(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> GatewayError {
        move |source| GatewayError::Db { operation, source }
    }

    pub(crate) fn verify(channel: &'static str, reason: AuthFailure) -> GatewayError {
        GatewayError::VerifyRequest { channel, reason }
    }

    pub(crate) fn parse(channel: &'static str, reason: impl Into<String>) -> GatewayError {
        GatewayError::ParseEvent {
            channel,
            reason: reason.into(),
        }
    }
}
