//! The gateway component.
//!
//! Role: the messaging side of the appliance — channels, access control, tasks and
//! the agent loop (growing issue by issue); today it owns the secrets vault.
//! Peers: the supervisor (lifecycle, keys, secret operations for `coworkctl`), the
//! audit component (its trail), the sandbox (commands), the admin page.
//! Privileges: runs as `cowork-gateway`, no capabilities; holds the vault key and the
//! pairing-code hashing key, never the master key.
//! Data: `$STATE/gateway/state.db` (SQLite, WAL): the `vault_secrets` table (via
//! [`crate::keystore::vault`]) and, later, users, pairing codes, policies, tasks.

mod secrets;

pub use secrets::GatewayService;
