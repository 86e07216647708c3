//! `coworkctl doctor`: the security checklist (docs/SECURITY-PRACTICES, the
//! owner's checklist and the per-channel recommendations) as checks a machine
//! can judge. Every check is a pure function of a [`Snapshot`] the supervisor
//! gathers over IPC (the running configuration, the status, the gateway's
//! users, pairing codes and secrets, the audit trail's verdict, the update
//! slots), so each has table tests of its own and the admin page's dashboard
//! shows exactly what the command prints.

mod checks;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ipc::{AuditVerdict, ChannelState, PairingListing, SecretListing, UserListing};

/// `[doctor]`: the periods the checks hold the appliance to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DoctorSettings {
    /// A credential in the vault older than this is reported for rotation.
    pub credential_max_age_days: u32,
    /// A user not seen for this long is suggested for removal.
    pub inactive_user_days: u32,
}

impl Default for DoctorSettings {
    fn default() -> Self {
        DoctorSettings {
            credential_max_age_days: 180,
            inactive_user_days: 90,
        }
    }
}

impl DoctorSettings {
    /// The most either period may be: ten years (a larger one checks nothing).
    pub const MAX_DAYS: u32 = 3650;

    pub fn validate(&self) -> Result<(), String> {
        for (key, days) in [
            (
                "doctor.credential_max_age_days",
                self.credential_max_age_days,
            ),
            ("doctor.inactive_user_days", self.inactive_user_days),
        ] {
            if !(1..=Self::MAX_DAYS).contains(&days) {
                return Err(format!(
                    "{key} = {days}: must be 1..={} days",
                    Self::MAX_DAYS
                ));
            }
        }
        Ok(())
    }
}

/// Everything the checks look at, gathered at one moment. A part that could
/// not be read holds why (the check then says so, as a `warn`).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Unix seconds.
    pub now: i64,
    /// The running configuration (files and the owner's settings).
    pub config: Config,
    /// The keystore as `coworkctl status` shows it (`tpm2`, `file (software-bound)`).
    pub keystore: String,
    /// `coworkctl update status` as JSON.
    pub update: Result<serde_json::Value, String>,
    pub audit: Result<AuditVerdict, String>,
    pub users: Result<Vec<UserListing>, String>,
    pub pairing: Result<Vec<PairingListing>, String>,
    pub secrets: Result<Vec<SecretListing>, String>,
    /// Each channel as it runs now (the gateway's view: running, or waiting
    /// and why).
    pub channels: Result<Vec<ChannelState>, String>,
    /// The appliance's own directories and files and their permission bits.
    pub files: Vec<FileMode>,
    /// The update feed's checks (`<update state>/feed-state.json`).
    pub feed: Result<crate::update::feed::FeedState, String>,
}

/// One of the appliance's directories or files as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMode {
    pub path: String,
    /// The permission bits (`0o750`); `None` when it could not be read.
    pub mode: Option<u32>,
    /// It holds secrets (the keystore, the vault): nobody but its owner and
    /// group may even read or list it.
    pub secret: bool,
}

impl FileMode {
    /// Stats `path` (not following a last symlink).
    pub fn of(path: &std::path::Path, secret: bool) -> FileMode {
        use std::os::unix::fs::PermissionsExt;
        FileMode {
            path: path.display().to_string(),
            mode: std::fs::symlink_metadata(path)
                .ok()
                .map(|m| m.permissions().mode() & 0o7777),
            secret,
        }
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Fail,
    Warn,
    Ok,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable, dotted (`channel.telegram.access`): scripts key on it.
    pub id: String,
    pub status: CheckStatus,
    /// What was found and what to do, in a sentence or two.
    pub message: String,
    /// The setting or command that fixes it (empty when nothing is to do).
    pub fix: String,
    /// The admin page that fixes it (`/settings`, `/users`, ...).
    pub page: String,
    /// What `doctor --fix` may change for it, when the fix is safe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_fix: Option<SafeFix>,
}

/// `coworkctl doctor --json`: `{"checks": [...]}`, fails first, then warns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The command's exit status: 0 nothing wrong, 1 a warn, 2 a fail.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            CheckStatus::Fail => 2,
            CheckStatus::Warn => 1,
            CheckStatus::Ok => 0,
        }
    }

    pub fn worst(&self) -> CheckStatus {
        self.checks
            .iter()
            .map(|c| c.status)
            .min()
            .unwrap_or(CheckStatus::Ok)
    }

    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// Runs every check on `snapshot`: fails first, then warns, then the rest, each
/// group in the checklist's order.
pub fn run(snapshot: &Snapshot) -> Report {
    let mut checks = checks::all(snapshot);
    checks.sort_by_key(|c| c.status);
    Report { checks }
}

/// A safe, reversible fix `coworkctl doctor --fix` may apply: one key of the
/// owner's settings and its new value (TOML text), never a credential, a
/// listen address or anything that locks the owner out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafeFix {
    pub key: String,
    pub value: String,
}
