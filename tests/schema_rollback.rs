//! The rollback rule of `docs/update-format.md` (*Schema versions*), for
//! every database the appliance keeps: a step is additive (checked from its
//! SQL, not only from what it declares) or says how a rollback restores the
//! pre-migration copy; and the image before the newest step still opens a
//! file at the newest schema, reads every column it knows and can insert
//! rows naming only those (new columns are nullable or have a default),
//! while a file past an incompatible step is refused. Checked on the real
//! schemas (`state.db`, `audit.db`) and on test schemas with a step 2, so
//! the check is not vacuous while the real ones have only their baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use cowork::audit::store::AUDIT_DB;
use cowork::gateway::state_db::STATE_DB;
use cowork::schema::{Change, Record, Schema, SchemaError, Step};
use rusqlite::Connection;

/// Each table's columns: name → (NOT NULL, has a default).
type Columns = BTreeMap<String, BTreeMap<String, (bool, bool)>>;

fn columns(c: &Connection) -> Columns {
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let cols = c
                .prepare(
                    "SELECT name, \"notnull\", dflt_value IS NOT NULL FROM pragma_table_info(?1)",
                )
                .unwrap()
                .query_map([&t], |r| {
                    Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            (t, cols)
        })
        .collect()
}

fn fresh(schema: &Schema, dir: &Path, name: &str) -> Connection {
    let path = dir.join(name);
    let mut c = Connection::open(&path).unwrap();
    schema.migrate(&mut c, &path).unwrap();
    c
}

/// The rule, for one schema: every step additive or with a restore path;
/// the previous image opens the newest file (or refuses it after an
/// incompatible step) and its queries still work.
fn check_rule(schema: &Schema) {
    assert!(
        matches!(
            schema.steps.first().map(|s| s.change),
            Some(Change::Additive)
        ),
        "{}: step 1 is the baseline, additive (IF NOT EXISTS), so a file of before versions is it",
        schema.name
    );
    for (n, step) in schema.steps.iter().enumerate() {
        match step.change {
            Change::Additive => {
                let odd = step.not_additive();
                assert!(
                    step.is_additive(),
                    "{} step {}: declared additive, but these are not: {odd:?}",
                    schema.name,
                    n + 1
                );
            }
            Change::Incompatible { restore } => assert!(
                !restore.trim().is_empty(),
                "{} step {}: an incompatible step must say how a rollback restores the copy",
                schema.name,
                n + 1
            ),
        }
    }
    let latest = schema.latest();
    if latest < 2 {
        eprintln!(
            "{}: only the baseline so far; the rule is checked on the test schemas",
            schema.name
        );
        return;
    }
    let previous = Schema {
        steps: schema.steps.split_at(latest as usize - 1).0,
        ..*schema
    };
    let dir = tempfile::tempdir().unwrap();
    let newest_path = dir.path().join("newest.db");
    let mut newest = fresh(schema, dir.path(), "newest.db");
    let known = columns(&fresh(&previous, dir.path(), "previous.db"));
    let opened = previous.migrate(&mut newest, &newest_path);
    if let Change::Incompatible { .. } = schema.steps[latest as usize - 1].change {
        let e =
            opened.expect_err("the previous image must refuse a file past an incompatible step");
        assert!(matches!(e, SchemaError::TooNew { .. }), "{e}");
        return;
    }
    let m = opened.unwrap_or_else(|e| {
        panic!(
            "{}: the previous image refuses the newest file: {e}",
            schema.name
        )
    });
    assert_eq!(
        (m.from, m.to, m.copy),
        (latest, latest, None),
        "used as it is"
    );
    let now = columns(&newest);
    for (table, cols) in &known {
        let have = now
            .get(table)
            .unwrap_or_else(|| panic!("{}: table {table} is gone", schema.name));
        let list: Vec<&str> = cols.keys().map(String::as_str).collect();
        newest
            .prepare(&format!("SELECT {} FROM {table}", list.join(", ")))
            .unwrap_or_else(|e| {
                panic!("{}: the previous image's read of {table}: {e}", schema.name)
            });
        for (col, &(not_null, default)) in have {
            if !cols.contains_key(col) {
                assert!(
                    !not_null || default,
                    "{}: new column {table}.{col} is NOT NULL without a default: the previous image's inserts fail",
                    schema.name
                );
            } else {
                assert_eq!(
                    cols[col],
                    (not_null, default),
                    "{}: {table}.{col} changed",
                    schema.name
                );
            }
        }
    }
}

#[test]
fn state_db_keeps_the_rollback_rule() {
    check_rule(&STATE_DB);
}

#[test]
fn audit_db_keeps_the_rollback_rule() {
    check_rule(&AUDIT_DB);
}

const BASE: &str = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);";

#[test]
fn an_additive_step_2_is_opened_by_version_1() {
    const STEPS: &[Step] = &[
        Step {
            sql: &[BASE],
            change: Change::Additive,
        },
        Step {
            sql: &[
                "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
                    CREATE TABLE IF NOT EXISTS tags (note INTEGER NOT NULL, tag TEXT NOT NULL);
                    CREATE INDEX IF NOT EXISTS tags_tag ON tags (tag);",
            ],
            change: Change::Additive,
        },
    ];
    check_rule(&Schema {
        name: "notes.db",
        steps: STEPS,
        record: Record::UserVersion,
    });
}

#[test]
fn an_incompatible_step_2_is_refused_by_version_1() {
    const STEPS: &[Step] = &[
        Step {
            sql: &[BASE],
            change: Change::Additive,
        },
        Step {
            sql: &["ALTER TABLE notes RENAME COLUMN body TO text;"],
            change: Change::Incompatible {
                restore: "the rollback restores notes.db.pre-v1 (this test only)",
            },
        },
    ];
    check_rule(&Schema {
        name: "notes.db",
        steps: STEPS,
        record: Record::UserVersion,
    });
}

#[test]
#[should_panic(expected = "declared additive")]
fn a_step_that_lies_about_being_additive_is_caught() {
    const STEPS: &[Step] = &[
        Step {
            sql: &[BASE],
            change: Change::Additive,
        },
        Step {
            sql: &["ALTER TABLE notes ADD COLUMN owner TEXT NOT NULL;"],
            change: Change::Additive,
        },
    ];
    check_rule(&Schema {
        name: "notes.db",
        steps: STEPS,
        record: Record::UserVersion,
    });
}

#[test]
#[should_panic(expected = "must say how")]
fn an_incompatible_step_without_a_restore_path_is_caught() {
    const STEPS: &[Step] = &[
        Step {
            sql: &[BASE],
            change: Change::Additive,
        },
        Step {
            sql: &["DROP TABLE notes;"],
            change: Change::Incompatible { restore: " " },
        },
    ];
    check_rule(&Schema {
        name: "notes.db",
        steps: STEPS,
        record: Record::UserVersion,
    });
}
