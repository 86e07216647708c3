//! The agent runtime: LLM providers and the tool loop.
//!
//! Role: given a task's system prompt, conversation and the tools its context
//! allows, call the configured LLM provider (Anthropic Messages API, AWS
//! Bedrock Converse, or an OpenAI-compatible local server), run the tool calls
//! it asks for, and stop on a clear [`EndReason`] when a limit (iterations,
//! tokens, cost, deadline) is reached or the task is cancelled.
//!
//! Peers: runs inside the gateway process. The gateway passes in a
//! [`SecretSource`] (the vault) and the tools (shell tools go through the guard
//! and the sandbox; this module only sees the abstract [`Tool`] trait). The
//! tasks it runs are kept by the gateway's runtime ([`crate::gateway::tasks`]).
//!
//! Privileges: outbound HTTPS to the configured provider only; read/write of
//! the task workspace directory through the confined workspace tools; API keys
//! are fetched per request and zeroized after use, never logged.
//!
//! Data owned: the per-user memory notes directory.
//!
//! Not offered: a `clipboard` tool — the appliance is headless and has no
//! clipboard; no such tool exists here, so it can never be in an allowed set.

pub mod error;
pub mod providers;
pub mod run;
pub mod secret;
pub mod settings;
pub mod tools;
pub mod types;

pub use error::{ProviderError, ToolError};
pub use providers::{
    AnthropicProvider, AwsCredentials, BedrockProvider, OpenAiProvider, Provider, ProviderConfig,
    SigningScope, provider_from_settings, sign_headers,
};
pub use run::{Agent, EndReason, Limits, RunOutcome};
pub use secret::{SecretSource, SecretString, StaticSecrets};
pub use settings::{
    AgentSettings, DEFAULT_MAX_TOKENS_PER_CALL, HttpSettings, ModelPrice, ProviderKind,
};
pub use tools::{ApprovalRequest, FileWrite, Tool, ToolOutcome};
pub use types::{
    ChatRequest, ChatResponse, ContentBlock, Message, Role, StopReason, ToolDefinition, Usage,
};
