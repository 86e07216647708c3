//! The per-user message rate limit: a token bucket per (channel, sender), kept
//! in memory (only authorized senders get one, so the map is bounded by users).

use std::collections::HashMap;
use std::sync::Mutex;

/// One message costs 60 units; a second mints `per_minute` units: exact integers.
const UNIT: u64 = 60;
/// Above this many buckets, full ones (idle users) are dropped.
const MAX_BUCKETS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    last: i64,
}

/// Token buckets for every (channel, sender).
#[derive(Debug, Default)]
pub struct MessageLimiter {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl MessageLimiter {
    /// Takes one token; false when the sender is over `per_minute` (bucket `burst`).
    pub fn take(&self, channel: &str, sender: &str, now: i64, per_minute: u32, burst: u32) -> bool {
        let cap = u64::from(burst) * UNIT;
        let refill = |elapsed: u64| elapsed.saturating_mul(u64::from(per_minute));
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_BUCKETS {
            map.retain(|_, b| {
                let elapsed = u64::try_from(now.saturating_sub(b.last)).unwrap_or(0);
                b.units.saturating_add(refill(elapsed)) < cap
            });
        }
        let b = map
            .entry((channel.to_string(), sender.to_string()))
            .or_insert(Bucket {
                units: cap,
                last: now,
            });
        let elapsed = u64::try_from(now.saturating_sub(b.last)).unwrap_or(0);
        b.units = b.units.saturating_add(refill(elapsed)).min(cap);
        b.last = b.last.max(now);
        if b.units >= UNIT {
            b.units -= UNIT;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let l = MessageLimiter::default();
        for _ in 0..20 {
            assert!(l.take("t", "1", 100, 20, 20));
        }
        assert!(!l.take("t", "1", 100, 20, 20));
        assert!(l.take("t", "2", 100, 20, 20), "buckets are per sender");
        assert!(!l.take("t", "1", 102, 20, 20), "1 token per 3 s");
        assert!(l.take("t", "1", 103, 20, 20));
        assert!(!l.take("t", "1", 103, 20, 20));
        // A clock going backwards never mints tokens.
        assert!(!l.take("t", "1", 50, 20, 20));
    }
}
