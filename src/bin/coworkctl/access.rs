//! `coworkctl pair`, `coworkctl users` and `coworkctl chat`: pairing codes, channel
//! users and the local channel, all served by the gateway through the supervisor.

use std::process::ExitCode;

use clap::Subcommand;
use cowork::ipc::{AccessRequest, AccessResponse, Client, ControlRequest, ControlResponse};

use cowork::plural;

use super::{refused, unreachable_daemon};

type Ctl = Client<ControlRequest, ControlResponse>;

#[derive(Debug, Subcommand)]
pub enum PairCommand {
    /// Issue a pairing code for a channel; it revokes the channel's previous code.
    /// Give it to the person who should pair; they send `/pair CODE` to the bot.
    New {
        #[arg(long)]
        channel: String,
        /// Validity in seconds, from 60 to 3600 (default: the channel's, 300 unless set).
        #[arg(long)]
        ttl: Option<u64>,
        /// Print {"code", "channel", "expires_at", "id"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Active codes: id, channel, expiry (never the code itself).
    List {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Invalidate one code by id, or every active code with --all.
    Cancel {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        #[arg(long)]
        all: bool,
    },
    /// Senders locked out of pairing after too many wrong codes, and until
    /// when (`lockouts clear` lifts them).
    Lockouts {
        #[command(subcommand)]
        command: Option<LockoutsCommand>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LockoutsCommand {
    /// Lift lockouts: of every sender, of a channel's, or of one sender.
    Clear {
        #[arg(long)]
        channel: Option<String>,
        /// One sender (needs --channel).
        #[arg(long, requires = "channel")]
        sender: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Who may use the assistant, per channel: state, since, last seen.
    List {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one user: their messages are refused until you `forget` them.
    Revoke {
        #[arg(long)]
        channel: String,
        sender: String,
    },
    /// Revoke every user (of one channel, or all) and every active pairing code.
    RevokeAll {
        #[arg(long)]
        channel: Option<String>,
        /// Required: this locks everyone out until they pair again.
        #[arg(long)]
        yes: bool,
    },
    /// Delete a user's record, so a revoked sender may pair again.
    Forget {
        #[arg(long)]
        channel: String,
        sender: String,
    },
}

async fn access(
    client: &Ctl,
    what: &str,
    request: AccessRequest,
) -> Result<AccessResponse, ExitCode> {
    match client.call(ControlRequest::Access(request)).await {
        Ok(ControlResponse::Access(r)) => Ok(r),
        Ok(other) => Err(refused(what, &other)),
        Err(e) => Err(unreachable_daemon(&e)),
    }
}

pub(crate) fn time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Prints `value` as JSON with every time in one form: RFC 3339, UTC. The
/// daemon's messages carry Unix seconds in fields named `*_at`, `since`,
/// `last_seen`, `not_after`, `until`; they are converted here, once.
pub(crate) fn print_json(value: &impl serde::Serialize) {
    let mut value = match serde_json::to_value(value) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("coworkctl: encoding JSON: {e}");
            return;
        }
    };
    rfc3339_times(&mut value);
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
}

/// Whether a JSON field of this name holds a point in time.
fn is_time_field(name: &str) -> bool {
    name.ends_with("_at")
        || matches!(
            name,
            "since" | "last_seen" | "not_after" | "not_before" | "until" | "time"
        )
}

fn rfc3339_times(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v.as_i64() {
                    Some(unix) if is_time_field(k) => *v = serde_json::Value::String(time(unix)),
                    _ => rfc3339_times(v),
                }
            }
            // `started_unix` (the update writer's file) reads as `started_at`.
            let unix_keys: Vec<String> = map
                .keys()
                .filter(|k| k.ends_with("_unix"))
                .cloned()
                .collect();
            for k in unix_keys {
                if let Some(v) = map.remove(&k) {
                    let at = format!("{}_at", k.trim_end_matches("_unix"));
                    let v = match v.as_i64() {
                        Some(unix) => serde_json::Value::String(time(unix)),
                        None => v,
                    };
                    map.insert(at, v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rfc3339_times),
        _ => {}
    }
}

pub async fn pair(client: &Ctl, command: PairCommand) -> ExitCode {
    match command {
        PairCommand::New { channel, ttl, json } => {
            let request = AccessRequest::PairNew {
                channel,
                ttl_secs: ttl,
            };
            match access(client, "pair new", request).await {
                Ok(AccessResponse::PairingCode(c)) => {
                    if json {
                        print_json(&serde_json::json!({
                            "id": c.id,
                            "code": c.code,
                            "channel": c.channel,
                            "expires_at": time(c.expires_at),
                        }));
                    } else {
                        println!("pairing code for {}: {}", c.channel, c.code);
                        println!("valid until {} (single use)", time(c.expires_at));
                        println!("send it to the bot as: /pair {}", c.code);
                    }
                    ExitCode::SUCCESS
                }
                Ok(other) => unexpected(&other),
                Err(code) => code,
            }
        }
        PairCommand::List { channel, json } => {
            match access(client, "pair list", AccessRequest::PairList { channel }).await {
                Ok(AccessResponse::PairingCodes(codes)) => {
                    if json {
                        print_json(&codes);
                    } else if codes.is_empty() {
                        println!("no active pairing codes");
                    } else {
                        println!("{:>6} {:<16} {:<26} expires", "id", "channel", "issued");
                        for c in codes {
                            println!(
                                "{:>6} {:<16} {:<26} {}",
                                c.id,
                                c.channel,
                                time(c.issued_at),
                                time(c.expires_at)
                            );
                        }
                    }
                    ExitCode::SUCCESS
                }
                Ok(other) => unexpected(&other),
                Err(code) => code,
            }
        }
        PairCommand::Lockouts {
            command: Some(LockoutsCommand::Clear { channel, sender }),
            ..
        } => {
            let request = AccessRequest::LockoutsClear { channel, sender };
            match access(client, "pair lockouts clear", request).await {
                Ok(AccessResponse::Changed(n)) => {
                    println!("{} lifted", plural(n, "lockout", "lockouts"));
                    ExitCode::SUCCESS
                }
                Ok(other) => unexpected(&other),
                Err(code) => code,
            }
        }
        PairCommand::Lockouts {
            command: None,
            json,
        } => match access(client, "pair lockouts", AccessRequest::LockoutsList).await {
            Ok(AccessResponse::Lockouts(list)) => {
                if json {
                    print_json(&list);
                } else if list.is_empty() {
                    println!("no sender is locked out of pairing");
                } else {
                    println!("{:<16} {:<28} paused until", "channel", "sender");
                    for l in list {
                        println!("{:<16} {:<28} {}", l.channel, l.sender, time(l.until));
                    }
                }
                ExitCode::SUCCESS
            }
            Ok(other) => unexpected(&other),
            Err(code) => code,
        },
        PairCommand::Cancel { id, all } => {
            let request = match (id, all) {
                (Some(id), false) => AccessRequest::PairCancel { id },
                _ => AccessRequest::PairCancelAll { channel: None },
            };
            match access(client, "pair cancel", request).await {
                Ok(AccessResponse::Changed(n)) => {
                    println!("{} cancelled", plural(n, "pairing code", "pairing codes"));
                    ExitCode::SUCCESS
                }
                Ok(other) => unexpected(&other),
                Err(code) => code,
            }
        }
    }
}

pub async fn users(client: &Ctl, command: UsersCommand) -> ExitCode {
    let request = match command {
        UsersCommand::List { channel, json } => {
            return match access(client, "users list", AccessRequest::UsersList { channel }).await {
                Ok(AccessResponse::Users(users)) => {
                    if json {
                        print_json(&users);
                    } else if users.is_empty() {
                        println!("no users");
                    } else {
                        println!(
                            "{:<12} {:<28} {:<12} {:<26} last seen",
                            "channel", "sender", "state", "since"
                        );
                        for u in users {
                            println!(
                                "{:<12} {:<28} {:<12} {:<26} {}",
                                u.channel,
                                u.sender,
                                u.state,
                                time(u.since),
                                u.last_seen.map_or_else(|| "-".to_string(), time)
                            );
                        }
                    }
                    ExitCode::SUCCESS
                }
                Ok(other) => unexpected(&other),
                Err(code) => code,
            };
        }
        UsersCommand::Revoke { channel, sender } => AccessRequest::UserRevoke { channel, sender },
        UsersCommand::RevokeAll { channel, yes } => {
            if !yes {
                eprintln!(
                    "coworkctl users revoke-all: this revokes every user and pairing code{}; add --yes to do it",
                    channel
                        .as_deref()
                        .map(|c| format!(" of {c}"))
                        .unwrap_or_default()
                );
                return ExitCode::from(1);
            }
            AccessRequest::UsersRevokeAll { channel }
        }
        UsersCommand::Forget { channel, sender } => AccessRequest::UserForget { channel, sender },
    };
    let forget = matches!(request, AccessRequest::UserForget { .. });
    match access(client, "users", request).await {
        Ok(AccessResponse::Changed(n)) => {
            if forget {
                println!("forgotten: they may pair again with a new code");
            } else {
                println!("{} changed", plural(n, "user", "users"));
            }
            ExitCode::SUCCESS
        }
        Ok(AccessResponse::Revoked {
            users,
            tasks_cancelled,
            approvals_denied,
        }) => {
            println!(
                "{} revoked; {} cancelled, {} of other tasks denied",
                plural(users, "user", "users"),
                plural(tasks_cancelled, "task", "tasks"),
                plural(approvals_denied, "pending approval", "pending approvals")
            );
            ExitCode::SUCCESS
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
}

/// Where chat replies go: printed as they come, or gathered for `--json`.
struct Replies {
    json: bool,
    gathered: Vec<String>,
}

impl Replies {
    fn push(&mut self, reply: String) {
        use std::io::Write;
        if self.json {
            self.gathered.push(reply);
        } else {
            println!("{reply}");
            let _ = std::io::stdout().flush();
        }
    }

    /// With `--json`: `{"replies": [...]}` once everything has arrived.
    fn finish(self, code: ExitCode) -> ExitCode {
        if self.json {
            print_json(&serde_json::json!({ "replies": self.gathered }));
        }
        code
    }
}

/// `coworkctl chat [MESSAGE...]`: one message, or (without one) a line-by-line
/// session on standard input. The local channel knows you by your uid.
pub async fn chat(
    client: &Ctl,
    message: Vec<String>,
    wait: bool,
    inbox: bool,
    json: bool,
) -> ExitCode {
    use std::io::BufRead;
    const MAX_LINE: usize = 64 * 1024;
    let mut out = Replies {
        json,
        gathered: Vec::new(),
    };
    if inbox {
        let code = poll(client, &mut out).await;
        return out.finish(code);
    }
    if !message.is_empty() {
        let code = send(client, message.join(" "), wait, &mut out).await;
        return out.finish(code);
    }
    let stdin = std::io::stdin();
    let mut status = ExitCode::SUCCESS;
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("coworkctl chat: reading standard input: {e}");
                return out.finish(ExitCode::from(1));
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            eprintln!("coworkctl chat: line longer than {MAX_LINE} bytes; not sent");
            status = ExitCode::from(1);
            continue;
        }
        status = send(client, line, wait, &mut out).await;
    }
    out.finish(status)
}

async fn send(client: &Ctl, text: String, wait: bool, out: &mut Replies) -> ExitCode {
    match client.call(ControlRequest::Chat { text }).await {
        Ok(ControlResponse::Replies(replies)) => {
            for r in replies {
                out.push(r);
            }
            if wait {
                poll(client, out).await
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(other) => refused("chat", &other),
        Err(e) => unreachable_daemon(&e),
    }
}

/// Prints the agent's replies as they come, until none of our tasks runs
/// (it ended, or it waits for an approval).
async fn poll(client: &Ctl, out: &mut Replies) -> ExitCode {
    loop {
        match client.call(ControlRequest::ChatPoll).await {
            Ok(ControlResponse::ChatInbox(inbox)) => {
                for r in inbox.replies {
                    out.push(r);
                }
                if !inbox.busy {
                    return ExitCode::SUCCESS;
                }
            }
            Ok(other) => return refused("chat", &other),
            Err(e) => return unreachable_daemon(&e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `coworkctl channels trust`: the owner confirms a sender's safety number.
pub async fn trust(client: &Ctl, channel: String, sender: String, number: String) -> ExitCode {
    let request = AccessRequest::IdentityConfirm {
        channel: channel.clone(),
        sender: sender.clone(),
        safety_number: number,
    };
    match access(client, "channels trust", request).await {
        Ok(AccessResponse::Changed(_)) => {
            println!("{channel}: {sender}'s safety number confirmed; the sender is answered again");
            ExitCode::SUCCESS
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
}

fn unexpected(r: &AccessResponse) -> ExitCode {
    eprintln!("coworkctl: unexpected answer from coworkd: {r:?}");
    ExitCode::from(2)
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The admin page's URLs and certificate fingerprint (compare it with what
    /// the browser shows), and whether the owner is set up.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// The one-time token that lets the first visitor set the owner password
    /// (only while no owner exists; exit 1 once the owner is set up).
    SetupToken {
        #[arg(long)]
        json: bool,
    },
    /// A new TLS key and certificate; every admin session is logged out.
    RotateCert {
        #[arg(long)]
        json: bool,
    },
}

pub async fn admin(client: &Ctl, command: AdminCommand) -> ExitCode {
    use cowork::ipc::{AdminRequest, AdminResponse};
    let (request, json) = match &command {
        AdminCommand::Info { json } => (AdminRequest::Info, *json),
        AdminCommand::SetupToken { json } => (AdminRequest::SetupToken, *json),
        AdminCommand::RotateCert { json } => (AdminRequest::RotateCert, *json),
    };
    match client.call(ControlRequest::Admin(request)).await {
        Ok(ControlResponse::Admin(AdminResponse::Info(info))) => {
            if json {
                print_json(&info);
            } else {
                if matches!(command, AdminCommand::RotateCert { .. }) {
                    println!("certificate rotated; every session was logged out");
                }
                for url in &info.urls {
                    println!("admin page: {url}");
                }
                println!("certificate SHA-256: {}", info.fingerprint);
                println!(
                    "valid until: {}",
                    time(i64::try_from(info.not_after).unwrap_or(0))
                );
                println!(
                    "owner: {}",
                    if info.owner_set {
                        "set up"
                    } else {
                        "not set up yet (coworkctl admin setup-token)"
                    }
                );
            }
            ExitCode::SUCCESS
        }
        Ok(ControlResponse::Admin(AdminResponse::SetupToken(Some(token)))) => {
            if json {
                print_json(&serde_json::json!({ "token": token }));
            } else {
                println!("{token}");
            }
            ExitCode::SUCCESS
        }
        Ok(ControlResponse::Admin(AdminResponse::SetupToken(None))) => {
            eprintln!("coworkctl admin setup-token: the owner is already set up; no token exists");
            ExitCode::from(1)
        }
        Ok(other) => refused("admin", &other),
        Err(e) => unreachable_daemon(&e),
    }
}
