//! Output capture for a spawned child: stdout and stderr with a cap each (the rest is
//! drained and dropped so the child never blocks), an optional control stream, a
//! wall-clock deadline and a cancel flag, all in one poll loop on the calling thread.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Cancels a running `run_with_cancel` from another thread (the agent's cancel).
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicU8>);

const NOT_CANCELLED: u8 = 0;
const GRACEFUL: u8 = 1;
const FORCED: u8 = 2;

impl CancelHandle {
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the run to kill the command at once; `run_with_cancel` returns
    /// `ExitKind::Killed`.
    pub fn cancel(&self) {
        self.0.store(FORCED, Ordering::SeqCst);
    }
    /// Asks the run to stop the command: SIGTERM first, the kill after
    /// [`TERM_GRACE`] if it is still there (a later [`CancelHandle::cancel`]
    /// kills at once).
    pub fn cancel_gracefully(&self) {
        let _ =
            self.0
                .compare_exchange(NOT_CANCELLED, GRACEFUL, Ordering::SeqCst, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) != NOT_CANCELLED
    }
    fn is_forced(&self) -> bool {
        self.0.load(Ordering::SeqCst) == FORCED
    }
}

/// What the kill callback of [`pump`] is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillStep {
    /// A graceful cancel: ask the command's processes to end (SIGTERM).
    Terminate,
    /// Kill everything now.
    Kill,
}

/// After a graceful cancel's SIGTERM, how long the command may take to end.
pub const TERM_GRACE: Duration = Duration::from_millis(1500);

/// One captured stream.
#[derive(Debug, Default)]
pub struct Captured {
    pub data: Vec<u8>,
    pub truncated: bool,
}

/// Why the loop stopped early, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Finished,
    TimedOut,
    Cancelled,
}

/// The result of [`pump`].
#[derive(Debug)]
pub struct Pumped {
    pub stdout: Captured,
    pub stderr: Captured,
    pub control: Captured,
    pub stop: Stop,
}

/// Poll tick: how quickly a cancel is noticed.
const TICK: Duration = Duration::from_millis(50);
/// After the kill, how long we still drain pipes held by dying processes.
const KILL_GRACE: Duration = Duration::from_secs(3);

struct Stream<R> {
    reader: Option<R>,
    cap: usize,
    out: Captured,
}

impl<R: Read + AsFd> Stream<R> {
    fn new(reader: Option<R>, cap: usize) -> io::Result<Self> {
        if let Some(r) = &reader {
            let flags = OFlag::from_bits_truncate(fcntl(r.as_fd().as_raw_fd(), FcntlArg::F_GETFL)?);
            fcntl(
                r.as_fd().as_raw_fd(),
                FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
            )?;
        }
        Ok(Self {
            reader,
            cap,
            out: Captured::default(),
        })
    }

    /// Reads what is available; closes the stream on EOF.
    fn drain(&mut self) -> io::Result<()> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => {
                    self.reader = None;
                    return Ok(());
                }
                Ok(n) => {
                    let room = self.cap.saturating_sub(self.out.data.len());
                    if n > room {
                        self.out.truncated = true;
                    }
                    self.out.data.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.reader.as_ref().map(|r| r.as_fd())
    }
}

/// Pumps the three streams until all are closed. At the deadline or on a forced
/// cancel it calls `kill(Kill)` once and keeps draining for a short grace period;
/// on a graceful cancel it calls `kill(Terminate)` first and `kill(Kill)` after
/// [`TERM_GRACE`] (or as soon as the cancel is forced).
#[allow(clippy::too_many_arguments)]
pub fn pump<A, B, C>(
    stdout: Option<A>,
    stderr: Option<B>,
    control: Option<C>,
    cap: usize,
    control_cap: usize,
    deadline: Instant,
    cancel: Option<&CancelHandle>,
    mut kill: impl FnMut(KillStep),
) -> io::Result<Pumped>
where
    A: Read + AsFd,
    B: Read + AsFd,
    C: Read + AsFd,
{
    let mut out = Stream::new(stdout, cap)?;
    let mut err = Stream::new(stderr, cap)?;
    let mut ctl = Stream::new(control, control_cap)?;
    let mut stop = Stop::Finished;
    let mut give_up: Option<Instant> = None;
    // Set after a graceful cancel's SIGTERM: when the kill follows.
    let mut terminating: Option<Instant> = None;
    loop {
        let fds_present = [out.fd(), err.fd(), ctl.fd()];
        if fds_present.iter().all(Option::is_none) {
            break;
        }
        let now = Instant::now();
        let cancelled = cancel.is_some_and(CancelHandle::is_cancelled);
        let forced = cancel.is_some_and(CancelHandle::is_forced);
        if stop == Stop::Finished {
            if cancelled && !forced && now < deadline {
                stop = Stop::Cancelled;
                kill(KillStep::Terminate);
                terminating = Some(now + TERM_GRACE);
            } else if cancelled || now >= deadline {
                stop = if cancelled {
                    Stop::Cancelled
                } else {
                    Stop::TimedOut
                };
                kill(KillStep::Kill);
                give_up = Some(now + KILL_GRACE);
            }
        } else if let Some(t) = terminating
            && (forced || now >= t || now >= deadline)
        {
            kill(KillStep::Kill);
            terminating = None;
            give_up = Some(now + KILL_GRACE);
        }
        if give_up.is_some_and(|g| now >= g) {
            break;
        }
        let limit = give_up
            .or(terminating)
            .unwrap_or(deadline)
            .saturating_duration_since(now)
            .min(TICK);
        let mut pollfds: Vec<PollFd> = fds_present
            .iter()
            .flatten()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let timeout =
            PollTimeout::try_from(limit.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut pollfds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        drop(pollfds);
        out.drain()?;
        err.drain()?;
        ctl.drain()?;
    }
    Ok(Pumped {
        stdout: out.out,
        stderr: err.out,
        control: ctl.out,
        stop,
    })
}
