//! Schema versions through the real coworkd (issue #25): each store's
//! version in `coworkctl status --json` (`stores`) and the `store.migrated`
//! entries of a first start; then a `state.db` from a newer image: the
//! gateway refuses it with the one sentence (in its log and in `coworkctl
//! status`), the supervisor reports the appliance degraded, and the file is
//! left at its version; the same for an `audit.db` from a newer image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cowork::audit::store::AUDIT_DB;
use cowork::gateway::state_db::STATE_DB;

mod common;
use common::{Instance, wait_until};

#[test]
fn stores_show_their_versions_and_a_newer_state_db_is_refused_and_reported() {
    let mut i = Instance::start();
    let status = wait_until(Duration::from_secs(10), "both databases in status", || {
        let s = i.status();
        let names: Vec<String> = s["stores"]
            .as_array()?
            .iter()
            .filter_map(|st| st["name"].as_str().map(String::from))
            .collect();
        (names.contains(&"state.db".to_string()) && names.contains(&"audit.db".to_string()))
            .then_some(s)
    });
    let latest = |name: &str| match name {
        "state.db" => STATE_DB.latest(),
        _ => AUDIT_DB.latest(),
    };
    for st in status["stores"].as_array().unwrap() {
        assert_eq!(st["schema"], latest(st["name"].as_str().unwrap()), "{st}");
        assert!(
            st["file"]
                .as_str()
                .unwrap()
                .ends_with(st["name"].as_str().unwrap())
        );
    }
    let text = String::from_utf8_lossy(&i.ctl(&["status"]).stdout).into_owned();
    let line = format!("store state.db: schema {}", STATE_DB.latest());
    assert!(text.contains(&line), "{text}");

    // A first start creates both at their newest schema, and says so in the trail.
    let migrated = wait_until(Duration::from_secs(10), "store.migrated entries", || {
        let m: Vec<_> = i
            .audit_tail(&[])
            .into_iter()
            .filter(|e| e["kind"] == "store.migrated")
            .collect();
        (m.len() >= 2).then_some(m)
    });
    for e in &migrated {
        let to = latest(e["payload"]["store"].as_str().unwrap());
        assert_eq!(
            (e["payload"]["from"].as_u64(), e["payload"]["to"].as_u64()),
            (Some(0), Some(u64::from(to))),
            "{e}"
        );
    }

    // The same appliance, rolled back onto a state.db a newer image wrote.
    let (stopped, _) = i.stop();
    assert!(stopped.success());
    let db = i.dir.path().join("state/gateway/state.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        // Schema 7, which only images of 7 and later can read.
        c.pragma_update(None, "user_version", 7).unwrap();
        c.execute("UPDATE schema_readers SET oldest = 7", [])
            .unwrap();
    }
    // A copy the newer image took before migrating: the rollback's way back.
    let copy = i
        .dir
        .path()
        .join(format!("state/gateway/state.db.pre-v{}", STATE_DB.latest()));
    std::fs::copy(&db, &copy).unwrap();
    let dir = std::mem::replace(&mut i.dir, tempfile::tempdir().unwrap());
    drop(i);
    let i = Instance::start_in(dir, &[], &[]);
    let sentence = format!(
        "state.db has schema 7; this image knows up to {}: the appliance was rolled back across an incompatible update",
        STATE_DB.latest()
    );
    let s = wait_until(
        Duration::from_secs(15),
        "degraded by the newer state.db",
        || {
            let s = i.status();
            (s["degraded"] == true).then_some(s)
        },
    );
    let why: Vec<&str> = s["degraded_because"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(
        why.contains(&format!("the gateway component cannot start: {sentence}").as_str()),
        "{why:?}"
    );
    let out = i.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(1), "degraded → exit 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "DEGRADED: the gateway component cannot start: {sentence}"
        )),
        "{text}"
    );
    assert!(i.log().contains(&sentence), "the sentence in the log");
    // The refused file is listed with the version it has.
    wait_until(Duration::from_secs(10), "state.db listed at 7", || {
        i.status()["stores"]
            .as_array()?
            .iter()
            .any(|st| st["name"] == "state.db" && st["schema"] == 7)
            .then_some(())
    });
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 7, "the newer file is left as it was");
    assert!(
        copy.exists(),
        "a refused file's copy is kept for the rollback"
    );
}

#[test]
fn a_newer_audit_db_is_refused_and_reported() {
    let mut i = Instance::start();
    let (stopped, _) = i.stop();
    assert!(stopped.success());
    let db = i.dir.path().join("state/audit/audit.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '4'), ('schema_readers', '4')",
            [],
        )
        .unwrap();
    }
    let dir = std::mem::replace(&mut i.dir, tempfile::tempdir().unwrap());
    drop(i);
    let i = Instance::start_in(dir, &[], &[]);
    let sentence = "audit.db has schema 4; this image knows up to 1: the appliance was rolled back across an incompatible update";
    let s = wait_until(
        Duration::from_secs(15),
        "degraded by the newer audit.db",
        || {
            let s = i.status();
            (s["degraded"] == true).then_some(s)
        },
    );
    assert!(
        s["degraded_because"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w
                == &serde_json::json!(format!("the audit component cannot start: {sentence}"))),
        "{s}"
    );
    assert!(i.log().contains(sentence), "the sentence in the log");
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, "4", "the newer file is left as it was");
}
