//! Password-check limits (owner login, setup token, current password on the
//! password page), all under one rule:
//!
//! - **Per address:** a check is *reserved* before the password is hashed, so
//!   at most `after` checks from one client address run per window, however
//!   many requests arrive at once. When `after` of them have failed the
//!   address is locked out for `lockout_secs` from the last failure (even the
//!   right password is refused); a right password clears the address's count.
//!   A window with fewer failures ends `lockout_secs` after its first check.
//! - **Across all addresses:** a token bucket of `per_minute` checks that
//!   refills one token every `60 / per_minute` seconds. It slows guessing from
//!   many addresses but never locks anyone out for long: once attacks stop,
//!   the next check is admitted within `60 / per_minute` seconds, and one
//!   address alone (at most `after` checks) cannot drain it when
//!   `per_minute > after`.
//!
//! Everything happens under one lock, so a reservation and its refusal are
//! atomic.

use std::collections::HashMap;
use std::net::IpAddr;

const MAX_TRACKED: usize = 4096;
/// Bucket arithmetic in sixtieths of a token, so each second's refill
/// (`per_minute / 60` tokens) is exact.
const UNIT: u64 = 60;

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    /// Checks reserved and not finished yet.
    in_flight: u32,
    /// Failed checks in the current window.
    failures: u32,
    window_start: u64,
    locked_until: u64,
}

impl Counter {
    fn locked(&self, now: u64) -> bool {
        now < self.locked_until
    }
    fn idle(&self, now: u64) -> bool {
        self.in_flight == 0 && !self.locked(now)
    }
}

/// Why a check was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address used its checks for the window (or is locked out).
    AddressLocked,
    /// The global bucket is empty; a check is admitted again within seconds.
    Busy,
}

/// An admitted password check; hand it back to [`LoginLimiter::finish`].
#[derive(Debug)]
#[must_use = "a reserved check must be finished"]
pub struct Ticket {
    ip: IpAddr,
}

/// The outcome of a finished check, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Passed,
    Failed,
    /// This failure started a lockout of the address (reported once).
    LockedOut {
        until: u64,
    },
}

#[derive(Debug)]
pub struct LoginLimiter {
    after: u32,
    lockout_secs: u64,
    per_ip: HashMap<IpAddr, Counter>,
    per_minute: u64,
    /// Tokens in sixtieths; capacity `per_minute * UNIT`.
    tokens: u64,
    refilled_at: u64,
}

impl LoginLimiter {
    pub fn new(after: u32, lockout_secs: u64, per_minute: u32, now: u64) -> Self {
        let per_minute = u64::from(per_minute.max(1));
        LoginLimiter {
            after: after.max(1),
            lockout_secs,
            per_ip: HashMap::new(),
            per_minute,
            tokens: per_minute * UNIT,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.refilled_at);
        let cap = self.per_minute * UNIT;
        let add = elapsed.saturating_mul(self.per_minute);
        self.tokens = self.tokens.saturating_add(add).min(cap);
        self.refilled_at = self.refilled_at.max(now);
    }

    /// Reserve one password check for `ip`, or say why not. Call before hashing.
    /// Only admitted checks create an entry, so the table is bounded by the
    /// bucket (a refused flood from many addresses adds nothing).
    pub fn reserve(&mut self, ip: IpAddr, now: u64) -> Result<Ticket, Refusal> {
        let mut c = self.per_ip.get(&ip).copied().unwrap_or_default();
        if c.locked(now) {
            return Err(Refusal::AddressLocked);
        }
        if now >= c.window_start.saturating_add(self.lockout_secs) {
            c.failures = 0;
            c.window_start = now;
        }
        if c.in_flight.saturating_add(c.failures) >= self.after {
            return Err(Refusal::AddressLocked);
        }
        self.refill(now);
        if self.tokens < UNIT {
            return Err(Refusal::Busy);
        }
        self.tokens -= UNIT;
        c.in_flight += 1;
        if self.per_ip.len() >= MAX_TRACKED {
            let window = self.lockout_secs;
            self.per_ip
                .retain(|_, c| !c.idle(now) || now < c.window_start.saturating_add(window));
        }
        self.per_ip.insert(ip, c);
        Ok(Ticket { ip })
    }

    /// Record the result of a reserved check.
    pub fn finish(&mut self, ticket: Ticket, passed: bool, now: u64) -> Finished {
        let c = self.per_ip.entry(ticket.ip).or_default();
        c.in_flight = c.in_flight.saturating_sub(1);
        if passed {
            c.failures = 0;
            c.locked_until = 0;
            if c.in_flight == 0 {
                self.per_ip.remove(&ticket.ip);
            }
            return Finished::Passed;
        }
        c.failures = c.failures.saturating_add(1);
        if c.failures >= self.after && !c.locked(now) {
            c.locked_until = now.saturating_add(self.lockout_secs);
            return Finished::LockedOut {
                until: c.locked_until,
            };
        }
        Finished::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_lockout_and_release() {
        let (a, b) = (ip("192.168.1.2"), ip("192.168.1.3"));
        let mut l = LoginLimiter::new(5, 900, 100, 1000);
        for i in 0..5 {
            let t = l.reserve(a, 1000).unwrap();
            let f = l.finish(t, false, 1000);
            assert_eq!(f == Finished::LockedOut { until: 1900 }, i == 4, "{i}");
        }
        assert_eq!(l.reserve(a, 1000).unwrap_err(), Refusal::AddressLocked);
        assert_eq!(l.reserve(a, 1899).unwrap_err(), Refusal::AddressLocked);
        let t = l.reserve(b, 1000).unwrap();
        assert_eq!(l.finish(t, true, 1000), Finished::Passed);
        let t = l.reserve(a, 1900).expect("lockout over");
        assert_eq!(l.finish(t, true, 1900), Finished::Passed);
    }

    /// The race of issue 16: reservations, not results, are counted.
    #[test]
    fn concurrent_reservations_are_capped() {
        let a = ip("10.0.0.9");
        let mut l = LoginLimiter::new(5, 900, 1000, 0);
        let tickets: Vec<_> = (0..100).filter_map(|_| l.reserve(a, 0).ok()).collect();
        assert_eq!(tickets.len(), 5);
        let started = tickets
            .into_iter()
            .map(|t| l.finish(t, false, 0))
            .filter(|f| matches!(f, Finished::LockedOut { .. }))
            .count();
        assert_eq!(started, 1, "one lockout report");
        assert!(l.reserve(a, 0).is_err());
    }

    #[test]
    fn a_right_password_clears_the_count() {
        let a = ip("10.0.0.9");
        let mut l = LoginLimiter::new(3, 900, 1000, 0);
        for _ in 0..2 {
            let t = l.reserve(a, 0).unwrap();
            l.finish(t, false, 0);
        }
        let t = l.reserve(a, 0).unwrap();
        l.finish(t, true, 0);
        for _ in 0..2 {
            let t = l.reserve(a, 0).unwrap();
            assert_eq!(l.finish(t, false, 0), Finished::Failed);
        }
    }

    #[test]
    fn failures_expire_with_the_window() {
        let a = ip("10.0.0.9");
        let mut l = LoginLimiter::new(2, 60, 1000, 0);
        let t = l.reserve(a, 0).unwrap();
        l.finish(t, false, 0);
        let t = l.reserve(a, 60).unwrap();
        assert_eq!(l.finish(t, false, 60), Finished::Failed, "new window");
    }

    /// The global brake: many addresses drain the bucket, which refills one
    /// check per 60/per_minute seconds; no address is locked by others.
    #[test]
    fn global_bucket_slows_without_locking() {
        let mut l = LoginLimiter::new(5, 900, 10, 0);
        let mut admitted = 0;
        for i in 0..50u8 {
            let a = IpAddr::from([10, 0, 0, i]);
            for _ in 0..5 {
                if let Ok(t) = l.reserve(a, 0) {
                    admitted += 1;
                    l.finish(t, false, 0);
                }
            }
        }
        assert_eq!(admitted, 10);
        let owner = ip("192.168.1.50");
        assert_eq!(l.reserve(owner, 5).unwrap_err(), Refusal::Busy);
        let t = l.reserve(owner, 6).expect("one token after 6 s");
        l.finish(t, true, 6);
        // Never more than the capacity, however long idle.
        for i in 0..20u8 {
            let _ = l.reserve(IpAddr::from([10, 1, 0, i]), 1_000_000);
        }
        assert_eq!(l.tokens, 0);
        assert!(l.reserve(owner, 1_000_000).is_err());
    }

    /// Hostile: a flood from 10,000 addresses (IPv6 makes them cheap) once
    /// the bucket is empty adds no entries.
    #[test]
    fn refused_floods_add_no_state() {
        let mut l = LoginLimiter::new(5, 900, 20, 0);
        for i in 0..10_000u32 {
            let a = IpAddr::from(std::net::Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i)));
            if let Ok(t) = l.reserve(a, 0) {
                l.finish(t, false, 0);
            }
        }
        assert_eq!(l.per_ip.len(), 20);
    }

    /// A clock that steps back does not mint tokens or panic.
    #[test]
    fn clock_going_back_is_harmless() {
        let a = ip("10.0.0.9");
        let mut l = LoginLimiter::new(5, 900, 1, 1000);
        let t = l.reserve(a, 1000).unwrap();
        l.finish(t, false, 1000);
        assert_eq!(l.reserve(a, 10).unwrap_err(), Refusal::Busy);
        assert_eq!(l.reserve(a, 1059).unwrap_err(), Refusal::Busy);
        assert!(l.reserve(a, 1060).is_ok());
    }
}
