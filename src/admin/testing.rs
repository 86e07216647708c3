//! An in-memory [`AdminBackend`] for tests, behaving like the gateway and
//! audit components at the interface: one active pairing code per channel
//! (issuing revokes the previous one), TTL `60..=3600` s against an injected
//! clock, single-use redemption, users, tasks, approvals and an audit list.

use std::sync::{Arc, Mutex, MutexGuard};

use super::backend::*;
use super::clock::Clock;
use crate::ipc::{ApprovalListing, ApprovalStatus, TaskListing, TaskState, UserListing, UserState};

/// The fake appliance's configuration file: the development profile, two
/// channels, no agent.
const FAKE_CONFIG: &str = "profile = \"development\"\n[channels.local]\n[channels.telegram]\n\
                           [channels.telegram.transport]\nkind = \"telegram-polling\"\n";

const TTL_MIN: u64 = 60;
const TTL_MAX: u64 = 3600;
const TTL_DEFAULT: u64 = 300;

#[derive(Debug, Clone)]
struct Code {
    id: u64,
    channel: String,
    code: String,
    issued_at: u64,
    expires_at: u64,
    used: bool,
    cancelled: bool,
}

/// Everything the fake holds; tests read it through [`FakeBackend::state`].
#[derive(Debug, Clone, Default)]
pub struct FakeState {
    pub channels: Vec<ChannelMode>,
    codes: Vec<Code>,
    pub users: Vec<UserListing>,
    pub tasks: Vec<TaskListing>,
    pub approvals: Vec<ApprovalListing>,
    /// Decided approvals: (id, approved, by).
    pub decisions: Vec<(u64, bool, String)>,
    pub audit: Vec<AuditEntry>,
    pub secrets: Vec<String>,
    /// What the credentials form stored (tests check the value arrived intact).
    pub secret_values: std::collections::BTreeMap<String, (u32, Vec<u8>)>,
    pub audit_tampered_at: Option<u64>,
    /// Bundles applied through the upload (their bytes, read at apply time).
    pub applied_updates: Vec<Vec<u8>>,
    next_id: u64,
    /// Every state-changing call, for "nothing changed" assertions.
    pub mutations: u64,
    /// Senders whose pairing is paused: (channel, sender, until).
    pub lockouts: Vec<(String, String, i64)>,
    /// The last `update_check` answer (shown by `update_status`).
    pub last_check: Option<serde_json::Value>,
}

/// Where the fake's feed says its newest bundle is.
pub const FAKE_BUNDLE_URL: &str = "https://updates.example.com/cowork-2.cwu";

/// The fake backend; clones share state.
#[derive(Debug, Clone)]
pub struct FakeBackend {
    state: Arc<Mutex<FakeState>>,
    clock: Arc<dyn Clock>,
    /// A real configuration file and owner's settings file, validated and
    /// edited with the supervisor's own code (`config::owner::plan`).
    settings: Arc<tempfile::TempDir>,
    /// Where uploads go (a directory the test owns), and the cap.
    pub upload: UploadTarget,
}

impl FakeBackend {
    /// Channels `local` and `telegram`, one paired and one allowlisted user,
    /// a running task with a pending approval, two vault secrets.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let at = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX);
        let channel = |name: &str, dm: &str| ChannelMode {
            name: name.into(),
            enabled: true,
            dm_mode: dm.into(),
            group_mode: "allowlist".into(),
        };
        let state = FakeState {
            channels: vec![channel("local", "pairing"), channel("telegram", "pairing")],
            users: vec![
                UserListing {
                    channel: "telegram".into(),
                    sender: "alice".into(),
                    state: UserState::Paired,
                    since: at(now.saturating_sub(86_400)),
                    last_seen: Some(at(now.saturating_sub(60))),
                    display_name: None,
                },
                UserListing {
                    channel: "telegram".into(),
                    sender: "bob".into(),
                    state: UserState::Allowlisted,
                    since: at(now.saturating_sub(3_600)),
                    last_seen: None,
                    display_name: None,
                },
            ],
            tasks: vec![TaskListing {
                id: gateway_id('t', 7),
                user: "telegram:alice".into(),
                state: TaskState::AwaitingApproval,
                prompt: "clean the build directory".into(),
                detail: None,
                created_at: at(now.saturating_sub(120)),
                updated_at: at(now.saturating_sub(30)),
            }],
            approvals: vec![ApprovalListing {
                id: gateway_id('a', 3),
                task_id: gateway_id('t', 7),
                command: "rm -rf ./target/<debug> && echo \"done\"".into(),
                cwd: "/var/lib/cowork/workspace".into(),
                requester: "telegram:alice".into(),
                status: ApprovalStatus::Pending,
                approver: None,
                created_at: at(now.saturating_sub(30)),
                expires_at: at(now + 600),
            }],
            secrets: vec!["anthropic_api_key".into(), "telegram_bot_token".into()],
            next_id: 100,
            lockouts: vec![(
                "telegram".into(),
                "mallory".into(),
                i64::try_from(now).unwrap_or(i64::MAX) + 900,
            )],
            ..FakeState::default()
        };
        let settings = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("the fake backend's settings directory: {e}"),
        };
        if let Err(e) = std::fs::write(settings.path().join("coworkd.toml"), FAKE_CONFIG) {
            panic!("the fake backend's configuration: {e}");
        }
        FakeBackend {
            state: Arc::new(Mutex::new(state)),
            clock,
            settings: Arc::new(settings),
            upload: UploadTarget {
                dir: std::env::temp_dir()
                    .join(format!("cowork-fake-upload-{}", std::process::id())),
                max_bytes: 1024 * 1024,
            },
        }
    }

    /// The fake's configuration file and owner's settings file.
    pub fn settings_files(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = self.settings.path();
        (
            dir.join("coworkd.toml"),
            dir.join("settings").join("owner.toml"),
        )
    }

    fn settings_view(&self) -> Result<crate::ipc::SettingsView, BackendError> {
        let (config, owner) = self.settings_files();
        let loaded = crate::config::load_layers(&config, &owner)
            .map_err(|e| BackendError::new(BackendErrorKind::Internal, e.to_string()))?;
        Ok(crate::ipc::SettingsView {
            values: crate::config::owner::values(&loaded.config, &loaded.origins),
            owner_file: owner.display().to_string(),
            owner_version: loaded.owner_version.clone(),
            owner_problems: match &loaded.owner {
                crate::config::OwnerState::Refused(e) => crate::config::owner::problems(e),
                _ => Vec::new(),
            },
        })
    }

    /// Lock and read/modify the fake state (tests).
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Redeem a code as the gateway would on a DM: single use, unexpired, the
    /// channel's current code only. On success the sender becomes paired.
    pub fn redeem(&self, channel: &str, code: &str, sender: &str) -> bool {
        let now = self.clock.now();
        let mut st = self.state();
        let Some(c) = st.codes.iter_mut().find(|c| {
            c.channel == channel && c.code == code && !c.used && !c.cancelled && now < c.expires_at
        }) else {
            return false;
        };
        c.used = true;
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        st.users.push(UserListing {
            channel: channel.into(),
            sender: sender.into(),
            state: UserState::Paired,
            since: now,
            last_seen: Some(now),
            display_name: None,
        });
        st.mutations += 1;
        true
    }

    /// Audit entries of one kind.
    pub fn audit_of_kind(&self, kind: &str) -> Vec<AuditEntry> {
        self.state()
            .audit
            .iter()
            .filter(|e| e.kind == kind)
            .cloned()
            .collect()
    }

    fn active(&self, st: &FakeState) -> Vec<PairingListing> {
        let now = self.clock.now();
        st.codes
            .iter()
            .filter(|c| !c.used && !c.cancelled && now < c.expires_at)
            .map(|c| PairingListing {
                id: c.id,
                channel: c.channel.clone(),
                issued_at: c.issued_at,
                expires_at: c.expires_at,
            })
            .collect()
    }
}

fn ready<'a, T: Send + 'a>(r: Result<T, BackendError>) -> BackendFuture<'a, T> {
    Box::pin(std::future::ready(r))
}

fn not_found(what: &str) -> BackendError {
    BackendError::new(BackendErrorKind::NotFound, format!("{what} not found"))
}

impl AdminBackend for FakeBackend {
    fn status(&self) -> BackendFuture<'_, Dashboard> {
        let st = self.state();
        let mut warnings =
            vec!["keystore is on the file tier (no TPM or keychain found)".to_string()];
        for c in &st.channels {
            if c.dm_mode == "open" || c.group_mode == "open" {
                warnings.push(format!("channel {} is in open mode", c.name));
            }
        }
        ready(Ok(Dashboard {
            components: ["supervisor", "audit", "gateway", "sandbox", "admin"]
                .iter()
                .map(|n| ComponentHealth {
                    name: (*n).into(),
                    up: true,
                    detail: "running".into(),
                })
                .collect(),
            keystore_tier: "file".into(),
            version: "0.1.0-test".into(),
            channels: st.channels.clone(),
            warnings,
            stores: vec![crate::ipc::StoreStatus {
                name: "state.db".into(),
                file: "/var/lib/cowork/gateway/state.db".into(),
                schema: 1,
            }],
        }))
    }

    fn pairing_issue(
        &self,
        channel: String,
        ttl_secs: Option<u64>,
        _issuer: String,
    ) -> BackendFuture<'_, IssuedCode> {
        let ttl = ttl_secs.unwrap_or(TTL_DEFAULT);
        if !(TTL_MIN..=TTL_MAX).contains(&ttl) {
            return ready(Err(BackendError::new(
                BackendErrorKind::BadRequest,
                "TTL must be between 60 and 3600 seconds",
            )));
        }
        let now = self.clock.now();
        let mut st = self.state();
        if !st.channels.iter().any(|c| c.name == channel) {
            return ready(Err(not_found("channel")));
        }
        for c in st.codes.iter_mut().filter(|c| c.channel == channel) {
            c.cancelled = true;
        }
        st.next_id += 1;
        let id = st.next_id;
        let code: String = {
            use rand::Rng;
            let alphabet = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
            let mut rng = rand::thread_rng();
            (0..8)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                .collect()
        };
        st.codes.push(Code {
            id,
            channel: channel.clone(),
            code: code.clone(),
            issued_at: now,
            expires_at: now + ttl,
            used: false,
            cancelled: false,
        });
        st.mutations += 1;
        ready(Ok(IssuedCode {
            id,
            channel,
            code,
            expires_at: now + ttl,
        }))
    }

    fn pairing_list(&self) -> BackendFuture<'_, Vec<PairingListing>> {
        let st = self.state();
        ready(Ok(self.active(&st)))
    }

    fn pairing_cancel(&self, id: u64) -> BackendFuture<'_, bool> {
        let now = self.clock.now();
        let mut st = self.state();
        let mut hit = false;
        for c in st
            .codes
            .iter_mut()
            .filter(|c| c.id == id && !c.used && !c.cancelled && now < c.expires_at)
        {
            c.cancelled = true;
            hit = true;
        }
        if hit {
            st.mutations += 1;
        }
        ready(Ok(hit))
    }

    fn pairing_cancel_all(&self) -> BackendFuture<'_, usize> {
        let mut st = self.state();
        let n = self.active(&st).len();
        for c in st.codes.iter_mut() {
            c.cancelled = true;
        }
        st.mutations += 1;
        ready(Ok(n))
    }

    fn lockouts(&self) -> BackendFuture<'_, Vec<crate::ipc::LockoutListing>> {
        let st = self.state();
        ready(Ok(st
            .lockouts
            .iter()
            .map(|(channel, sender, until)| crate::ipc::LockoutListing {
                channel: channel.clone(),
                sender: sender.clone(),
                until: *until,
            })
            .collect()))
    }

    fn lockout_clear(
        &self,
        channel: String,
        sender: String,
        _by: String,
    ) -> BackendFuture<'_, u64> {
        let mut st = self.state();
        let before = st.lockouts.len();
        st.lockouts
            .retain(|(c, s, _)| !(*c == channel && *s == sender));
        st.mutations += 1;
        ready(Ok((before - st.lockouts.len()) as u64))
    }

    fn users_list(&self, channel: Option<String>) -> BackendFuture<'_, Vec<UserListing>> {
        let st = self.state();
        ready(Ok(st
            .users
            .iter()
            .filter(|u| channel.as_ref().is_none_or(|c| &u.channel == c))
            .cloned()
            .collect()))
    }

    fn user_revoke(&self, channel: String, sender: String) -> BackendFuture<'_, Revocation> {
        let mut st = self.state();
        let mut hit = false;
        for u in st
            .users
            .iter_mut()
            .filter(|u| u.channel == channel && u.sender == sender && u.state != UserState::Revoked)
        {
            u.state = UserState::Revoked;
            hit = true;
        }
        if hit {
            st.mutations += 1;
        }
        ready(Ok(Revocation {
            users: usize::from(hit),
            ..Revocation::default()
        }))
    }

    fn users_revoke_all(&self, channel: Option<String>) -> BackendFuture<'_, Revocation> {
        let mut st = self.state();
        let mut n = 0;
        for u in st.users.iter_mut() {
            if u.state != UserState::Revoked && channel.as_ref().is_none_or(|c| &u.channel == c) {
                u.state = UserState::Revoked;
                n += 1;
            }
        }
        st.mutations += 1;
        ready(Ok(Revocation {
            users: n,
            ..Revocation::default()
        }))
    }

    fn tasks_list(&self) -> BackendFuture<'_, Vec<TaskListing>> {
        ready(Ok(self.state().tasks.clone()))
    }

    fn task_cancel(&self, id: u64, force: bool) -> BackendFuture<'_, bool> {
        let now = i64::try_from(self.clock.now()).unwrap_or(i64::MAX);
        let mut st = self.state();
        let Some(t) = st.tasks.iter_mut().find(|t| page_id(&t.id) == id) else {
            return ready(Err(not_found("task")));
        };
        // As the gateway: a live task is cancelled (a forced one too: its
        // command is stopped at once); an ended one is left as it is.
        match t.state {
            TaskState::Queued
            | TaskState::Running
            | TaskState::AwaitingApproval
            | TaskState::Interrupted => {}
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled => {
                return ready(Ok(false));
            }
        }
        t.state = TaskState::Cancelled;
        t.detail = Some(if force { "force-stopped" } else { "cancelled" }.into());
        t.updated_at = now;
        st.mutations += 1;
        ready(Ok(true))
    }

    fn approvals_list(&self) -> BackendFuture<'_, Vec<ApprovalListing>> {
        ready(Ok(self.state().approvals.clone()))
    }

    fn approval_decide(&self, id: u64, approve: bool, by: String) -> BackendFuture<'_, ()> {
        let mut st = self.state();
        let Some(pos) = st.approvals.iter().position(|a| page_id(&a.id) == id) else {
            return ready(Err(not_found("approval")));
        };
        st.approvals.remove(pos);
        st.decisions.push((id, approve, by));
        st.mutations += 1;
        ready(Ok(()))
    }

    fn audit_tail(
        &self,
        kind: Option<String>,
        since: Option<u64>,
        limit: u32,
    ) -> BackendFuture<'_, Vec<AuditEntry>> {
        let st = self.state();
        let mut v: Vec<AuditEntry> = st
            .audit
            .iter()
            .filter(|e| {
                kind.as_ref().is_none_or(|k| &e.kind == k) && since.is_none_or(|s| e.time >= s)
            })
            .cloned()
            .collect();
        let skip = v.len().saturating_sub(limit as usize);
        v.drain(..skip);
        ready(Ok(v))
    }

    fn audit_verify(&self) -> BackendFuture<'_, AuditVerdict> {
        let st = self.state();
        let entries = st.audit.len() as u64;
        ready(Ok(match st.audit_tampered_at {
            None => AuditVerdict {
                intact: true,
                entries,
                first_bad_seq: None,
                detail: "chain intact".into(),
            },
            Some(seq) => AuditVerdict {
                intact: false,
                entries,
                first_bad_seq: Some(seq),
                detail: format!("hash mismatch at entry {seq}"),
            },
        }))
    }

    fn audit_record(
        &self,
        kind: String,
        actor: String,
        subject: String,
        payload: serde_json::Value,
    ) -> BackendFuture<'_, ()> {
        let time = self.clock.now();
        let mut st = self.state();
        let seq = st.audit.len() as u64 + 1;
        st.audit.push(AuditEntry {
            seq,
            time,
            component: "admin".into(),
            kind,
            actor,
            subject,
            payload,
        });
        ready(Ok(()))
    }

    fn secret_names(&self) -> BackendFuture<'_, Vec<String>> {
        ready(Ok(self.state().secrets.clone()))
    }

    fn secrets(&self) -> BackendFuture<'_, Vec<crate::ipc::SecretListing>> {
        let st = self.state();
        let list = st
            .secrets
            .iter()
            .map(|name| crate::ipc::SecretListing {
                name: name.clone(),
                version: st.secret_values.get(name).map_or(1, |(v, _)| *v),
                updated_at: "2026-01-01T00:00:00Z".into(),
                bytes: st.secret_values.get(name).map(|(_, b)| b.len() as u32),
            })
            .collect();
        ready(Ok(list))
    }

    fn secret_set(&self, name: String, value: crate::ipc::SecretBytes) -> BackendFuture<'_, u32> {
        let mut st = self.state();
        let version = st.secret_values.get(&name).map_or(1, |(v, _)| v + 1);
        if !st.secrets.contains(&name) {
            st.secrets.push(name.clone());
        }
        st.secret_values.insert(name, (version, value.0.clone()));
        st.mutations += 1;
        ready(Ok(version))
    }

    fn secret_delete(&self, name: String) -> BackendFuture<'_, ()> {
        let mut st = self.state();
        let before = st.secrets.len();
        st.secrets.retain(|n| *n != name);
        st.secret_values.remove(&name);
        if st.secrets.len() == before {
            return ready(Err(not_found("secret")));
        }
        st.mutations += 1;
        ready(Ok(()))
    }

    /// Channels of the fake's configuration: running, or waiting when their
    /// transport names a secret the fake does not hold.
    fn channel_states(&self) -> BackendFuture<'_, Vec<crate::ipc::ChannelState>> {
        let (config, owner) = self.settings_files();
        let secrets = self.state().secrets.clone();
        let result = crate::config::load_layers(&config, &owner)
            .map(|l| {
                l.config
                    .channels
                    .iter()
                    .map(|(name, c)| {
                        let missing = c
                            .transport
                            .token_secret
                            .as_ref()
                            .filter(|s| !secrets.contains(s))
                            .map(|s| format!("the vault has no secret {s:?}"));
                        crate::ipc::ChannelState {
                            name: name.clone(),
                            enabled: c.enabled,
                            state: match (c.enabled, &missing) {
                                (false, _) => "disabled",
                                (true, Some(_)) => "waiting",
                                (true, None) => "running",
                            }
                            .into(),
                            error: missing,
                            last_message_at: None,
                        }
                    })
                    .collect()
            })
            .map_err(|e| BackendError::new(BackendErrorKind::Internal, e.to_string()));
        ready(result)
    }

    fn settings_show(&self) -> BackendFuture<'_, crate::ipc::SettingsView> {
        ready(self.settings_view())
    }

    fn settings_change(
        &self,
        changes: Vec<crate::ipc::SettingChange>,
        expected_version: Option<String>,
    ) -> BackendFuture<'_, crate::ipc::SettingsResponse> {
        use crate::config::owner;
        use crate::ipc::{ApplyReport, SettingsResponse};
        let (config, owner_file) = self.settings_files();
        let before = crate::config::load_layers(&config, &owner_file).map(|l| l.config);
        let plan = match owner::plan(&config, &owner_file, &changes, expected_version) {
            Ok(p) => p,
            Err(r) => {
                return ready(Ok(SettingsResponse::Refused {
                    problems: r.problems,
                    current_version: r.current_version,
                }));
            }
        };
        if let Err(e) = owner::write(&owner_file, &plan.text) {
            return ready(Err(BackendError::new(
                BackendErrorKind::Internal,
                format!("cannot write {}: {e}", owner_file.display()),
            )));
        }
        self.state().mutations += 1;
        let changed = match before {
            Ok(old) => owner::diff(&old, &plan.loaded.config)
                .into_iter()
                .map(|c| c.key)
                .collect(),
            Err(_) => Vec::new(),
        };
        let report = ApplyReport {
            changed,
            restarted: Vec::new(),
            notes: Vec::new(),
        };
        ready(
            self.settings_view()
                .map(|view| SettingsResponse::Applied { view, report }),
        )
    }

    fn settings_store_ca(
        &self,
        key: String,
        pem: String,
        expected_version: Option<String>,
    ) -> BackendFuture<'_, crate::ipc::SettingsResponse> {
        use crate::ipc::{SettingChange, SettingProblem, SettingsResponse};
        let dir = self.settings.path().join("settings").join("ca");
        match crate::config::owner::store_ca(&dir, &key, &pem) {
            Ok(path) => {
                let value = toml::Value::String(path.display().to_string()).to_string();
                self.settings_change(
                    vec![SettingChange {
                        key,
                        value: Some(value),
                    }],
                    expected_version,
                )
            }
            Err(message) => ready(Ok(SettingsResponse::Refused {
                problems: vec![SettingProblem {
                    key: Some(key),
                    message,
                }],
                current_version: expected_version.unwrap_or_default(),
            })),
        }
    }

    fn guard_check(&self, command: String) -> BackendFuture<'_, String> {
        let (config, owner) = self.settings_files();
        let result = crate::config::load_layers(&config, &owner)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                crate::guard::Guard::from_settings(&l.config.guard).map_err(|e| e.to_string())
            })
            .map(|g| crate::guard::render_text(&g.check(&command)))
            .map_err(|e| BackendError::new(BackendErrorKind::BadRequest, e));
        ready(result)
    }

    fn provider_test(&self, _by: String) -> BackendFuture<'_, Result<String, String>> {
        // As the gateway answers: the model's words under the settings in the
        // files, or why there is none.
        let (config, owner) = self.settings_files();
        let agent = crate::config::load_layers(&config, &owner)
            .ok()
            .and_then(|l| l.config.agent_settings());
        ready(Ok(match agent {
            Some(a) => Ok(format!(
                "fake answered with model {}: \"OK\" (9 tokens in, 1 out)",
                a.model
            )),
            None => Err(
                "no LLM provider is configured on this appliance ([agent] in the configuration)"
                    .to_string(),
            ),
        }))
    }

    fn update_status(&self) -> BackendFuture<'_, serde_json::Value> {
        let applied = self.state().applied_updates.len();
        ready(Ok(serde_json::json!({
            "running": "a",
            "running_version": 1,
            "other": "b",
            "other_version": if applied > 0 { Some("2") } else { None },
            "floor": 1 + applied as u64,
            "fallback": null,
            "feed_url": "https://updates.example.com/feed.json",
            "last_check": self.state().last_check.clone(),
        })))
    }

    /// The real checks on the fake's configuration files and its users,
    /// codes and secrets.
    fn doctor(&self) -> BackendFuture<'_, crate::doctor::Report> {
        let (config, owner) = self.settings_files();
        let config = match crate::config::load_layers(&config, &owner) {
            Ok(l) => l.config,
            Err(e) => {
                return ready(Err(BackendError::new(
                    BackendErrorKind::Internal,
                    e.to_string(),
                )));
            }
        };
        let now = i64::try_from(self.clock.now()).unwrap_or(i64::MAX);
        let st = self.state();
        let audit = crate::ipc::AuditVerdict {
            intact: st.audit_tampered_at.is_none(),
            entries: st.audit.len() as u64,
            last_seq: st.audit.len() as u64,
            first_bad_seq: st.audit_tampered_at,
            detail: String::new(),
            newest_checkpoint: Some((st.audit.len() as u64, "2026-01-01T00:00:00Z".into())),
        };
        let snapshot = crate::doctor::Snapshot {
            now,
            config,
            keystore: "file (software-bound)".into(),
            update: Err("no update slots (fake)".into()),
            audit: Ok(audit),
            users: Ok(st.users.clone()),
            pairing: Ok(Vec::new()),
            secrets: Ok(st
                .secrets
                .iter()
                .map(|name| crate::ipc::SecretListing {
                    name: name.clone(),
                    version: 1,
                    updated_at: "2026-01-01T00:00:00Z".into(),
                    bytes: Some(32),
                })
                .collect()),
            channels: Ok(Vec::new()),
            files: vec![crate::doctor::FileMode::of(self.settings.path(), true)],
            feed: Ok(crate::update::feed::FeedState::default()),
        };
        ready(Ok(crate::doctor::run(&snapshot)))
    }

    /// A feed offering version 2 (until it is applied).
    fn update_check(&self) -> BackendFuture<'_, serde_json::Value> {
        let mut st = self.state();
        let check = serde_json::json!({
            "checked_at": self.clock.now(),
            "running_version": 1,
            "newest_version": 2,
            "newest_label": "2026.12.2",
            "installable": st.applied_updates.is_empty(),
            "bundle_url": FAKE_BUNDLE_URL,
            "error": null,
        });
        st.last_check = Some(check.clone());
        ready(Ok(check))
    }

    fn update_apply_url(&self, url: String) -> BackendFuture<'_, serde_json::Value> {
        if url != FAKE_BUNDLE_URL {
            return ready(Err(BackendError::new(
                BackendErrorKind::BadRequest,
                format!("fetching {url}: not the fake's bundle"),
            )));
        }
        let mut st = self.state();
        st.applied_updates.push(b"CWUPDATE from the feed".to_vec());
        st.mutations += 1;
        ready(Ok(
            serde_json::json!({"slot": "b", "version": 2, "entry": "cowork-b+3.conf"}),
        ))
    }

    fn update_upload(&self) -> UploadTarget {
        self.upload.clone()
    }

    /// Accepts a bundle that starts with "CWUPDATE" (anything else is refused
    /// as the real verifier would), keeping its bytes.
    fn update_apply(&self, bundle: std::path::PathBuf) -> BackendFuture<'_, serde_json::Value> {
        let bytes = std::fs::read(&bundle).unwrap_or_default();
        if !bytes.starts_with(b"CWUPDATE") {
            return ready(Err(BackendError::new(
                BackendErrorKind::BadRequest,
                "refused (format): not a CoWork update bundle",
            )));
        }
        let mut st = self.state();
        st.applied_updates.push(bytes);
        st.mutations += 1;
        ready(Ok(
            serde_json::json!({"slot": "b", "version": 2, "entry": "cowork-b+3.conf"}),
        ))
    }
}
