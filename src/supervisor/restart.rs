//! The restart policy as a type: exponential backoff per component and the count of
//! recent restarts that decides "degraded".

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::SupervisorSettings;

/// A component that ran at least this long before dying starts over at the
/// initial backoff: one crash after a long, healthy run is not a crash loop.
pub const STABLE_UPTIME: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub burst: u32,
    pub window: Duration,
}

impl RestartPolicy {
    pub fn from_settings(s: &SupervisorSettings) -> RestartPolicy {
        RestartPolicy {
            initial: Duration::from_millis(s.restart_backoff_initial_ms),
            max: Duration::from_millis(s.restart_backoff_max_ms),
            burst: s.restart_burst,
            window: Duration::from_secs(s.restart_window_secs),
        }
    }
}

/// Restart history of one component.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    next_delay: Duration,
    recent: VecDeque<Instant>,
    total: u32,
}

impl RestartTracker {
    pub fn new(policy: &RestartPolicy) -> RestartTracker {
        RestartTracker {
            next_delay: policy.initial,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Records a death after `uptime` and returns how long to wait before the restart.
    pub fn on_exit(&mut self, now: Instant, uptime: Duration, policy: &RestartPolicy) -> Duration {
        if uptime >= STABLE_UPTIME {
            self.next_delay = policy.initial;
        }
        let delay = self.next_delay.min(policy.max);
        self.next_delay = (delay * 2).min(policy.max);
        self.recent.push_back(now);
        self.total = self.total.saturating_add(1);
        self.prune(now, policy);
        delay
    }

    /// Restarts within the window ending at `now`.
    pub fn recent(&mut self, now: Instant, policy: &RestartPolicy) -> u32 {
        self.prune(now, policy);
        u32::try_from(self.recent.len()).unwrap_or(u32::MAX)
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// The delay the next death would get.
    pub fn next_delay(&self) -> Duration {
        self.next_delay
    }

    /// More than `burst` restarts within the window.
    pub fn degraded(&mut self, now: Instant, policy: &RestartPolicy) -> bool {
        self.recent(now, policy) > policy.burst
    }

    fn prune(&mut self, now: Instant, policy: &RestartPolicy) {
        while let Some(first) = self.recent.front() {
            if now.duration_since(*first) > policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy::from_settings(&SupervisorSettings::default())
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let p = policy();
        let mut t = RestartTracker::new(&p);
        let start = Instant::now();
        let delays: Vec<u64> = (0..12)
            .map(|i| {
                t.on_exit(start + Duration::from_secs(i), Duration::ZERO, &p)
                    .as_millis() as u64
            })
            .collect();
        assert_eq!(&delays[..6], &[100, 200, 400, 800, 1600, 3200]);
        assert_eq!(*delays.last().unwrap(), 30_000);
    }

    #[test]
    fn degraded_after_burst_within_window_then_heals() {
        let p = policy();
        let mut t = RestartTracker::new(&p);
        let start = Instant::now();
        for i in 0..5 {
            t.on_exit(start + Duration::from_secs(i), Duration::ZERO, &p);
        }
        assert!(!t.degraded(start + Duration::from_secs(5), &p));
        t.on_exit(start + Duration::from_secs(6), Duration::ZERO, &p);
        assert!(t.degraded(start + Duration::from_secs(6), &p));
        assert!(!t.degraded(start + Duration::from_secs(120), &p));
    }

    #[test]
    fn stable_run_resets_backoff() {
        let p = policy();
        let mut t = RestartTracker::new(&p);
        let now = Instant::now();
        t.on_exit(now, Duration::ZERO, &p);
        t.on_exit(now, Duration::ZERO, &p);
        assert_eq!(t.on_exit(now, STABLE_UPTIME, &p), p.initial);
    }
}
