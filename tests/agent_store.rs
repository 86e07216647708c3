//! Task and approval stores on an in-memory SQLite connection: task state
//! transitions (allowed and refused), running/awaiting_approval tasks marked
//! interrupted on open; approvals bound to the exact command and cwd, used at
//! most once, denied on expiry (5 minutes by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cowork::gateway::tasks::store::StoreError;
use cowork::gateway::tasks::store::{
    ApprovalStatus, ApprovalStore, DEFAULT_APPROVAL_TTL_SECS, TaskState, TaskStore,
};
use rusqlite::Connection;

#[test]
fn task_lifecycle_and_refused_transitions() {
    let conn = Connection::open_in_memory().unwrap();
    let (tasks, n) = TaskStore::open(&conn, 100).unwrap();
    assert_eq!(n, 0);
    tasks.create("t1", "tg:alice", "do it", 100).unwrap();
    assert_eq!(tasks.get("t1").unwrap().unwrap().state, TaskState::Queued);
    tasks
        .transition("t1", TaskState::Running, None, 101)
        .unwrap();
    tasks
        .transition("t1", TaskState::AwaitingApproval, None, 102)
        .unwrap();
    tasks
        .transition("t1", TaskState::Running, None, 103)
        .unwrap();
    tasks
        .transition("t1", TaskState::Completed, Some("completed"), 104)
        .unwrap();
    let t = tasks.get("t1").unwrap().unwrap();
    assert_eq!(t.state, TaskState::Completed);
    assert_eq!(t.detail.as_deref(), Some("completed"));
    assert_eq!(t.updated_at, 104);
    let e = tasks
        .transition("t1", TaskState::Running, None, 105)
        .unwrap_err();
    assert!(matches!(
        e,
        StoreError::Transition {
            from: "completed",
            to: "running",
            ..
        }
    ));
    assert!(e.to_string().contains("t1"));
    assert!(matches!(
        tasks.transition("nope", TaskState::Running, None, 1),
        Err(StoreError::NoTask { .. })
    ));
    tasks.create("t2", "u", "p", 100).unwrap();
    assert!(
        tasks
            .transition("t2", TaskState::Completed, None, 101)
            .is_err()
    );
    assert!(tasks.create("t2", "u", "p", 100).is_err());
}

#[test]
fn open_marks_running_and_awaiting_tasks_interrupted() {
    let conn = Connection::open_in_memory().unwrap();
    {
        let (tasks, _) = TaskStore::open(&conn, 1).unwrap();
        for id in ["a", "b", "c", "d"] {
            tasks.create(id, "u", "p", 1).unwrap();
        }
        tasks.transition("a", TaskState::Running, None, 2).unwrap();
        tasks.transition("b", TaskState::Running, None, 2).unwrap();
        tasks
            .transition("b", TaskState::AwaitingApproval, None, 3)
            .unwrap();
        tasks.transition("c", TaskState::Running, None, 2).unwrap();
        tasks
            .transition("c", TaskState::Completed, None, 3)
            .unwrap();
    }
    let (tasks, n) = TaskStore::open(&conn, 50).unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        tasks.ids_in_state(TaskState::Interrupted).unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(tasks.get("c").unwrap().unwrap().state, TaskState::Completed);
    assert_eq!(tasks.get("d").unwrap().unwrap().state, TaskState::Queued);
    tasks.transition("a", TaskState::Queued, None, 51).unwrap();
}

#[test]
fn unknown_state_in_database_is_reported() {
    let conn = Connection::open_in_memory().unwrap();
    let (tasks, _) = TaskStore::open(&conn, 1).unwrap();
    conn.execute(
        "INSERT INTO agent_tasks VALUES ('x', 'u', 'p', 'bogus', NULL, 1, 1)",
        [],
    )
    .unwrap();
    assert!(matches!(tasks.get("x"), Err(StoreError::ParseState { .. })));
}

#[test]
fn approval_is_bound_to_exact_command_and_cwd_and_used_once() {
    let conn = Connection::open_in_memory().unwrap();
    let ap = ApprovalStore::open(&conn).unwrap();
    ap.request(
        "a1",
        "t1",
        "rm -rf build",
        "/ws/t1",
        1000,
        DEFAULT_APPROVAL_TTL_SECS,
    )
    .unwrap();
    assert_eq!(
        ap.status("a1", 1000).unwrap(),
        Some(ApprovalStatus::Pending)
    );
    assert!(
        !ap.take("a1", "rm -rf build", "/ws/t1", 1001).unwrap(),
        "not yet approved"
    );
    assert_eq!(
        ap.decide("a1", true, "owner", 1100).unwrap(),
        Some(ApprovalStatus::Approved)
    );
    assert!(!ap.take("a1", "rm -rf build ", "/ws/t1", 1101).unwrap());
    assert!(!ap.take("a1", "rm -rf /", "/ws/t1", 1101).unwrap());
    assert!(!ap.take("a1", "rm -rf build", "/ws/t2", 1101).unwrap());
    assert!(ap.take("a1", "rm -rf build", "/ws/t1", 1101).unwrap());
    assert!(
        !ap.take("a1", "rm -rf build", "/ws/t1", 1102).unwrap(),
        "used once"
    );
    assert_eq!(ap.status("a1", 1102).unwrap(), Some(ApprovalStatus::Used));
    // A decision cannot be changed.
    assert_eq!(
        ap.decide("a1", false, "owner", 1103).unwrap(),
        Some(ApprovalStatus::Used)
    );
}

#[test]
fn approval_expires_after_five_minutes_and_is_denied() {
    let conn = Connection::open_in_memory().unwrap();
    let ap = ApprovalStore::open(&conn).unwrap();
    assert_eq!(DEFAULT_APPROVAL_TTL_SECS, 300);
    ap.request("late", "t", "make", "/ws", 0, DEFAULT_APPROVAL_TTL_SECS)
        .unwrap();
    assert_eq!(
        ap.status("late", 299).unwrap(),
        Some(ApprovalStatus::Pending)
    );
    assert_eq!(
        ap.decide("late", true, "owner", 300).unwrap(),
        Some(ApprovalStatus::Expired)
    );
    assert!(!ap.take("late", "make", "/ws", 301).unwrap());
    // Approved in time but used after expiry: refused.
    ap.request("slow", "t", "make", "/ws", 0, 300).unwrap();
    ap.decide("slow", true, "owner", 10).unwrap();
    assert!(!ap.take("slow", "make", "/ws", 300).unwrap());
    // Denied stays denied.
    ap.request("no", "t", "make", "/ws", 0, 300).unwrap();
    assert_eq!(
        ap.decide("no", false, "owner", 5).unwrap(),
        Some(ApprovalStatus::Denied)
    );
    assert!(!ap.take("no", "make", "/ws", 6).unwrap());
    assert_eq!(ap.status("missing", 0).unwrap(), None);
}
