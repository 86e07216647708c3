//! Configuration the lead embeds in `coworkd.toml`: `[guard]` ([`GuardSettings`]) and
//! `[limits]` ([`LimitSettings`], validated into [`Limits`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::GuardError;

/// `[guard]`: argv-prefix rules. The default trusts nothing (every command is at least `ask`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSettings {
    /// Argv-prefix rules whose commands may run without approval, e.g. `"git status"`.
    pub trusted: Vec<String>,
    /// Extra argv-prefix rules that are always blocked, e.g. `"npm publish"`.
    pub blocked: Vec<String>,
    /// Optional TOML file of `[[rule]]` entries with examples checked at load time.
    pub rules_file: Option<PathBuf>,
}

/// `[limits]`: the bounds of the agent's tasks, and their one definition: the
/// agent ([`crate::agent::AgentSettings::limits`]) and the gateway take these
/// values as they are, and `[sandbox]` only sets the executor's ceilings
/// (`max_timeout_secs`, `output_cap_bytes`, `max_file_bytes`), which these must
/// not exceed (checked at load). [`Default`] is the one set of defaults, the
/// values config/coworkd.toml ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Model calls per task.
    pub max_iterations: u32,
    /// Input + output tokens per task.
    pub max_tokens_per_task: u64,
    /// Cost per task in USD (needs the model's price).
    pub max_cost_usd: f64,
    /// Wall-clock time per task.
    pub task_deadline_secs: u64,
    /// The timeout each of the agent's commands runs with.
    pub command_timeout_secs: u64,
    /// The most `command_timeout_secs` may be (at most `[sandbox] max_timeout_secs`).
    pub command_timeout_max_secs: u64,
    /// Captured stdout, and stderr, of one agent command: the sandbox keeps
    /// no more (at most `[sandbox] output_cap_bytes`).
    pub output_cap_bytes: u64,
    /// Largest file the file tools read or write and an agent command may
    /// write (RLIMIT_FSIZE); at most `[sandbox] max_file_bytes`.
    pub max_file_bytes: u64,
    /// Tool calls of one model answer that are run; the rest are refused.
    pub max_tool_calls_per_turn: u32,
    /// Tasks one sender may have in progress at once, across their chats.
    pub max_tasks_per_user: u32,
    /// What one sender's tasks may cost in a UTC day (needs the model's price).
    pub max_cost_usd_per_user_per_day: f64,
    /// Input + output tokens one sender's tasks may use in a UTC day.
    pub max_tokens_per_user_per_day: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_iterations: 50,
            max_tokens_per_task: 200_000,
            max_cost_usd: 5.0,
            task_deadline_secs: 1800,
            command_timeout_secs: 60,
            command_timeout_max_secs: 600,
            output_cap_bytes: 1024 * 1024,
            max_file_bytes: 10 * 1024 * 1024,
            max_tool_calls_per_turn: 16,
            max_tasks_per_user: 2,
            max_cost_usd_per_user_per_day: 20.0,
            max_tokens_per_user_per_day: 2_000_000,
        }
    }
}

/// Validated limits: what the rest of the appliance uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_iterations: u32,
    pub max_tokens_per_task: u64,
    pub max_cost_usd: f64,
    pub task_deadline: Duration,
    pub command_timeout: Duration,
    pub command_timeout_max: Duration,
    pub output_cap_bytes: u64,
    pub max_file_bytes: u64,
}

fn nonzero(key: &'static str, v: u64) -> Result<(), GuardError> {
    if v == 0 {
        return Err(GuardError::InvalidLimit {
            key,
            reason: "must be greater than zero".into(),
        });
    }
    Ok(())
}

impl LimitSettings {
    /// Check every key; the error names the first bad key (as spelled in the TOML).
    pub fn validate(&self) -> Result<Limits, GuardError> {
        nonzero("max_iterations", u64::from(self.max_iterations))?;
        nonzero("max_tokens_per_task", self.max_tokens_per_task)?;
        if !self.max_cost_usd.is_finite() || self.max_cost_usd < 0.0 {
            return Err(GuardError::InvalidLimit {
                key: "max_cost_usd",
                reason: format!("must be a finite number >= 0, got {}", self.max_cost_usd),
            });
        }
        nonzero("task_deadline_secs", self.task_deadline_secs)?;
        nonzero("command_timeout_secs", self.command_timeout_secs)?;
        nonzero("command_timeout_max_secs", self.command_timeout_max_secs)?;
        if self.command_timeout_secs > self.command_timeout_max_secs {
            return Err(GuardError::InvalidLimit {
                key: "command_timeout_secs",
                reason: format!(
                    "{} is greater than command_timeout_max_secs ({})",
                    self.command_timeout_secs, self.command_timeout_max_secs
                ),
            });
        }
        nonzero("output_cap_bytes", self.output_cap_bytes)?;
        nonzero("max_file_bytes", self.max_file_bytes)?;
        nonzero(
            "max_tool_calls_per_turn",
            u64::from(self.max_tool_calls_per_turn),
        )?;
        nonzero("max_tasks_per_user", u64::from(self.max_tasks_per_user))?;
        if !self.max_cost_usd_per_user_per_day.is_finite()
            || self.max_cost_usd_per_user_per_day < 0.0
        {
            return Err(GuardError::InvalidLimit {
                key: "max_cost_usd_per_user_per_day",
                reason: format!(
                    "must be a finite number >= 0, got {}",
                    self.max_cost_usd_per_user_per_day
                ),
            });
        }
        nonzero(
            "max_tokens_per_user_per_day",
            self.max_tokens_per_user_per_day,
        )?;
        Ok(Limits {
            max_iterations: self.max_iterations,
            max_tokens_per_task: self.max_tokens_per_task,
            max_cost_usd: self.max_cost_usd,
            task_deadline: Duration::from_secs(self.task_deadline_secs),
            command_timeout: Duration::from_secs(self.command_timeout_secs),
            command_timeout_max: Duration::from_secs(self.command_timeout_max_secs),
            output_cap_bytes: self.output_cap_bytes,
            max_file_bytes: self.max_file_bytes,
        })
    }
}

impl TryFrom<&LimitSettings> for Limits {
    type Error = GuardError;
    fn try_from(s: &LimitSettings) -> Result<Limits, GuardError> {
        s.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let l = LimitSettings::default().validate().expect("valid");
        assert_eq!(l.max_iterations, 50);
        assert_eq!(l.command_timeout, Duration::from_secs(60));
        assert_eq!(l.output_cap_bytes, 1 << 20);
        assert_eq!(l.max_file_bytes, 10 << 20);
    }

    fn bad_key(s: LimitSettings) -> &'static str {
        match s.validate() {
            Err(GuardError::InvalidLimit { key, .. }) => key,
            other => panic!("expected InvalidLimit, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let d = LimitSettings::default;
        assert_eq!(
            bad_key(LimitSettings {
                max_iterations: 0,
                ..d()
            }),
            "max_iterations"
        );
        assert_eq!(
            bad_key(LimitSettings {
                max_tokens_per_task: 0,
                ..d()
            }),
            "max_tokens_per_task"
        );
        assert_eq!(
            bad_key(LimitSettings {
                max_cost_usd: f64::NAN,
                ..d()
            }),
            "max_cost_usd"
        );
        assert_eq!(
            bad_key(LimitSettings {
                max_cost_usd: f64::INFINITY,
                ..d()
            }),
            "max_cost_usd"
        );
        assert_eq!(
            bad_key(LimitSettings {
                max_cost_usd: -1.0,
                ..d()
            }),
            "max_cost_usd"
        );
        assert_eq!(
            bad_key(LimitSettings {
                task_deadline_secs: 0,
                ..d()
            }),
            "task_deadline_secs"
        );
        assert_eq!(
            bad_key(LimitSettings {
                command_timeout_secs: 0,
                ..d()
            }),
            "command_timeout_secs"
        );
        assert_eq!(
            bad_key(LimitSettings {
                command_timeout_secs: 700,
                ..d()
            }),
            "command_timeout_secs"
        );
        assert_eq!(
            bad_key(LimitSettings {
                command_timeout_max_secs: 0,
                ..d()
            }),
            "command_timeout_max_secs"
        );
        assert_eq!(
            bad_key(LimitSettings {
                output_cap_bytes: 0,
                ..d()
            }),
            "output_cap_bytes"
        );
        assert_eq!(
            bad_key(LimitSettings {
                max_file_bytes: 0,
                ..d()
            }),
            "max_file_bytes"
        );
        assert!(
            LimitSettings {
                max_cost_usd: 0.0,
                ..d()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let s: LimitSettings =
            toml::from_str("max_iterations = 10\nmax_cost_usd = 1.5").expect("parse");
        assert_eq!(s.max_iterations, 10);
        assert_eq!(s.command_timeout_secs, 60);
        assert!(toml::from_str::<LimitSettings>("max_iteration = 10").is_err());
        let g: GuardSettings =
            toml::from_str("trusted = [\"ls\"]\nblocked = [\"npm publish\"]").expect("parse");
        assert_eq!(g.trusted, vec!["ls".to_string()]);
        assert!(toml::from_str::<GuardSettings>("trust = []").is_err());
    }
}
