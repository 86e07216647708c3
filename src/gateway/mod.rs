//! The gateway component.
//!
//! Role: the messaging side of the appliance — channels, access control, tasks and
//! the agent loop: the secrets vault (served over IPC), the access-control core
//! below, the channel transports, and the agent runtime ([`tasks`]) that turns
//! every authorized message into a task when `[agent]` is configured.
//! Peers: the supervisor (lifecycle, keys, secret operations for `coworkctl`), the
//! audit component (its trail), the sandbox (commands), the admin page.
//! Privileges: runs as `cowork-gateway`, no capabilities; holds the vault key and the
//! pairing-code hashing key, never the master key.
//! Data: `$STATE/gateway/state.db` (SQLite, WAL): `vault_secrets` (via
//! [`crate::keystore::vault`]), the access-control tables listed below, and
//! `agent_tasks` / `agent_approvals` (via [`tasks::store`]);
//! `$STATE/gateway/memory/` (the agent's per-user notes). The file's schema
//! steps, version and the one way to open it: [`state_db`] (migrated at the
//! gateway's start; a file from an incompatible newer image is refused and
//! reported, see `docs/update-format.md`, *Schema versions*).
//!
//! ## Access control
//!
//! Role: decides, for every inbound message from a messaging channel, whether it
//! is authorized (and with which tools), is a pairing-code redemption, gets a
//! pairing prompt, or is denied / ignored — with a reason for the audit trail.
//! Checks webhook authenticity (Slack signing secret, Discord Ed25519, Telegram
//! secret token) in constant time and turns channel payloads into validated
//! [`Inbound`] messages.
//! Peers: the channel adapters (transport) call [`channels`] then
//! [`AccessControl::evaluate`]; the admin page and `coworkctl` (through IPC)
//! issue, list and cancel pairing codes and manage users; the audit component
//! records each [`Decision::audit_reason`].
//! Privileges: none beyond its data; holds the pairing-code hashing key (from the
//! keystore) and the channels' verification secrets, never the master key.
//! Data: `$STATE/gateway/state.db` tables `gateway_users`, `gateway_pairing_codes`
//! (keyed hashes only), `gateway_code_guesses` (wrong guesses per code, burned
//! codes), `gateway_redeem_limits`, `gateway_pairing_prompts`,
//! `gateway_seen_events` (replay dedupe, [`replay`]).
//!
//! ## Channels and dispatch
//!
//! Role: the network side of the channels. [`channels`] holds one folder per
//! platform (settings schema, verifier and parser, API client, inbound loop
//! or webhook route), each a [`channels::Channel`] listed in
//! [`channels::registry`]; the [`runner`] starts every configured channel
//! through it. [`transport`] holds what they share: HTTP and WebSocket
//! helpers, the reconnect pacer and the webhook listener
//! ([`transport::webhook`], default `127.0.0.1:8444`, never the admin page's
//! listener). Every inbound event is authenticated first (the platform's
//! verifier; for polling and sockets the TLS connection opened with the
//! bot/app token), deduplicated by its platform event id ([`replay`],
//! persisted), then handed to the [`Dispatcher`], which evaluates access
//! control, audits the decision ([`Trail`], before any effect), hands
//! authorized messages to the agent ([`TaskSink`]), redeems pairing codes,
//! and returns the reply. Every text to a chat, that reply and a task's later
//! ones, leaves through one path ([`outbound::Replies`]), split to the
//! platform's limit ([`chunk`]).
//! Peers: the platforms' APIs (outbound HTTPS / WSS only to configured base
//! URLs), the audit component and the agent runtime (through the two sinks).
//! Privileges: holds bot / app tokens in [`channels::Redacted`] (never logged;
//! request errors are reported without URLs, since Telegram's carry the token).

pub mod access;
pub mod channels;
pub mod chunk;
mod clock;
pub mod dispatch;
mod error;
pub mod identities;
mod inbound;
pub mod outbound;
pub mod pairing;
mod ratelimit;
pub mod replay;
pub mod runner;
mod secrets;
mod service;
mod settings;
pub mod sinks;
pub mod state_db;
pub mod store;
pub mod tasks;
pub mod transport;

pub use access::{AccessControl, AuthorizedUser, Decision, Grant, Reason, decide};
pub use clock::{Clock, SystemClock, TestClock};
pub use error::{AuthFailure, GatewayError};
pub use inbound::{
    Attachment, Context, Inbound, LOCAL_CHANNEL, MAX_ATTACHMENTS, MAX_ID_LEN, MAX_TEXT_LEN,
    RawInbound,
};
pub use pairing::{
    CodeAttempt, CodeInfo, InvalidCode, IssuedCode, Pairing, PairingCode, PairingKey,
    RedeemOutcome, parse_code_message,
};
pub use ratelimit::MessageLimiter;
pub use settings::{
    AccessMode, ChannelSettings, ChatPolicy, ContextPolicy, GatewaySettings, LockoutSettings,
    Profile, RateLimitSettings, ToolPolicy, TransportKind, TransportSettings,
};
pub use store::{RevokeScope, Store, UserRecord, UserState};

pub use dispatch::{Dispatched, Dispatcher, PAIRED_REPLY, PAIRING_FAILED_REPLY, PAIRING_PROMPT};
pub use replay::{ReplayGuard, Seen};
pub use sinks::{
    AuditEvent, BoxFuture, ChannelTaskSink, MemoryAudit, Task, TaskSink, Trail, TrailWriter,
    audit_detail,
};
pub use transport::HttpConfig;
pub use transport::webhook::{Hooks, WebhookSettings};

pub use service::{GatewayService, NO_PROVIDER_REPLY};
