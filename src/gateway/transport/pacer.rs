//! How a channel transport's loop retries: at a bounded rate, and visibly.
//! Every loop that talks to a platform (Telegram long polling, Slack Socket
//! Mode, the Discord Gateway) goes through a [`Pacer`]: a failure waits 1 s
//! doubling to 60 s, a session that ends at once with nothing is followed by
//! a pause (a platform closing every connection at once, or answering a long
//! poll at once, must not turn into a loop of requests), and
//! the last problem is kept in [`TransportProblems`] for `coworkctl` and the
//! admin page until the next success.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::gateway::error::GatewayError;
use crate::gateway::sinks::BoxFuture;

/// The first wait after a failure.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between tries.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// A session or poll that ended sooner than this with nothing is followed by
/// a pause to make up the difference.
const SHORTEST_SESSION: Duration = Duration::from_secs(1);

/// Each channel's current transport problem, by channel name (none: working).
#[derive(Debug, Clone, Default)]
pub struct TransportProblems(Arc<Mutex<BTreeMap<String, String>>>);

impl TransportProblems {
    /// What is wrong with `channel`'s transport now, if anything.
    pub fn get(&self, channel: &str) -> Option<String> {
        self.lock().get(channel).cloned()
    }

    fn set(&self, channel: &str, problem: Option<String>) {
        let mut map = self.lock();
        match problem {
            Some(p) => {
                map.insert(channel.to_string(), p);
            }
            None => {
                map.remove(channel);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One transport loop's pacing and its visible state.
#[derive(Debug)]
pub struct Pacer {
    channel: String,
    problems: TransportProblems,
    wait: Duration,
}

impl Pacer {
    pub fn new(channel: &str, problems: &TransportProblems) -> Pacer {
        Pacer {
            channel: channel.to_string(),
            problems: problems.clone(),
            wait: FIRST_WAIT,
        }
    }

    /// For a loop run on its own (tests): its problems go nowhere.
    pub fn unobserved(channel: &str) -> Pacer {
        Pacer::new(channel, &TransportProblems::default())
    }

    /// It worked: the problem is cleared and the next failure waits 1 s.
    pub fn worked(&mut self) {
        self.wait = FIRST_WAIT;
        self.problems.set(&self.channel, None);
    }

    /// Shows `problem` for a connection that works but needs the owner (a
    /// Signal sender paused until the owner confirms a safety number), or
    /// clears it; the pacing is unchanged.
    pub fn show(&mut self, problem: Option<String>) {
        self.problems.set(&self.channel, problem);
    }

    /// It failed with `problem` (a sentence without secrets): recorded, then
    /// waits. False when `shutdown` came first.
    pub async fn failed(&mut self, problem: &str, shutdown: &mut watch::Receiver<bool>) -> bool {
        let wait = self.wait;
        self.wait = (self.wait * 2).min(LONGEST_WAIT);
        self.problems.set(
            &self.channel,
            Some(format!(
                "{problem}; trying again in {} s",
                wait.as_secs().max(1)
            )),
        );
        pause(wait, shutdown).await
    }

    /// A session (or poll) that began at `began` ended without an error;
    /// `brought_anything` says whether it delivered anything. One that ended
    /// at once with nothing waits out the rest of a second, so the loop runs
    /// at most once a second however fast the platform answers. False when
    /// `shutdown` came first.
    pub async fn ended(
        &mut self,
        began: Instant,
        brought_anything: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        self.worked();
        let lasted = began.elapsed();
        if brought_anything || lasted >= SHORTEST_SESSION {
            return true;
        }
        pause(SHORTEST_SESSION - lasted, shutdown).await
    }
}

/// The loop of a transport that polls: `poll` (given `state`) until
/// `shutdown`; a poll that brought something is followed at once, one that
/// brought nothing within a second waits out the second ([`Pacer::ended`]),
/// a failure is logged as `what` failing and backs off ([`Pacer::failed`]).
pub async fn run_polls<S, F>(
    mut pacer: Pacer,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    mut state: S,
    mut poll: F,
) where
    F: for<'a> FnMut(&'a mut S) -> BoxFuture<'a, Result<usize, GatewayError>>,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        let began = Instant::now();
        let go_on = tokio::select! {
            _ = shutdown.changed() => return,
            r = poll(&mut state) => match r {
                Ok(n) => pacer.ended(began, n > 0, &mut shutdown).await,
                Err(e) => {
                    tracing::warn!(error = %e, "{what} failed");
                    pacer.failed(&e.to_string(), &mut shutdown).await
                }
            }
        };
        if !go_on {
            return;
        }
    }
}

/// Waits `wait`, or less if `shutdown` turns true (then false).
async fn pause(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = shutdown.wait_for(|s| *s) => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_wait_doubling_to_a_minute_and_show_until_success() {
        let problems = TransportProblems::default();
        let mut p = Pacer::new("tg", &problems);
        let (_tx, mut rx) = watch::channel(false);
        let mut waits = Vec::new();
        for _ in 0..8 {
            let t = tokio::time::Instant::now();
            assert!(p.failed("HTTP 401", &mut rx).await);
            waits.push(t.elapsed().as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(
            problems.get("tg").as_deref(),
            Some("HTTP 401; trying again in 60 s")
        );
        p.worked();
        assert_eq!(problems.get("tg"), None);
        let t = tokio::time::Instant::now();
        assert!(p.failed("again", &mut rx).await);
        assert_eq!(t.elapsed().as_secs(), 1, "success resets the wait");
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_that_end_at_once_are_paced() {
        let mut p = Pacer::unobserved("slack");
        let (_tx, mut rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            assert!(p.ended(Instant::now(), false, &mut rx).await);
        }
        // At most one a second (the clock is paused: the pauses are whole).
        assert!(
            start.elapsed() >= Duration::from_millis(9_900),
            "{:?}",
            start.elapsed()
        );
        // One that brought something goes on at once.
        let t = tokio::time::Instant::now();
        assert!(p.ended(Instant::now(), true, &mut rx).await);
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let mut p = Pacer::unobserved("discord");
        let (tx, mut rx) = watch::channel(false);
        let _ = tx.send(true);
        assert!(!p.failed("x", &mut rx).await);
        assert!(!p.ended(Instant::now(), false, &mut rx).await);
    }
}
