//! Every message that crosses a socket. One enum per direction per channel.
//! Bump [`PROTOCOL_VERSION`] on every change to anything in this file.

use serde::{Deserialize, Serialize};

use super::roles::{Component, Role};

/// Checked in every [`Hello`]; a mismatch refuses the connection.
pub const PROTOCOL_VERSION: u32 = 1;

/// The first frame on every connection, from the connecting side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub role: Role,
}

/// The server's answer to [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HelloReply {
    Accepted { server: Role },
    Refused { reason: String },
}

/// Every request and response after the hello travels in a frame with an id, so
/// several requests can be in flight on one connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame<T> {
    pub id: u64,
    pub body: T,
}

/// Why a request failed, as the other side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not a well-formed message of this channel.
    Malformed,
    /// The frame exceeded the cap; the connection is closed after this answer.
    TooLarge,
    /// The peer table does not allow this sender to send this request.
    Forbidden,
    /// The request was well-formed but its content is invalid.
    BadRequest,
    /// What the request names does not exist.
    NotFound,
    /// The component that would serve this is not reachable right now.
    Unavailable,
    /// The server failed; details are in its log.
    Internal,
}

/// An error answer: a code for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// A request's name as the peer table knows it.
pub trait RequestKind {
    fn kind(&self) -> &'static str;
}

// ---------------------------------------------------------------------------
// Component channel: the supervisor (and, later, peers) -> one component.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComponentRequest {
    /// Health check; answered with [`ComponentResponse::Pong`].
    Ping,
    /// Re-read the configuration file.
    Reload,
    /// Finish in-flight work and exit.
    Shutdown,
}

impl RequestKind for ComponentRequest {
    fn kind(&self) -> &'static str {
        match self {
            ComponentRequest::Ping => "ping",
            ComponentRequest::Reload => "reload",
            ComponentRequest::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComponentResponse {
    Pong(Health),
    Done,
    Error(WireError),
}

impl From<WireError> for ComponentResponse {
    fn from(e: WireError) -> Self {
        ComponentResponse::Error(e)
    }
}

/// What a component says about itself when pinged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub component: Component,
    pub pid: u32,
    pub ready: bool,
    /// One line the component wants shown in `coworkctl status` (for the sandbox:
    /// the isolation this host can enforce).
    pub summary: Option<String>,
}

// ---------------------------------------------------------------------------
// Control channel: coworkctl -> supervisor.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlRequest {
    Status,
    /// Same as SIGHUP: reload the configuration and tell the components.
    Reload,
}

impl RequestKind for ControlRequest {
    fn kind(&self) -> &'static str {
        match self {
            ControlRequest::Status => "status",
            ControlRequest::Reload => "reload",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlResponse {
    Status(StatusReport),
    Reloaded,
    Error(WireError),
}

impl From<WireError> for ControlResponse {
    fn from(e: WireError) -> Self {
        ControlResponse::Error(e)
    }
}

/// `coworkctl status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub profile: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// Every component is up and answering.
    pub ready: bool,
    /// A component restarted too often; see its `recent_restarts`.
    pub degraded: bool,
    pub keystore: String,
    pub components: Vec<ComponentStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub component: Component,
    pub state: ComponentState,
    pub pid: Option<u32>,
    /// Restarts since the supervisor started.
    pub restarts: u32,
    /// Restarts within the last restart window.
    pub recent_restarts: u32,
    /// The delay before the next restart, should it die now.
    pub backoff_ms: u64,
    pub user: String,
    /// The component's own one-line summary from its last health answer.
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    /// Spawned, not yet answering.
    Starting,
    /// Answering health checks.
    Up,
    /// Spawned earlier and answering, but missed the last health check.
    Unresponsive,
    /// Dead, waiting out its restart backoff.
    Backoff,
    /// Stopped on purpose.
    Stopped,
}
