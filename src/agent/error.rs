//! Errors of the agent module. Messages are plain sentences naming the provider,
//! model, tool or path involved; they never carry a secret or a response body.

/// A failed call to an LLM provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider}: the secret `{name}` holding the credentials is missing")]
    FetchSecret {
        provider: &'static str,
        name: String,
    },
    #[error("{provider}: the credentials in secret `{name}` are not in the expected form")]
    ParseCredentials {
        provider: &'static str,
        name: String,
    },
    #[error("{provider}: invalid configuration: {what}")]
    Configure {
        provider: &'static str,
        what: String,
    },
    #[error("{provider}: the server refused the credentials (HTTP {status}); not retried")]
    Authenticate { provider: &'static str, status: u16 },
    #[error("{provider}: still rate limited (HTTP 429) after {attempts} attempts")]
    RateLimited {
        provider: &'static str,
        attempts: u32,
    },
    #[error("{provider}: the server failed (HTTP {status}) after {attempts} attempts")]
    ServerFailure {
        provider: &'static str,
        status: u16,
        attempts: u32,
    },
    #[error("{provider}: the server rejected the request (HTTP {status}{detail})")]
    RejectRequest {
        provider: &'static str,
        status: u16,
        /// The provider's error type (e.g. `invalid_request_error`), never its message.
        detail: String,
    },
    #[error("{provider}: could not reach the server ({kind}) after {attempts} attempts")]
    Connect {
        provider: &'static str,
        kind: &'static str,
        attempts: u32,
    },
    #[error("{provider}: the response is malformed: {what}")]
    ParseResponse {
        provider: &'static str,
        what: String,
    },
    #[error("{provider}: the response stream was cut after data had arrived ({kind})")]
    StreamInterrupted {
        provider: &'static str,
        kind: &'static str,
    },
    #[error("{provider}: the server reported an error in the stream ({kind})")]
    StreamError {
        provider: &'static str,
        kind: String,
    },
    #[error("{provider}: signing the request failed")]
    Sign { provider: &'static str },
    #[error("{provider}: the request was cancelled")]
    Cancelled { provider: &'static str },
}

/// A failed memory operation or tool input, shown to the model as a tool error.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("the input for tool `{tool}` is invalid: {what}")]
    ParseInput { tool: String, what: String },
    #[error("the memory store failed for user `{user}`: {what}")]
    Memory { user: String, what: String },
}
