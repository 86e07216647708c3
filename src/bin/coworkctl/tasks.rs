//! `coworkctl tasks` and `coworkctl approvals`: the agent runtime's tasks and
//! the approval requests of their commands, served by the gateway through the
//! supervisor. The caller (its uid) is recorded as the approver or canceller.

use std::process::ExitCode;

use clap::Subcommand;
use cowork::ipc::{
    AgentRequest, AgentResponse, ApprovalListing, Client, ControlRequest, ControlResponse,
    TaskListing,
};

use super::access::{print_json, time};
use super::{refused, unreachable_daemon};

type Ctl = Client<ControlRequest, ControlResponse>;

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// The most recent tasks, newest first.
    List {
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One task: state, who asked, the message, why it ended.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop a task: aborts its model request and stops its running command
    /// (SIGTERM, the kill 1.5 s later). A task left `interrupted` by a restart
    /// is closed. --force kills the command at once and also closes a task the
    /// gateway has no live handle for.
    Cancel {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Run a task left `interrupted` by a restart again, from its message.
    Resume { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Pending requests: the full command, its workspace, who asked, expiry.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Let the command run once, exactly as listed.
    Approve { id: String },
    /// Refuse it; the agent is told the owner denied it.
    Deny { id: String },
}

async fn call(client: &Ctl, what: &str, request: AgentRequest) -> Result<AgentResponse, ExitCode> {
    match client.call(ControlRequest::Agent(request)).await {
        Ok(ControlResponse::Agent(r)) => Ok(r),
        Ok(other) => Err(refused(what, &other)),
        Err(e) => Err(unreachable_daemon(&e)),
    }
}

fn print_task(t: &TaskListing) {
    println!(
        "{}  {:<17}  {}  {}",
        t.id,
        t.state,
        time(t.updated_at),
        t.user
    );
}

pub async fn tasks(client: &Ctl, command: TasksCommand) -> ExitCode {
    let (what, request, json) = match &command {
        TasksCommand::List { limit, json } => (
            "tasks list",
            AgentRequest::TasksList { limit: *limit },
            *json,
        ),
        TasksCommand::Show { id, json } => (
            "tasks show",
            AgentRequest::TaskShow { id: id.clone() },
            *json,
        ),
        TasksCommand::Cancel { id, force } => (
            "tasks cancel",
            AgentRequest::TaskCancel {
                id: id.clone(),
                force: *force,
            },
            false,
        ),
        TasksCommand::Resume { id } => (
            "tasks resume",
            AgentRequest::TaskResume { id: id.clone() },
            false,
        ),
    };
    match call(client, what, request).await {
        Ok(AgentResponse::Tasks(list)) if json => {
            print_json(&list);
            ExitCode::SUCCESS
        }
        Ok(AgentResponse::Tasks(list)) => {
            for t in &list {
                print_task(t);
            }
            ExitCode::SUCCESS
        }
        Ok(AgentResponse::Task(t)) if json => {
            print_json(&t);
            ExitCode::SUCCESS
        }
        Ok(AgentResponse::Task(t)) => {
            println!("task:    {}", t.id);
            println!("state:   {}", t.state);
            println!("user:    {}", t.user);
            println!("created: {}", time(t.created_at));
            println!("updated: {}", time(t.updated_at));
            if let Some(d) = &t.detail {
                println!("detail:  {d}");
            }
            println!("message: {}", t.prompt);
            ExitCode::SUCCESS
        }
        other => common_answer(what, other),
    }
}

/// The answers every agent command shares: a sentence, something unexpected,
/// or a failure already reported.
fn common_answer(what: &str, answer: Result<AgentResponse, ExitCode>) -> ExitCode {
    match answer {
        Ok(AgentResponse::Done(s)) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Ok(other) => {
            eprintln!("coworkctl {what}: unexpected answer: {other:?}");
            ExitCode::from(1)
        }
        Err(code) => code,
    }
}

fn print_approval(a: &ApprovalListing) {
    println!(
        "{}  task {}  from {}  expires {}",
        a.id,
        a.task_id,
        a.requester,
        time(a.expires_at)
    );
    println!("    workspace: {}", a.cwd);
    // The full command, one line per line of it, so nothing is hidden.
    for line in a.command.lines() {
        println!("    $ {}", line.escape_debug());
    }
}

pub async fn approvals(client: &Ctl, command: ApprovalsCommand) -> ExitCode {
    let (what, request, json) = match &command {
        ApprovalsCommand::List { json } => ("approvals list", AgentRequest::ApprovalsList, *json),
        ApprovalsCommand::Approve { id } => (
            "approvals approve",
            AgentRequest::ApprovalDecide {
                id: id.clone(),
                approve: true,
            },
            false,
        ),
        ApprovalsCommand::Deny { id } => (
            "approvals deny",
            AgentRequest::ApprovalDecide {
                id: id.clone(),
                approve: false,
            },
            false,
        ),
    };
    match call(client, what, request).await {
        Ok(AgentResponse::Approvals(list)) if json => {
            print_json(&list);
            ExitCode::SUCCESS
        }
        Ok(AgentResponse::Approvals(list)) => {
            if list.is_empty() {
                println!("no pending approval requests");
            }
            for a in &list {
                print_approval(a);
            }
            ExitCode::SUCCESS
        }
        other => common_answer(what, other),
    }
}
