//! Summarizing rejected webhook requests, so unauthenticated traffic cannot
//! flood the audit trail or the journal.
//!
//! The source of a rejection is its route (channel): behind the reverse tunnel
//! every peer is the tunnel, so the peer address says nothing. Per source and
//! per [`WINDOW_SECS`] window (on the dispatcher's clock), the first
//! [`FULL_PER_WINDOW`] rejections are audited one by one
//! (`gateway.webhook_rejected`); the rest are only counted, by reason, and
//! written as one `gateway.webhook_rejected_summary` entry (reason
//! `suppressed`, detail `N rejected: bad_signature=.., malformed=..`) when the
//! window is over — at the next rejection from any source, or when the
//! listener stops (the runner calls [`Rejections::flush`]). Nothing is dropped
//! silently: every rejection is either its own entry or part of a summary's
//! count.
//!
//! Bound: at most `FULL_PER_WINDOW + 1` entries per source per window, so three
//! routes write at most 3 × 21 = 63 entries an hour however many requests
//! arrive. The journal gets one line when a window starts suppressing and one
//! per summary.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::gateway::sinks::AuditEvent;

/// Length of a summary window.
pub const WINDOW_SECS: i64 = 3600;
/// Rejections per source per window audited one by one.
pub const FULL_PER_WINDOW: u32 = 20;

/// What to do with one rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Audit it in full.
    Audit,
    /// Counted for the window's summary; no entry now.
    Counted,
}

#[derive(Debug)]
struct Window {
    start: i64,
    seen: u32,
    /// Counted (not audited) rejections, by reason.
    suppressed: BTreeMap<&'static str, u64>,
}

/// Per-source rejection windows (one per webhook listener).
#[derive(Debug, Default)]
pub struct Rejections {
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl Rejections {
    /// Counts one rejection of `reason` on `channel` at `now`. Returns what to
    /// do with it and the summaries of windows that are over (to audit first).
    pub fn note(
        &self,
        channel: &'static str,
        reason: &'static str,
        now: i64,
    ) -> (Verdict, Vec<AuditEvent>) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let summaries = take_finished(&mut windows, now, false);
        let w = windows.entry(channel).or_insert_with(|| Window {
            start: now,
            seen: 0,
            suppressed: BTreeMap::new(),
        });
        w.seen = w.seen.saturating_add(1);
        let verdict = if w.seen <= FULL_PER_WINDOW {
            Verdict::Audit
        } else {
            if w.suppressed.is_empty() {
                tracing::warn!(
                    channel,
                    "webhook rejections over {FULL_PER_WINDOW} this window; counting the rest into a summary"
                );
            }
            *w.suppressed.entry(reason).or_insert(0) += 1;
            Verdict::Counted
        };
        (verdict, summaries)
    }

    /// Summaries of every window with counted rejections, over or not (for
    /// shutdown), and of those over at `now` otherwise.
    pub fn flush(&self, now: i64, all: bool) -> Vec<AuditEvent> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        take_finished(&mut windows, now, all)
    }
}

fn take_finished(
    windows: &mut HashMap<&'static str, Window>,
    now: i64,
    all: bool,
) -> Vec<AuditEvent> {
    let done: Vec<&'static str> = windows
        .iter()
        .filter(|(_, w)| all || now - w.start >= WINDOW_SECS || now < w.start)
        .map(|(c, _)| *c)
        .collect();
    let mut out = Vec::new();
    for channel in done {
        let Some(w) = windows.remove(channel) else {
            continue;
        };
        let total: u64 = w.suppressed.values().sum();
        if total == 0 {
            continue;
        }
        let by_reason: Vec<String> = w
            .suppressed
            .iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        let detail = format!(
            "{total} rejected without an entry of their own in {}s from {}: {}",
            WINDOW_SECS,
            w.start,
            by_reason.join(", ")
        );
        tracing::warn!(channel, "{detail}");
        let mut ev = AuditEvent::new("gateway.webhook_rejected_summary", "suppressed", channel);
        ev.detail = Some(detail);
        out.push(ev);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_twenty_audited_then_counted_then_one_summary() {
        let r = Rejections::default();
        for i in 0..FULL_PER_WINDOW {
            let (v, s) = r.note("slack", "bad_signature", 100 + i64::from(i));
            assert_eq!(v, Verdict::Audit);
            assert!(s.is_empty());
        }
        for _ in 0..1000 {
            assert_eq!(r.note("slack", "bad_signature", 200).0, Verdict::Counted);
        }
        assert_eq!(r.note("slack", "malformed", 200).0, Verdict::Counted);
        // Another source has its own window.
        assert_eq!(r.note("discord", "malformed", 200).0, Verdict::Audit);
        assert!(r.flush(200, false).is_empty(), "window not over");
        let (v, s) = r.note("telegram", "malformed", 100 + WINDOW_SECS);
        assert_eq!(v, Verdict::Audit);
        assert_eq!(s.len(), 1, "only slack suppressed anything");
        assert_eq!(s[0].channel, "slack");
        let d = s[0].detail.as_deref().unwrap();
        assert!(d.starts_with("1001 rejected"), "{d}");
        assert!(
            d.contains("bad_signature=1000") && d.contains("malformed=1"),
            "{d}"
        );
        // A new window audits again.
        assert_eq!(
            r.note("slack", "bad_signature", 100 + WINDOW_SECS).0,
            Verdict::Audit
        );
    }

    #[test]
    fn flush_all_writes_pending_counts() {
        let r = Rejections::default();
        for _ in 0..(FULL_PER_WINDOW + 5) {
            r.note("slack", "bad_signature", 10);
        }
        let s = r.flush(11, true);
        assert_eq!(s.len(), 1);
        assert!(s[0].detail.as_deref().unwrap().starts_with("5 rejected"));
        assert!(r.flush(11, true).is_empty());
    }
}
