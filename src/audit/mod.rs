//! # audit — the tamper-evident audit trail
//!
//! **Role.** A separate process (`coworkd component audit`), the only writer of
//! `$STATE/audit/audit.db`. Peers (gateway, sandbox, admin, supervisor) send
//! `Append`/`Tail`/`Verify`/`KnownSecrets` requests over its Unix socket
//! (wired by `crate::ipc`; `coworkctl audit export` pages through `Tail`); this module is everything below that line: validation,
//! redaction, the hash chain, group commit, checkpoints, the anchor, retention,
//! queries and offline verification.
//!
//! **Privileges.** Holds the 32-byte checkpoint key (HMAC-SHA256), which no
//! other component sees; needs read/write on `$STATE/audit/` (0700) and nothing
//! else. **Data owned:** `audit.db` (+ `-wal`/`-shm`, 0600), `audit.anchor`
//! and `audit.anchor-slots` (0600, see [`anchor`]). The checkpoint key comes
//! from the keystore through the supervisor; `checkpoint.key` (0600) is only
//! for tests and tools that run the writer without one.
//! `audit.db`'s schema steps are [`store::AUDIT_DB`], run when the trail opens
//! (see `docs/update-format.md`, *Schema versions*).
//!
//! ## Entry hash (normative; an offline verifier reimplements this)
//! ```text
//! hash = SHA-256(
//!     "cowork-audit-entry-v1\0"               22 bytes, no length prefix
//!     u64_be(seq)                             8 bytes
//!     u32_be(len) || time                     RFC 3339 UTC, ms: 2025-01-31T12:34:56.789Z
//!     u32_be(len) || component                UTF-8
//!     u32_be(len) || kind                     UTF-8
//!     u32_be(len) || actor                    UTF-8, after redaction
//!     u32_be(len) || subject                  UTF-8, after redaction
//!     u32_be(len) || payload                  the stored canonical JSON bytes
//!     prev_hash                               32 bytes; all zero for seq 1
//! )
//! ```
//! Canonical JSON: UTF-8, no insignificant whitespace, object keys sorted by
//! their bytes, strings/numbers as serde_json prints them. The verifier hashes
//! the stored payload bytes as they are, so it never re-canonicalises.
//!
//! ## Checkpoints and anchor (MACs with the checkpoint key)
//! ```text
//! checkpoint_mac = HMAC-SHA256(key, "cowork-audit-checkpoint-v1\0" || db_id(16)
//!                  || u64_be(seq) || head(32) || u32_be(len)||time || u32_be(len)||reason)
//! anchor_mac     = HMAC-SHA256(key, "cowork-audit-anchor-v1\0" || db_id(16) || u64_be(seq) || head(32))
//! ```
//! `db_id` is 16 random bytes stored hex in `meta.db_id` at creation. A
//! checkpoint (seq N, head H) means "entry N had hash H". Reasons: `interval`
//! (every N entries / T seconds), `shutdown`, `commit` (on request), `prune`
//! (N = first kept seq − 1, H = prev_hash of the first kept entry, so the chain
//! stays verifiable from there).
//!
//! ## Threat model
//! * **Edits, deletions, reordering inside the db** by someone with write
//!   access to the file: caught by the chain (hash mismatch / gap / chain
//!   break / reorder). Recomputing the chain after an edit is possible without
//!   the key, but then the head no longer matches the MAC'd checkpoints and
//!   the anchor.
//! * **Cut tail** (last N rows deleted, with or without the in-db checkpoints)
//!   and **rollback** (db replaced by an older copy): the anchor outside the
//!   db records (seq, head) under a MAC after every commit and before any
//!   append of that commit is acknowledged: in `audit.anchor` (replaced by
//!   rename) and durably in a slot of `audit.anchor-slots` (written in place,
//!   one data flush). The newest of the two is compared. A db behind it is
//!   reported; a db ahead of it (a crash between commit and re-anchoring, or
//!   an older image that kept writing after a rollback) is accepted when its
//!   chain links verify from the anchor, and the writer re-anchors it on open.
//! * **Limits.** (1) An attacker who replaces BOTH the db and the anchor with
//!   older copies of themselves rolls back undetectably — no key is needed,
//!   the old MACs are genuine. Closing that needs state the attacker cannot
//!   rewind: a TPM NV monotonic counter bound into the anchor MAC, or shipping
//!   (seq, head) to a remote log / the owner's device. Not done here (note for
//!   the keystore/update work). Deleting `audit.anchor-slots` leaves
//!   `audit.anchor`, which every commit replaces too: after a power cut it
//!   may be behind by what the kernel had not yet written back, and that is
//!   what such an attacker could cut. (2) Entries after the newest witness (at
//!   most the last batch after a crash) are protected by the chain only. (3) Root
//!   on the box while the audit process runs can read the key and forge
//!   everything; the trail proves integrity against offline and non-root
//!   tampering only. (4) Verify without the key cannot tell a forged
//!   checkpoint/anchor from a real one; it says so.
//!
//! ## Redaction
//! Payload strings and keys, actor and subject pass through [`redact::Redactor`]
//! before hashing; the secret never reaches the db, the WAL, the anchor or
//! journald. See `redact.rs` for the patterns and for the vault's values,
//! which the gateway sends (`AuditRequest::KnownSecrets`) and this component
//! keeps in memory only.
//!
//! ## Journald
//! Every committed entry emits `tracing::info!(target: "cowork::audit", audit_seq,
//! audit_kind, audit_component, audit_actor, audit_subject, "<summary>")`.

pub mod anchor;
pub mod chain;
mod client;
pub mod entry;
pub mod error;
pub mod key;
pub mod query;
pub mod redact;
mod service;
pub mod store;
pub mod verify;
pub mod writer;

use serde::{Deserialize, Serialize};

pub use client::AuditLog;
pub use entry::{AppendReceipt, Component, Entry, Kind, NewEntry, StoredEntry};
pub use error::{AuditError, Result};
pub use key::CheckpointKey;
pub use query::{AuditReader, Filter};
pub use redact::Redactor;
pub use service::AuditService;
pub use store::{AuditPaths, CheckpointInfo, CheckpointReason, PruneReport};
pub use verify::{TamperReason, VerifyReport, Witness, verify, verify_live};
pub use writer::AuditWriter;

/// `[audit]` section of the appliance config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Entries older than this are pruned (daily and at start). 0 disables pruning.
    pub retention_days: u32,
    /// Bytes the entries may take (0: no bound). Checked every 500 appended
    /// entries and daily; when over, the oldest entries are pruned down to 90%
    /// of it with a MAC'd 'prune' checkpoint (as for `retention_days`), so the
    /// chain still verifies and records what was cut. Default 256 MiB.
    pub max_bytes: u64,
    /// Write an interval checkpoint after this many entries...
    pub checkpoint_every_entries: u64,
    /// ...or after this many seconds with new entries, whichever comes first.
    pub checkpoint_every_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            retention_days: 365,
            max_bytes: 256 * 1024 * 1024,
            checkpoint_every_entries: 1000,
            checkpoint_every_secs: 300,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_and_unknown_fields() {
        let s: AuditSettings = toml::from_str("").unwrap();
        assert_eq!(s, AuditSettings::default());
        let s: AuditSettings = toml::from_str("retention_days = 30").unwrap();
        assert_eq!(s.retention_days, 30);
        assert!(toml::from_str::<AuditSettings>("retention = 30").is_err());
        let s: AuditSettings = toml::from_str("max_bytes = 1048576").unwrap();
        assert_eq!(s.max_bytes, 1 << 20);
        assert_eq!(AuditSettings::default().max_bytes, 256 << 20);
    }
}
