//! `coworkctl settings`: the owner's settings, the same requests and checks as
//! the admin page's settings forms.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use cowork::ipc::{
    AgentRequest, AgentResponse, Client, ControlRequest, ControlResponse, SettingChange,
    SettingsRequest, SettingsResponse, SettingsView,
};

use super::{EXIT_DEGRADED, unexpected, unreachable_daemon};

/// Applying may restart components and wait for them to answer again.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// The running configuration: every value and the file that set it.
    Show {
        /// Only keys starting with this (`channels.telegram`, `limits`).
        prefix: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Set KEY (TOML dotted path, e.g. `limits.max_cost_usd`) to VALUE (a
    /// TOML value: `5`, `true`, `["111", "222"]`, or a bare word as a string),
    /// in the owner's settings; validated, written and applied, or refused.
    /// More KEY VALUE pairs change together (all or none).
    Set {
        #[arg(required = true, num_args = 2.., allow_negative_numbers = true, value_names = ["KEY", "VALUE"])]
        pairs: Vec<String>,
        /// Refuse if the settings changed since `settings show` printed this version.
        #[arg(long)]
        if_version: Option<String>,
    },
    /// Store CA certificates (a PEM FILE) for a `...ca_file` KEY (e.g.
    /// `agent.ca_file` for a LAN model server) on the data partition and point
    /// the key at them.
    SetCa {
        key: String,
        file: std::path::PathBuf,
        #[arg(long)]
        if_version: Option<String>,
    },
    /// Remove KEY from the owner's settings (the image's value or the default
    /// applies again).
    Unset {
        key: String,
        #[arg(long)]
        if_version: Option<String>,
    },
    /// One short request to the LLM provider under the settings in force
    /// (a few tokens): prints what the model said, or why it failed (exit 1).
    TestAgent {
        #[arg(long)]
        json: bool,
    },
}

type Ctl = Client<ControlRequest, ControlResponse>;

pub async fn settings(client: &Ctl, command: SettingsCommand) -> ExitCode {
    match command {
        SettingsCommand::Show { prefix, json } => show(client, prefix.as_deref(), json).await,
        SettingsCommand::Set { pairs, if_version } => {
            if pairs.len() % 2 != 0 {
                eprintln!(
                    "coworkctl settings set: give KEY VALUE pairs (the last key has no value)"
                );
                return ExitCode::from(EXIT_DEGRADED);
            }
            let changes = pairs
                .chunks(2)
                .map(|kv| SettingChange {
                    key: kv[0].clone(),
                    value: Some(kv[1].clone()),
                })
                .collect();
            change(client, changes, if_version).await
        }
        SettingsCommand::SetCa {
            key,
            file,
            if_version,
        } => {
            let pem = match std::fs::read(&file) {
                Ok(b) if b.len() > cowork::config::owner::MAX_CA_BYTES => {
                    eprintln!("coworkctl settings set-ca: {} is too large", file.display());
                    return ExitCode::from(EXIT_DEGRADED);
                }
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => {
                    eprintln!("coworkctl settings set-ca: {}: {e}", file.display());
                    return ExitCode::from(EXIT_DEGRADED);
                }
            };
            let request = ControlRequest::Settings(SettingsRequest::StoreCa {
                key: key.clone(),
                pem,
                expected_version: if_version,
            });
            apply(client, request, vec![key]).await
        }
        SettingsCommand::Unset { key, if_version } => {
            change(client, vec![SettingChange { key, value: None }], if_version).await
        }
        SettingsCommand::TestAgent { json } => test_agent(client, json).await,
    }
}

async fn test_agent(client: &Ctl, json: bool) -> ExitCode {
    let answer = match client
        .call(ControlRequest::Agent(AgentRequest::ProviderTest))
        .await
    {
        Ok(ControlResponse::Agent(AgentResponse::Done(said))) => Ok(said),
        Ok(ControlResponse::Error(e)) => Err(e.message),
        Ok(other) => return unexpected(&other),
        Err(e) => return unreachable_daemon(&e),
    };
    if json {
        let out = match &answer {
            Ok(said) => serde_json::json!({"ok": true, "answer": said}),
            Err(why) => serde_json::json!({"ok": false, "error": why}),
        };
        println!("{out:#}");
    } else {
        match &answer {
            Ok(said) => println!("connected: {said}"),
            Err(why) => eprintln!("coworkctl settings test-agent: {why}"),
        }
    }
    if answer.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DEGRADED)
    }
}

async fn show(client: &Ctl, prefix: Option<&str>, json: bool) -> ExitCode {
    let view = match client
        .call(ControlRequest::Settings(SettingsRequest::Show))
        .await
    {
        Ok(ControlResponse::Settings(SettingsResponse::View(v))) => v,
        Ok(ControlResponse::Error(e)) => {
            eprintln!("coworkctl settings: {}", e.message);
            return ExitCode::from(EXIT_DEGRADED);
        }
        Ok(other) => return unexpected(&other),
        Err(e) => return unreachable_daemon(&e),
    };
    let wanted = |key: &str| {
        prefix.is_none_or(|p| key == p || key.starts_with(&format!("{}.", p.trim_end_matches('.'))))
    };
    if json {
        let values: Vec<_> = view
            .values
            .iter()
            .filter(|v| wanted(&v.key))
            .map(|v| serde_json::json!({"key": v.key, "value": v.value, "origin": v.origin}))
            .collect();
        let problems: Vec<_> = view
            .owner_problems
            .iter()
            .map(|p| serde_json::json!({"key": p.key, "message": p.message}))
            .collect();
        let out = serde_json::json!({
            "owner_file": view.owner_file,
            "version": view.owner_version,
            "owner_problems": problems,
            "values": values,
        });
        println!("{out:#}");
    } else {
        print_view(&view, &wanted);
    }
    ExitCode::SUCCESS
}

fn print_view(view: &SettingsView, wanted: &dyn Fn(&str) -> bool) {
    println!(
        "# owner's settings: {} (version {})",
        view.owner_file, view.owner_version
    );
    for p in &view.owner_problems {
        println!("# NOT APPLIED: {}", p.message);
    }
    let width = view
        .values
        .iter()
        .filter(|v| wanted(&v.key))
        .map(|v| v.key.len() + v.value.len() + 3)
        .max()
        .unwrap_or(0)
        .min(72);
    for v in view.values.iter().filter(|v| wanted(&v.key)) {
        let line = format!("{} = {}", v.key, v.value);
        println!("{line:<width$}  # {}", v.origin);
    }
}

pub async fn change(
    client: &Ctl,
    changes: Vec<SettingChange>,
    if_version: Option<String>,
) -> ExitCode {
    let keys: Vec<String> = changes.iter().map(|c| c.key.clone()).collect();
    let request = ControlRequest::Settings(SettingsRequest::Change {
        changes,
        expected_version: if_version,
    });
    apply(client, request, keys).await
}

async fn apply(client: &Ctl, request: ControlRequest, keys: Vec<String>) -> ExitCode {
    match client.call_with_timeout(request, APPLY_TIMEOUT).await {
        Ok(ControlResponse::Settings(SettingsResponse::Applied { view, report })) => {
            for key in keys {
                match view.values.iter().find(|v| v.key == key) {
                    Some(v) => println!("{} = {}  # {}", v.key, v.value, v.origin),
                    None => println!("{key}: not set (removed, or a table)"),
                }
            }
            println!("{}", report.summary());
            ExitCode::SUCCESS
        }
        Ok(ControlResponse::Settings(SettingsResponse::Refused { problems, .. })) => {
            eprintln!("coworkctl settings: refused; nothing was changed:");
            for p in problems {
                eprintln!("  {}", p.message);
            }
            ExitCode::from(EXIT_DEGRADED)
        }
        Ok(ControlResponse::Error(e)) => {
            eprintln!("coworkctl settings: {}", e.message);
            ExitCode::from(EXIT_DEGRADED)
        }
        Ok(other) => unexpected(&other),
        Err(e) => unreachable_daemon(&e),
    }
}
