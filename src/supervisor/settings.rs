//! The owner's settings and reload: the supervisor is the one process that
//! writes `$STATE/settings/owner.toml` (for `coworkctl settings` and the admin
//! page, which holds no store), and the one that applies a configuration.
//!
//! Applying means: the new configuration replaces the running one here (log
//! level, restart policy, update settings are read from it live), and every
//! component whose sections changed is restarted in order, so it starts from
//! the new files (a component loads them itself). The sandbox under its own
//! unit is asked to stop, and systemd starts it again. Keystore settings wait
//! for the next start of coworkd (the master key is opened once). A change or
//! reload that does not validate changes nothing, and says why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Shared, lock};
use crate::config::owner::{self, KeyChange};
use crate::config::{Loaded, OwnerState};
use crate::ipc::{
    ApplyReport, Component, ComponentRequest, ComponentResponse, ComponentState, SettingChange,
    SettingProblem, SettingsResponse, SettingsView,
};

/// How long a restarted component may take to answer again before the
/// answer says so (it keeps being waited for by its own task).
const RESTART_WAIT: Duration = Duration::from_secs(60);

/// What the running configuration came from, for `settings show`.
#[derive(Debug, Clone)]
pub(super) struct Origins {
    pub origins: std::collections::BTreeMap<String, std::path::PathBuf>,
    pub owner_version: String,
    pub owner_problems: Vec<SettingProblem>,
}

impl Origins {
    pub fn of(loaded: &Loaded) -> Origins {
        Origins {
            origins: loaded.origins.clone(),
            owner_version: loaded.owner_version.clone(),
            owner_problems: match &loaded.owner {
                OwnerState::Refused(e) => owner::problems(e),
                _ => Vec::new(),
            },
        }
    }
}

/// The running configuration, value by value, with where each came from.
pub(super) fn view(shared: &Shared) -> SettingsView {
    let config = shared.config();
    let origins = lock(&shared.origins).clone();
    SettingsView {
        values: owner::values(&config, &origins.origins),
        owner_file: shared.paths.owner_settings().display().to_string(),
        owner_version: origins.owner_version,
        owner_problems: origins.owner_problems,
    }
}

/// `coworkctl reload`, SIGHUP: read the files again and apply them. Problems
/// keep the running configuration.
pub(super) async fn reload(shared: &Arc<Shared>, actor: &str) -> Result<ApplyReport, String> {
    let _one_at_a_time = shared.applying.lock().await;
    let config_path = shared.paths.config.display().to_string();
    match shared.paths.load_config() {
        Ok(loaded) => {
            if let OwnerState::Refused(e) = &loaded.owner {
                // Reloading must not quietly drop what the owner set: keep
                // what runs, and say why.
                let problems: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
                refused(shared, actor, &problems).await;
                return Err(format!(
                    "the owner's settings do not validate; the running configuration stays:\n{e}"
                ));
            }
            let (report, _) = apply(shared, loaded, actor).await;
            shared
                .audit
                .record(
                    "config.reloaded",
                    actor,
                    &config_path,
                    json!({"changed": report.changed, "restarted": report.restarted, "notes": report.notes}),
                )
                .await;
            Ok(report)
        }
        Err(e) => {
            let problems: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
            refused(shared, actor, &problems).await;
            Err(e.to_string())
        }
    }
}

async fn refused(shared: &Shared, actor: &str, problems: &[String]) {
    for p in problems {
        tracing::error!(problem = %p, "configuration reload refused; the running configuration stays");
    }
    shared
        .audit
        .record(
            "config.reload_refused",
            actor,
            &shared.paths.config.display().to_string(),
            json!({"problems": problems}),
        )
        .await;
}

/// `coworkctl settings set/unset`, a settings form: edit the owner's file,
/// validate everything with it, write it, apply it.
pub(super) async fn change(
    shared: &Arc<Shared>,
    actor: &str,
    changes: Vec<SettingChange>,
    expected_version: Option<String>,
) -> SettingsResponse {
    let _one_at_a_time = shared.applying.lock().await;
    let path = shared.paths.owner_settings();
    let refuse =
        |problems: Vec<SettingProblem>, current_version: String| SettingsResponse::Refused {
            problems,
            current_version,
        };
    let one = |key: Option<String>, message: String| vec![SettingProblem { key, message }];
    let owner::Plan {
        text,
        loaded,
        version,
    } = match owner::plan(&shared.paths.config, &path, &changes, expected_version) {
        Ok(p) => p,
        Err(r) => return refuse(r.problems, r.current_version),
    };
    if let Err(e) = owner::write(&path, &text) {
        return refuse(
            one(None, format!("cannot write {}: {e}", path.display())),
            version,
        );
    }
    let (report, changed_keys) = apply(shared, loaded, actor).await;
    shared
        .audit
        .record(
            "settings.changed",
            actor,
            &path.display().to_string(),
            json!({
                "sections": sections(&changed_keys),
                "keys": changes.iter().map(|c| c.key.clone()).collect::<Vec<_>>(),
                "changes": changed_keys.iter().map(audit_change).collect::<Vec<_>>(),
                "restarted": report.restarted,
                "notes": report.notes,
            }),
        )
        .await;
    SettingsResponse::Applied {
        view: view(shared),
        report,
    }
}

/// A CA file for a `...ca_file` key: stored on the data partition beside the
/// owner's settings, and the key pointed at it, as one change (the file is
/// removed again if the change is refused).
pub(super) async fn store_ca(
    shared: &Arc<Shared>,
    actor: &str,
    key: String,
    pem: String,
    expected_version: Option<String>,
) -> SettingsResponse {
    let dir = match shared.paths.owner_settings().parent() {
        Some(d) => d.join("ca"),
        None => {
            return SettingsResponse::Refused {
                problems: vec![SettingProblem {
                    key: Some(key),
                    message: "the settings directory is unknown".into(),
                }],
                current_version: String::new(),
            };
        }
    };
    let path = match owner::store_ca(&dir, &key, &pem) {
        Ok(p) => p,
        Err(message) => {
            return SettingsResponse::Refused {
                problems: vec![SettingProblem {
                    key: Some(key),
                    message,
                }],
                current_version: expected_version.unwrap_or_default(),
            };
        }
    };
    let value = toml::Value::String(path.display().to_string()).to_string();
    let changes = vec![SettingChange {
        key,
        value: Some(value),
    }];
    let answer = change(shared, actor, changes, expected_version).await;
    if matches!(answer, SettingsResponse::Refused { .. }) {
        // Unless the running settings already used this very file.
        let shown = toml::Value::String(path.display().to_string()).to_string();
        let in_use = owner::values(&shared.config(), &Default::default())
            .iter()
            .any(|v| v.value == shown);
        if !in_use {
            let _ = std::fs::remove_file(&path);
        }
    }
    answer
}

/// The configuration holds no secret values (those are in the vault): old
/// and new values are recorded as they are.
fn audit_change(c: &KeyChange) -> serde_json::Value {
    let shown = |v: &Option<toml::Value>| v.as_ref().map(|v| v.to_string());
    json!({"key": c.key, "old": shown(&c.old), "new": shown(&c.new)})
}

fn sections(changes: &[KeyChange]) -> Vec<String> {
    let mut out: Vec<String> = changes
        .iter()
        .map(|c| c.key.split('.').next().unwrap_or_default().to_string())
        .collect();
    out.dedup();
    out
}

/// Which components start from configuration sections: a change to one of
/// them restarts it.
fn affected(changes: &[KeyChange]) -> Vec<Component> {
    let mut out = Vec::new();
    for c in Component::START_ORDER {
        let uses = |section: &str| -> bool {
            match section {
                "profile" => true,
                "audit" => c == Component::Audit,
                "admin" => c == Component::Admin,
                "sandbox" | "limits" | "guard" => {
                    matches!(c, Component::Sandbox | Component::Gateway)
                }
                "channels" | "webhook" | "agent" => c == Component::Gateway,
                // log: live everywhere; supervisor, update: read live here;
                // keystore: at the next start of coworkd.
                _ => false,
            }
        };
        if changes
            .iter()
            .any(|k| uses(k.key.split('.').next().unwrap_or_default()))
        {
            out.push(c);
        }
    }
    out
}

/// Makes `loaded` the running configuration and restarts what must restart;
/// returns what it did and the keys that changed (old and new values).
async fn apply(shared: &Arc<Shared>, loaded: Loaded, actor: &str) -> (ApplyReport, Vec<KeyChange>) {
    let old = shared.config();
    let changes = owner::diff(&old, &loaded.config);
    shared.log.set_level(loaded.config.log.level);
    *lock(&shared.config) = loaded.config.clone();
    *lock(&shared.origins) = Origins::of(&loaded);
    let mut report = ApplyReport {
        changed: changes.iter().map(|c| c.key.clone()).collect(),
        ..ApplyReport::default()
    };
    if changes.iter().any(|c| c.key.starts_with("keystore.")) {
        report
            .notes
            .push("keystore settings take effect when coworkd restarts".into());
    }
    let restart = affected(&changes);
    tracing::info!(changed = changes.len(), restart = ?restart, actor, "applying the configuration");
    // The log level of those not restarted changes live.
    for (c, client) in &shared.clients {
        if restart.contains(c) {
            continue;
        }
        match client.call(ComponentRequest::Reload).await {
            Ok(ComponentResponse::Done) => {}
            Ok(other) => {
                tracing::warn!(child = c.name(), answer = ?other, "{c}: component did not take the reload")
            }
            Err(e) => {
                tracing::warn!(child = c.name(), error = %e, "{c}: component unreachable for reload")
            }
        }
    }
    for c in restart {
        let before = lock(&shared.slots).get(&c).and_then(|s| s.pid);
        if shared.is_external(c) {
            // Its unit restarts it (Restart=always) with the new files.
            if let Err(e) = shared.clients[&c].call(ComponentRequest::Shutdown).await {
                report
                    .notes
                    .push(format!("the {c} could not be asked to restart: {e}"));
                continue;
            }
        } else if let Some(tx) = shared.restarts.get(&c) {
            tx.send_modify(|n| *n += 1);
        }
        if wait_restarted(shared, c, before).await {
            report.restarted.push(c.name().to_string());
        } else {
            report.notes.push(format!(
                "the {c} did not answer within {} s of its restart (coworkctl status shows it)",
                RESTART_WAIT.as_secs()
            ));
        }
    }
    (report, changes)
}

/// Waits until `c` is up as a process other than `before`.
async fn wait_restarted(shared: &Shared, c: Component, before: Option<u32>) -> bool {
    let deadline = Instant::now() + RESTART_WAIT;
    while Instant::now() < deadline {
        let up = lock(&shared.slots)
            .get(&c)
            .is_some_and(|s| s.state == ComponentState::Up && s.pid.is_some() && s.pid != before);
        if up {
            return true;
        }
        // The component tasks report through `changed` to the main loop; a
        // short poll here keeps this out of its way.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str) -> KeyChange {
        KeyChange {
            key: key.into(),
            old: None,
            new: None,
        }
    }

    #[test]
    fn each_section_restarts_what_starts_from_it() {
        use Component::*;
        assert_eq!(affected(&[change("log.level")]), Vec::<Component>::new());
        assert_eq!(affected(&[change("supervisor.restart_burst")]), vec![]);
        assert_eq!(affected(&[change("channels.telegram.dm")]), vec![Gateway]);
        assert_eq!(affected(&[change("agent.model")]), vec![Gateway]);
        assert_eq!(affected(&[change("admin.port")]), vec![Admin]);
        assert_eq!(affected(&[change("audit.max_bytes")]), vec![Audit]);
        let mut both = affected(&[change("limits.max_cost_usd")]);
        both.sort();
        let mut want = vec![Sandbox, Gateway];
        want.sort();
        assert_eq!(both, want);
        assert_eq!(
            affected(&[change("profile")]).len(),
            Component::START_ORDER.len()
        );
    }
}
