//! `coworkctl doctor`: the security checklist, one line per check, and
//! `--fix` for the safe, reversible fixes (settings only, each confirmed; the
//! supervisor audits every settings change).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use cowork::doctor::{CheckStatus, Report};
use cowork::ipc::{Client, ControlRequest, ControlResponse, SettingChange};

use super::access::print_json;
use super::{EXIT_DEGRADED, unexpected, unreachable_daemon};

type Ctl = Client<ControlRequest, ControlResponse>;

/// The checks can verify the whole audit trail: give them time.
const DOCTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

pub async fn doctor(client: &Ctl, json: bool, fix: bool, yes: bool) -> ExitCode {
    let report = match fetch(client).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !fix {
        if json {
            print_json(&report);
        } else {
            print_report(&report);
        }
        return ExitCode::from(report.exit_code());
    }
    let fixable: Vec<_> = report
        .checks
        .iter()
        .filter_map(|c| c.safe_fix.as_ref().map(|f| (c, f)))
        .collect();
    if fixable.is_empty() {
        print_report(&report);
        println!(
            "doctor: nothing to fix safely (the other fixes are the owner's call: see each line's fix)"
        );
        return ExitCode::from(report.exit_code());
    }
    let mut changes = Vec::new();
    let stdin = std::io::stdin();
    for (check, f) in fixable {
        println!("{} {}: {}", check.status.as_str(), check.id, check.message);
        if !yes {
            print!("  set {} = {}? [y/N] ", f.key, f.value);
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            if stdin.lock().read_line(&mut answer).is_err()
                || !matches!(answer.trim(), "y" | "Y" | "yes")
            {
                println!("  left as it is");
                continue;
            }
        }
        changes.push(SettingChange {
            key: f.key.clone(),
            value: Some(f.value.clone()),
        });
    }
    if changes.is_empty() {
        println!("doctor: nothing changed");
        return ExitCode::from(report.exit_code());
    }
    let applied = super::settings::change(client, changes, None).await;
    if applied != ExitCode::SUCCESS {
        return applied;
    }
    match fetch(client).await {
        Ok(after) => {
            print_report(&after);
            ExitCode::from(after.exit_code())
        }
        Err(code) => code,
    }
}

async fn fetch(client: &Ctl) -> Result<Report, ExitCode> {
    match client
        .call_with_timeout(ControlRequest::Doctor, DOCTOR_TIMEOUT)
        .await
    {
        Ok(ControlResponse::Doctor(r)) => Ok(r),
        Ok(ControlResponse::Error(e)) => {
            eprintln!("coworkctl doctor: {}", e.message);
            Err(ExitCode::from(EXIT_DEGRADED))
        }
        Ok(other) => Err(unexpected(&other)),
        Err(e) => Err(unreachable_daemon(&e)),
    }
}

fn print_report(report: &Report) {
    for c in &report.checks {
        println!("{:<4}  {:<28}  {}", c.status.as_str(), c.id, c.message);
        if c.status != CheckStatus::Ok && !c.fix.is_empty() {
            println!("{:<4}  {:<28}  fix: {}", "", "", c.fix);
        }
    }
    let count = |s| report.checks.iter().filter(|c| c.status == s).count();
    println!(
        "doctor: {} ok, {} warn, {} fail",
        count(CheckStatus::Ok),
        count(CheckStatus::Warn),
        count(CheckStatus::Fail)
    );
}
