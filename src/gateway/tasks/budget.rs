//! What one sender may use: tasks in progress at once (across their chats) and
//! tokens and cost per UTC day, from `[limits]`. The day's usage is kept in
//! `gateway_usage_daily` (state.db), so a restart does not hand out a fresh
//! budget. A task's own limits are cut to what is left of the day's.

use rusqlite::{Connection, OptionalExtension, params};

/// `[limits]` keys that bound one sender.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserLimits {
    pub max_tasks: u32,
    pub max_tokens_per_day: u64,
    pub max_cost_usd_per_day: f64,
}

impl UserLimits {
    pub fn from_settings(l: &crate::guard::LimitSettings) -> UserLimits {
        UserLimits {
            max_tasks: l.max_tasks_per_user,
            max_tokens_per_day: l.max_tokens_per_user_per_day,
            max_cost_usd_per_day: l.max_cost_usd_per_user_per_day,
        }
    }
}

/// One sender's use of the current day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayUsage {
    pub tokens: u64,
    pub cost_usd: f64,
}

impl DayUsage {
    /// Why a new task may not start today, if it may not (`priced`: the model
    /// has a price, so cost counts).
    pub fn refusal(&self, limits: &UserLimits, priced: bool) -> Option<String> {
        if self.tokens >= limits.max_tokens_per_day {
            return Some(format!(
                "You have used today's budget of {} tokens; it renews at 00:00 UTC.",
                limits.max_tokens_per_day
            ));
        }
        if priced && self.cost_usd >= limits.max_cost_usd_per_day {
            return Some(format!(
                "You have used today's budget of ${:.2}; it renews at 00:00 UTC.",
                limits.max_cost_usd_per_day
            ));
        }
        None
    }

    /// Tokens and cost still allowed today.
    pub fn remaining(&self, limits: &UserLimits) -> (u64, f64) {
        (
            limits.max_tokens_per_day.saturating_sub(self.tokens),
            (limits.max_cost_usd_per_day - self.cost_usd).max(0.0),
        )
    }
}

/// The UTC day number of a Unix time.
pub fn day_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(86_400)
}

/// `gateway_usage_daily` as of `state.db` schema 1 (created by the migration
/// runner, see `gateway::state_db`).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_usage_daily (
    requester TEXT NOT NULL,
    day INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    PRIMARY KEY (requester, day)
);
";

pub fn usage(db: &Connection, requester: &str, day: i64) -> rusqlite::Result<DayUsage> {
    Ok(db
        .query_row(
            "SELECT tokens, cost_usd FROM gateway_usage_daily WHERE requester = ?1 AND day = ?2",
            params![requester, day],
            |r| {
                Ok(DayUsage {
                    tokens: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    cost_usd: r.get(1)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Adds a finished task's use to its sender's day.
pub fn record(
    db: &Connection,
    requester: &str,
    day: i64,
    tokens: u64,
    cost_usd: f64,
) -> rusqlite::Result<()> {
    let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
    let cost = if cost_usd.is_finite() { cost_usd } else { 0.0 };
    db.execute(
        "INSERT INTO gateway_usage_daily (requester, day, tokens, cost_usd) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (requester, day) DO UPDATE
         SET tokens = tokens + excluded.tokens, cost_usd = cost_usd + excluded.cost_usd",
        params![requester, day, tokens, cost],
    )?;
    // Older days are of no use to the limits.
    db.execute(
        "DELETE FROM gateway_usage_daily WHERE day < ?1",
        params![day - 7],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> UserLimits {
        UserLimits {
            max_tasks: 2,
            max_tokens_per_day: 1000,
            max_cost_usd_per_day: 1.0,
        }
    }

    #[test]
    fn a_day_adds_up_and_a_new_day_starts_fresh() {
        let db = Connection::open_in_memory().expect("db");
        db.execute_batch(SCHEMA).expect("table");
        let day = day_of(1_800_000_000);
        record(&db, "telegram:1", day, 600, 0.25).expect("record");
        record(&db, "telegram:1", day, 500, 0.25).expect("record");
        record(&db, "telegram:2", day, 1, 0.0).expect("record");
        let u = usage(&db, "telegram:1", day).expect("usage");
        assert_eq!(u.tokens, 1100);
        assert!((u.cost_usd - 0.5).abs() < 1e-9);
        assert!(
            u.refusal(&limits(), true)
                .is_some_and(|s| s.contains("1000 tokens"))
        );
        assert_eq!(
            usage(&db, "telegram:1", day + 1).expect("usage"),
            DayUsage::default()
        );
    }

    #[test]
    fn cost_counts_only_with_a_price() {
        let u = DayUsage {
            tokens: 10,
            cost_usd: 1.5,
        };
        assert!(
            u.refusal(&limits(), true)
                .is_some_and(|s| s.contains("$1.00"))
        );
        assert_eq!(u.refusal(&limits(), false), None);
        assert_eq!(u.remaining(&limits()), (990, 0.0));
    }

    #[test]
    fn days_are_utc_and_negative_times_do_not_wrap() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(86_399), 0);
        assert_eq!(day_of(86_400), 1);
        assert_eq!(day_of(-1), -1);
    }
}
