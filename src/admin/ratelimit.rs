//! Login lockout: after `after` failures from one client address within the
//! lockout window that address is locked out for `lockout_secs`; after
//! `4 * after` failures from anywhere, every login is locked out likewise.
//! While locked, even the right password is refused.

use std::collections::HashMap;
use std::net::IpAddr;

const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    failures: u32,
    window_start: u64,
    locked_until: u64,
}

impl Counter {
    fn locked(&self, now: u64) -> bool {
        now < self.locked_until
    }
    fn fail(&mut self, now: u64, after: u32, lockout: u64) {
        if now >= self.window_start + lockout {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures += 1;
        if self.failures >= after {
            self.locked_until = now + lockout;
            self.failures = 0;
            self.window_start = now;
        }
    }
}

#[derive(Debug)]
pub struct LoginLimiter {
    after: u32,
    lockout_secs: u64,
    per_ip: HashMap<IpAddr, Counter>,
    global: Counter,
}

impl LoginLimiter {
    pub fn new(after: u32, lockout_secs: u64) -> Self {
        LoginLimiter {
            after: after.max(1),
            lockout_secs,
            per_ip: HashMap::new(),
            global: Counter::default(),
        }
    }

    /// Is a login attempt from `ip` refused right now?
    pub fn locked(&self, ip: IpAddr, now: u64) -> bool {
        self.global.locked(now) || self.per_ip.get(&ip).is_some_and(|c| c.locked(now))
    }

    pub fn record_failure(&mut self, ip: IpAddr, now: u64) {
        if self.per_ip.len() >= MAX_TRACKED {
            self.per_ip.retain(|_, c| c.locked(now));
        }
        self.per_ip
            .entry(ip)
            .or_default()
            .fail(now, self.after, self.lockout_secs);
        self.global
            .fail(now, self.after.saturating_mul(4), self.lockout_secs);
    }

    pub fn record_success(&mut self, ip: IpAddr) {
        self.per_ip.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_global() {
        let a: IpAddr = "192.168.1.2".parse().unwrap();
        let b: IpAddr = "192.168.1.3".parse().unwrap();
        let mut l = LoginLimiter::new(5, 900);
        for _ in 0..4 {
            l.record_failure(a, 1000);
        }
        assert!(!l.locked(a, 1000));
        l.record_failure(a, 1000);
        assert!(l.locked(a, 1000) && !l.locked(b, 1000));
        assert!(!l.locked(a, 1900));
        let mut l = LoginLimiter::new(2, 60);
        for i in 0..8u8 {
            l.record_failure(IpAddr::from([10, 0, 0, i]), 10);
        }
        assert!(l.locked(b, 10), "global lockout");
        assert!(!l.locked(b, 70));
    }
}
