//! The supervisor (`coworkd` with no subcommand).
//!
//! Role: starts the components in dependency order (audit first), restarts a dead
//! one with exponential backoff, marks the appliance degraded when one crash-loops,
//! pings every component and tells systemd READY/WATCHDOG/STATUS/STOPPING, reloads
//! the configuration on SIGHUP, stops everything in reverse order on SIGTERM, and
//! serves `coworkctl` on the control socket.
//! Privileges: started as root it switches each component to its own user; it
//! checks the runtime and state directories (on the appliance tmpfiles.d makes
//! them, with their owners; elsewhere it makes them itself) and keeps no open
//! database. It ends a component by closing its lifeline pipe, not by a signal.
//! Peers: every component (as their lifecycle client) and `coworkctl`.
//!
//! On the appliance the sandbox is not our child: it runs as a systemd unit of
//! its own (`cowork-sandbox.service`, `--external-sandbox`), because building
//! each command's namespaces needs what this unit is better without (user and
//! mount namespaces, @mount, a delegated cgroup subtree). We wait for it to
//! answer, watch it, and leave starting, stopping and restarting it to systemd.

mod control;
mod keys;
mod lock;
pub(crate) mod notify;
mod restart;
mod settings;
mod spawn;
mod updates;

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{Notify, watch};

use crate::audit::AuditLog;
use crate::config::{self, Config};
use crate::ipc::{
    Client, Component, ComponentRequest, ComponentResponse, ComponentState, ComponentStatus, Role,
    StatusReport,
};
use crate::logging::{self, LogHandle, LogTarget};
use crate::paths::{Paths, SHARED_GROUP};
use crate::privs::{self, RunAs};

pub use restart::{RestartPolicy, RestartTracker, STABLE_UPTIME};

/// Consecutive missed health checks after which a component is killed and restarted.
const MAX_MISSED_PINGS: u32 = 3;

/// How the supervisor was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Paths,
    /// The executable started for components; normally this very binary. Tests
    /// point it at a wrapper to simulate a component that keeps dying.
    pub component_exe: Option<PathBuf>,
    /// The sandbox is run by systemd (cowork-sandbox.service) and serves its
    /// socket in this directory; `$RUNTIME/sandbox` becomes a link to it.
    pub external_sandbox: Option<PathBuf>,
}

type ComponentClient = Client<ComponentRequest, ComponentResponse>;

/// What the supervisor knows of one component.
#[derive(Debug)]
struct Slot {
    state: ComponentState,
    pid: Option<u32>,
    tracker: RestartTracker,
    missed_pings: u32,
    user: String,
    degraded: bool,
    summary: Option<String>,
    /// Why its last start was refused (its answer to the keys), until it is up.
    refused: Option<String>,
    /// The files it owns and their schema versions, from its last health answer.
    stores: Vec<crate::ipc::StoreStatus>,
    /// Dropping it ends the running child (see spawn.rs); `None` between runs.
    lifeline: Option<spawn::Lifeline>,
}

/// State shared by the main loop, the component tasks and the control server.
struct Shared {
    paths: Paths,
    exe: PathBuf,
    log_target: LogTarget,
    started: Instant,
    config: Mutex<Config>,
    slots: Mutex<BTreeMap<Component, Slot>>,
    clients: BTreeMap<Component, Arc<ComponentClient>>,
    /// Wakes the main loop when a component changes state.
    changed: Notify,
    /// Where each running value came from (`settings show`).
    origins: Mutex<settings::Origins>,
    /// One reload or settings change at a time.
    applying: tokio::sync::Mutex<()>,
    log: LogHandle,
    /// Bumped to have a component's task restart it in order (new settings).
    restarts: BTreeMap<Component, watch::Sender<u64>>,
    keys: keys::Keys,
    /// Lifecycle events go to the audit trail, queued while it (re)starts.
    audit: AuditLog,
    /// The sandbox runs as a systemd unit of its own (not spawned here).
    external_sandbox: bool,
}

impl Shared {
    fn config(&self) -> Config {
        lock(&self.config).clone()
    }

    fn policy(&self) -> RestartPolicy {
        RestartPolicy::from_settings(&lock(&self.config).supervisor)
    }

    fn update(&self, c: Component, f: impl FnOnce(&mut Slot)) {
        if let Some(slot) = lock(&self.slots).get_mut(&c) {
            f(slot);
        }
        self.changed.notify_one();
    }

    /// Whether systemd, not this supervisor, runs `c` (see the module doc).
    fn is_external(&self, c: Component) -> bool {
        c == Component::Sandbox && self.external_sandbox
    }

    /// Kills a component so its task restarts it (e.g. it could not take new keys).
    /// Not one systemd runs: its unit decides about its life.
    fn kill(&self, c: Component) {
        if self.is_external(c) {
            return;
        }
        let lifeline = lock(&self.slots)
            .get_mut(&c)
            .and_then(|s| s.lifeline.take());
        drop(lifeline);
    }

    fn report(&self) -> StatusReport {
        let now = Instant::now();
        let policy = self.policy();
        let profile = lock(&self.config).profile.name().to_string();
        // Read before taking the slots' lock (a file read, and the config's lock).
        let update_dir = lock(&self.config).update.state_dir.clone();
        let update_stores = crate::update::state::stores(&update_dir);
        let mut slots = lock(&self.slots);
        let components: Vec<ComponentStatus> = slots
            .iter_mut()
            .map(|(c, s)| ComponentStatus {
                component: *c,
                state: s.state,
                pid: s.pid,
                restarts: s.tracker.total(),
                recent_restarts: s.tracker.recent(now, &policy),
                backoff_ms: u64::try_from(s.tracker.next_delay().as_millis()).unwrap_or(u64::MAX),
                user: s.user.clone(),
                summary: s.summary.clone(),
            })
            .collect();
        let disk = crate::ipc::DiskStatus {
            free_bytes: crate::sandbox::disk::free_bytes(&self.paths.state_dir).ok(),
            reserve_bytes: lock(&self.config).sandbox.disk_reserve_bytes,
        };
        let mut degraded_because = Vec::new();
        for (c, s) in slots.iter_mut() {
            if s.tracker.degraded(now, &policy) {
                degraded_because.push(format!(
                    "the {c} component restarted {} in the last {} (more than {}): it keeps failing and is restarted with a growing delay; see its log (journalctl -u coworkd COMPONENT={c})",
                    crate::plural(u64::from(s.tracker.recent(now, &policy)), "time", "times"),
                    crate::plural(policy.window.as_secs(), "second", "seconds"),
                    policy.burst
                ));
            }
        }
        for (c, s) in slots.iter() {
            if let Some(why) = &s.refused {
                degraded_because.push(format!("the {c} component cannot start: {why}"));
            }
        }
        if let (true, Some(free)) = (disk.low(), disk.free_bytes) {
            degraded_because.push(format!(
                "the data disk has {} free, under its reserve of {} ([sandbox] disk_reserve_bytes): workspaces may not grow until files are deleted",
                mib(free),
                mib(disk.reserve_bytes)
            ));
        }
        let degraded = !degraded_because.is_empty();
        StatusReport {
            version: crate::VERSION.to_string(),
            profile,
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            ready: components.iter().all(|c| c.state == ComponentState::Up),
            degraded,
            degraded_because,
            disk,
            keystore: self.keys.status(),
            // Per-command cgroups are the sandbox's business: it gets a delegated
            // subtree from its own unit, or goes without (dev, tests, containers).
            cgroups: if self.external_sandbox {
                "delegated to the sandbox's own unit (cowork-sandbox.service)".to_string()
            } else {
                "none delegated (the sandbox runs as the supervisor's child)".to_string()
            },
            components,
            // Every file the appliance keeps with its schema version: the
            // components' (as they last reported them), then the update state.
            stores: slots
                .values()
                .flat_map(|s| s.stores.clone())
                .chain(update_stores)
                .collect(),
        }
    }
}

/// Runs the supervisor until SIGTERM/SIGINT. Returns after an orderly stop.
pub fn run(opts: Options) -> anyhow::Result<()> {
    privs::harden_process().context("hardening the supervisor process")?;
    let loaded = opts
        .paths
        .load_config()
        .with_context(|| format!("loading {}", opts.paths.config.display()))?;
    let config = loaded.config.clone();
    let log_target = LogTarget::detect();
    let log = logging::init("supervisor", config.log.level, log_target);
    if let config::OwnerState::Refused(e) = &loaded.owner {
        // The image's settings run alone, so the admin page comes up to fix it.
        for p in &e.problems {
            tracing::error!(problem = %p, "the owner's settings are not applied");
        }
    }

    let mut plans = BTreeMap::new();
    for c in Component::START_ORDER {
        plans.insert(
            c,
            privs::run_as(c, config.profile)
                .with_context(|| format!("planning the {c} component"))?,
        );
    }
    // Before touching anything in them: a second coworkd on these directories
    // would take over the first one's sockets.
    let _instance = lock::take(&[&opts.paths.runtime_dir, &opts.paths.state_dir])?;
    prepare_dirs(&opts.paths, &plans, opts.external_sandbox.as_deref())?;
    let keys = keys::Keys::open(&config, &opts.paths)?;
    let exe = match &opts.component_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("finding our own executable")?,
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let launch = Launch {
        exe,
        log_target,
        external_sandbox: opts.external_sandbox.is_some(),
    };
    runtime.block_on(supervise(opts.paths, launch, loaded, plans, log, keys))
}

/// Creates the runtime and state directories with owners and modes that keep each
/// component to its own corner.
fn prepare_dirs(
    paths: &Paths,
    plans: &BTreeMap<Component, Option<RunAs>>,
    external_sandbox: Option<&Path>,
) -> anyhow::Result<()> {
    let shared_gid = privs::group_gid(SHARED_GROUP).map(|g| g.as_raw());
    let per_user = plans.values().any(Option::is_some);
    // Runtime dir: 0755 when components have their own users (coworkctl reaches the
    // control socket; each component dir below is locked), 0700 otherwise.
    mkdir(
        &paths.runtime_dir,
        if per_user { 0o755 } else { 0o700 },
        None,
    )?;
    mkdir(&paths.state_dir, if per_user { 0o755 } else { 0o700 }, None)?;
    mkdir(&paths.supervisor_state_dir(), 0o700, None)?;
    // The owner's settings: written here, read by every component.
    if let Some(dir) = paths.owner_settings().parent() {
        mkdir(dir, if per_user { 0o755 } else { 0o700 }, None)?;
    }
    for (c, plan) in plans {
        if let (Component::Sandbox, Some(target)) = (c, external_sandbox) {
            // Its unit makes its runtime and state directories (owned by it).
            link(&paths.component_runtime_dir(*c), target)?;
            continue;
        }
        let owner = plan.as_ref().map(|r| (r.uid, shared_gid.unwrap_or(r.gid)));
        mkdir(
            &paths.component_runtime_dir(*c),
            if per_user { 0o750 } else { 0o700 },
            owner,
        )?;
        let state_owner = plan.as_ref().map(|r| (r.uid, r.gid));
        mkdir(&paths.component_state_dir(*c), 0o700, state_owner)?;
    }
    Ok(())
}

fn mkdir(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    let meta = std::fs::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
    let owner_ok = owner.is_none_or(|(uid, gid)| meta.uid() == uid && meta.gid() == gid);
    if owner_ok && meta.mode() & 0o7777 == mode {
        return Ok(());
    }
    // Run as root without systemd (development): take the directory back, set
    // its mode as its owner, then hand it over. The shipped unit grants no
    // CAP_CHOWN; there tmpfiles.d creates each directory right and this is
    // not reached (a wrong one fails here with the path named).
    if owner.is_some() {
        chown(path, Some(0), Some(0))
            .with_context(|| format!("changing the owner of {}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid))
            .with_context(|| format!("changing the owner of {}", path.display()))?;
    }
    Ok(())
}

/// `link` -> `target`, replacing whatever `link` was (a directory left by a
/// run that spawned the sandbox itself, or an old link).
fn link(link: &Path, target: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(link).is_ok_and(|t| t == target) {
                return Ok(());
            }
            std::fs::remove_file(link)
        }
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(link),
        Ok(_) => std::fs::remove_file(link),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .with_context(|| format!("replacing {}", link.display()))?;
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

/// How components are started: which executable, where they log.
struct Launch {
    exe: PathBuf,
    log_target: LogTarget,
    external_sandbox: bool,
}

async fn supervise(
    paths: Paths,
    launch: Launch,
    loaded: config::Loaded,
    plans: BTreeMap<Component, Option<RunAs>>,
    log: LogHandle,
    keys: keys::Keys,
) -> anyhow::Result<()> {
    let Launch {
        exe,
        log_target,
        external_sandbox,
    } = launch;
    let config = loaded.config.clone();
    let mut notifier = notify::Notifier::new();
    let policy = RestartPolicy::from_settings(&config.supervisor);
    let health_timeout = Duration::from_millis(config.supervisor.health_timeout_ms);
    let mut restarts = BTreeMap::new();

    let mut slots = BTreeMap::new();
    let mut clients = BTreeMap::new();
    for c in Component::START_ORDER {
        let user = plans[&c]
            .as_ref()
            .map_or_else(current_user_name, |r| r.user.clone());
        slots.insert(
            c,
            Slot {
                state: ComponentState::Starting,
                pid: None,
                tracker: RestartTracker::new(&policy),
                missed_pings: 0,
                user,
                degraded: false,
                summary: None,
                refused: None,
                stores: Vec::new(),
                lifeline: None,
            },
        );
        clients.insert(
            c,
            Arc::new(Client::new(
                paths.component_socket(c),
                Role::Supervisor,
                health_timeout,
            )),
        );
        restarts.insert(c, watch::channel(0u64).0);
    }
    let shared = Arc::new(Shared {
        paths: paths.clone(),
        exe,
        log_target,
        started: Instant::now(),
        config: Mutex::new(config.clone()),
        slots: Mutex::new(slots),
        clients,
        changed: Notify::new(),
        origins: Mutex::new(settings::Origins::of(&loaded)),
        applying: tokio::sync::Mutex::new(()),
        log,
        restarts,
        keys,
        audit: AuditLog::start(paths.component_socket(Component::Audit), Role::Supervisor),
        external_sandbox,
    });
    updates::check_boot_at_start(config.update.clone(), shared.audit.clone());
    shared
        .audit
        .record(
            "supervisor.started",
            "supervisor",
            "",
            serde_json::json!({"version": crate::VERSION, "profile": config.profile.name(), "keystore": shared.keys.status()}),
        )
        .await;

    let control = control::start(Arc::clone(&shared), plans[&Component::Admin].as_ref())
        .context("starting the control socket")?;
    tracing::info!(version = crate::VERSION, profile = config.profile.name(), runtime = %paths.runtime_dir.display(), "supervisor starting");

    // One task per component; each waits until the one before it in START_ORDER
    // has answered once, so the audit trail is up before anything writes to it.
    let mut stops = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    let mut gate: Option<watch::Receiver<bool>> = None;
    for c in Component::START_ORDER {
        let (stop_tx, stop_rx) = watch::channel(None);
        let (settled_tx, settled_rx) = watch::channel(false);
        let task = tokio::spawn(component_task(
            Arc::clone(&shared),
            c,
            plans[&c].clone(),
            gate.take(),
            settled_tx,
            stop_rx,
        ));
        gate = Some(settled_rx);
        stops.insert(c, stop_tx);
        tasks.insert(c, task);
    }

    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let mut interval = health_interval(&config);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_degraded = false;

    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM received; stopping"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT received; stopping"); break; }
            _ = sighup.recv() => {
                // Off this loop: restarts are waited for, and the loop feeds the watchdog.
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { settings::reload(&shared, "SIGHUP").await });
            }
            _ = tick.tick() => {
                if health_round(&shared).await {
                    notifier.watchdog();
                }
                send_status_to_admin(&shared);
                let new_interval = health_interval(&shared.config());
                if new_interval != interval {
                    interval = new_interval;
                    tick = tokio::time::interval(interval);
                }
            }
            _ = shared.changed.notified() => {}
        }
        // After every event: readiness, watchdog, status line, degraded transitions.
        let report = shared.report();
        if report.ready {
            notifier.ready();
        }
        notifier.status(&status_line(&report));
        if report.degraded != was_degraded {
            was_degraded = report.degraded;
            if report.degraded {
                for c in report
                    .components
                    .iter()
                    .filter(|c| c.recent_restarts > shared.policy().burst)
                {
                    tracing::error!(
                        child = c.component.name(),
                        recent_restarts = c.recent_restarts,
                        "APPLIANCE DEGRADED: component is crash-looping; the others keep running"
                    );
                }
                if report.disk.low() {
                    tracing::error!(
                        free_bytes = report.disk.free_bytes,
                        reserve_bytes = report.disk.reserve_bytes,
                        "APPLIANCE DEGRADED: the data disk is down to its reserve; workspaces may not grow until files are deleted"
                    );
                }
            } else {
                tracing::warn!("appliance no longer degraded");
                shared
                    .audit
                    .record(
                        "appliance.recovered",
                        "supervisor",
                        "",
                        serde_json::json!({}),
                    )
                    .await;
            }
        }
    }

    notifier.stopping();
    shared
        .audit
        .record(
            "supervisor.stopping",
            "supervisor",
            "",
            serde_json::json!({}),
        )
        .await;
    if !shared.audit.flush(Duration::from_secs(2)).await {
        tracing::warn!("some audit entries could not be delivered before the stop");
    }
    let stop_timeout = Duration::from_secs(shared.config().supervisor.stop_timeout_secs);
    let deadline = tokio::time::Instant::now() + stop_timeout;
    for c in Component::START_ORDER.iter().rev() {
        if let Some(stop) = stops.get(c) {
            let _ = stop.send(Some(deadline));
        }
        if let Some(task) = tasks.remove(c) {
            // The task itself kills its child at the deadline; the extra second only
            // guards against a task that cannot finish.
            let _ = tokio::time::timeout_at(deadline + Duration::from_secs(1), task).await;
        }
    }
    control.stop();
    tracing::info!("supervisor stopped");
    Ok(())
}

/// `1.5 MiB`: a byte count for people.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn health_interval(config: &Config) -> Duration {
    let configured = Duration::from_millis(config.supervisor.health_interval_ms);
    // systemd wants a ping at least every WatchdogSec; send at twice that rate.
    match notify::Notifier::watchdog_interval() {
        Some(w) => configured.min(w / 2),
        None => configured,
    }
}

fn status_line(r: &StatusReport) -> String {
    let up = r
        .components
        .iter()
        .filter(|c| c.state == ComponentState::Up)
        .count();
    let mut line = format!(
        "{up}/{} components up, keystore: {}",
        r.components.len(),
        r.keystore
    );
    if r.degraded {
        line.push_str(", DEGRADED");
    }
    if r.disk.low() {
        line.push_str(", data disk at its reserve");
    }
    line
}

/// Pings every started component; all answering → WATCHDOG=1. A component that
/// misses several in a row is killed so the restart logic brings it back.
/// Returns whether every component answered.
async fn health_round(shared: &Arc<Shared>) -> bool {
    let targets: Vec<(Component, u32)> = lock(&shared.slots)
        .iter()
        .filter(|(_, s)| matches!(s.state, ComponentState::Up | ComponentState::Unresponsive))
        .filter_map(|(c, s)| s.pid.map(|p| (*c, p)))
        .collect();
    let mut pings = tokio::task::JoinSet::new();
    for (c, pid) in targets {
        let client = Arc::clone(&shared.clients[&c]);
        pings.spawn(async move {
            let health = match client.call(ComponentRequest::Ping).await {
                Ok(ComponentResponse::Pong(h)) if h.pid == pid => Some(h),
                _ => None,
            };
            (c, pid, health)
        });
    }
    let results = pings.join_all().await;
    let mut all_answered = results.len() == Component::START_ORDER.len();
    for (c, pid, health) in results {
        let ok = health.is_some();
        all_answered &= ok;
        let mut kill = false;
        let external = shared.is_external(c);
        shared.update(c, |s| {
            if s.pid != Some(pid) {
                return;
            }
            if let Some(h) = health {
                s.missed_pings = 0;
                s.state = ComponentState::Up;
                s.summary = h.summary;
                s.stores = h.stores;
                s.refused = None;
            } else {
                s.missed_pings += 1;
                s.state = ComponentState::Unresponsive;
                kill = s.missed_pings >= MAX_MISSED_PINGS && !external;
            }
        });
        if kill {
            tracing::error!(
                child = c.name(),
                pid,
                "{c}: component stopped answering health checks; ending it"
            );
            shared.kill(c);
        }
    }
    all_answered
}

/// The admin page shows component health and the keystore tier; it hears them
/// from us after each health round (best effort: it may be restarting).
fn send_status_to_admin(shared: &Arc<Shared>) {
    let up = lock(&shared.slots)
        .get(&Component::Admin)
        .is_some_and(|s| s.state == ComponentState::Up);
    if !up {
        return;
    }
    let report = Box::new(shared.report());
    let client = Arc::clone(&shared.clients[&Component::Admin]);
    tokio::spawn(async move {
        let _ = client.call(ComponentRequest::StatusUpdate(report)).await;
    });
}

/// Keeps one component alive: spawn, wait until it answers, wait for its death,
/// back off, repeat, until told to stop.
async fn component_task(
    shared: Arc<Shared>,
    c: Component,
    run_as: Option<RunAs>,
    gate: Option<watch::Receiver<bool>>,
    settled_tx: watch::Sender<bool>,
    mut stop: watch::Receiver<Option<tokio::time::Instant>>,
) {
    if let Some(mut gate) = gate {
        // Wait until the component before us has settled its first start: up, or
        // dead (a crash-looping audit must not keep the admin page from coming up
        // to show it).
        tokio::select! {
            _ = gate.wait_for(|settled| *settled) => {}
            _ = stop.changed() => return,
        }
    }
    if shared.is_external(c) {
        return external_component_task(shared, c, settled_tx, stop).await;
    }
    let client = Arc::clone(&shared.clients[&c]);
    let mut restart = shared.restarts[&c].subscribe();
    loop {
        let started = Instant::now();
        let spawned = spawn::command(
            &shared.exe,
            c,
            &shared.paths,
            shared.log_target,
            run_as.as_ref(),
        )
        .and_then(|(mut cmd, lifeline)| Ok((cmd.spawn()?, lifeline)));
        let mut child = match spawned {
            Ok((child, lifeline)) => {
                shared.update(c, |s| s.lifeline = Some(lifeline));
                child
            }
            Err(e) => {
                tracing::error!(child = c.name(), error = %e, "{c}: spawn failed");
                let _ = settled_tx.send(true);
                if !backoff(&shared, c, started, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let pid = child.id();
        tracing::info!(child = c.name(), pid, "{c}: component spawned");
        let restarts = lock(&shared.slots).get(&c).map_or(0, |s| s.tracker.total());
        let kind = if restarts == 0 {
            "component.started"
        } else {
            "component.restarted"
        };
        let user = run_as
            .as_ref()
            .map_or_else(current_user_name, |r| r.user.clone());
        shared
            .audit
            .record(
                kind,
                "supervisor",
                c.name(),
                serde_json::json!({"pid": pid, "user": user, "restarts": restarts}),
            )
            .await;
        shared.update(c, |s| {
            s.state = ComponentState::Starting;
            s.pid = pid;
            s.missed_pings = 0;
        });

        // Starting: poll its health until it answers, or it dies, or we stop.
        let ready = first_answer(&shared, c, &client, pid, Duration::from_millis(10), || {});
        let exited = tokio::select! {
            answer = ready => match answer {
                Ok(health) => {
                    shared.update(c, |s| {
                        s.summary = health.summary;
                        s.stores = health.stores;
                        s.refused = None;
                    });
                    None
                }
                Err(refused) => {
                    // It cannot start as it is (its address taken, say): stop it
                    // and try again after the backoff a crash gets, saying why
                    // once per attempt rather than at the polling rate.
                    tracing::error!(child = c.name(), reason = %refused, "{c}: failed: {refused}");
                    shared.update(c, |s| {
                        s.summary = Some(format!("failed: {refused}"));
                        s.refused = Some(refused.0.clone());
                    });
                    let timeout = Duration::from_secs(shared.config().supervisor.stop_timeout_secs);
                    stop_child(&shared, c, &client, &mut child, tokio::time::Instant::now() + timeout).await;
                    shared
                        .audit
                        .record(
                            "component.start_failed",
                            "supervisor",
                            c.name(),
                            serde_json::json!({"pid": pid, "reason": refused.0}),
                        )
                        .await;
                    let _ = settled_tx.send(true);
                    if !backoff(&shared, c, started, &mut stop).await {
                        return;
                    }
                    continue;
                }
            },
            status = child.wait() => Some(status),
            deadline = stop_deadline(&mut stop) => {
                stop_child(&shared, c, &client, &mut child, deadline).await;
                shared.update(c, |s| { s.state = ComponentState::Stopped; s.pid = None; s.lifeline = None; });
                return;
            }
        };
        let status = match exited {
            Some(status) => status,
            None => {
                tracing::info!(child = c.name(), pid, "{c}: component up");
                shared.update(c, |s| s.state = ComponentState::Up);
                let _ = settled_tx.send(true);
                tokio::select! {
                    status = child.wait() => status,
                    deadline = stop_deadline(&mut stop) => {
                        stop_child(&shared, c, &client, &mut child, deadline).await;
                        shared.update(c, |s| { s.state = ComponentState::Stopped; s.pid = None; s.lifeline = None; });
                        return;
                    }
                    Ok(()) = restart.changed() => {
                        // New settings: an orderly stop and a start at once,
                        // not a crash (no backoff, no restart counted).
                        let timeout = Duration::from_secs(shared.config().supervisor.stop_timeout_secs);
                        stop_child(&shared, c, &client, &mut child, tokio::time::Instant::now() + timeout).await;
                        shared.update(c, |s| { s.state = ComponentState::Starting; s.pid = None; s.lifeline = None; });
                        tracing::info!(child = c.name(), "{c}: restarting with the new settings");
                        shared
                            .audit
                            .record(
                                "component.restarting",
                                "supervisor",
                                c.name(),
                                serde_json::json!({"pid": pid, "why": "settings"}),
                            )
                            .await;
                        continue;
                    }
                }
            }
        };
        let _ = settled_tx.send(true);
        let how = match &status {
            Ok(s) => s.to_string(),
            Err(e) => format!("wait failed: {e}"),
        };
        shared
            .audit
            .record(
                "component.exited",
                "supervisor",
                c.name(),
                serde_json::json!({"pid": pid, "status": how, "uptime_ms": started.elapsed().as_millis() as u64}),
            )
            .await;
        match status {
            Ok(s) => {
                tracing::error!(child = c.name(), pid, status = %s, "{c}: component exited")
            }
            Err(e) => {
                tracing::error!(child = c.name(), pid, error = %e, "{c}: waiting for component failed")
            }
        }
        if !backoff(&shared, c, started, &mut stop).await {
            return;
        }
    }
}

/// Polls a starting component until it answers (as process `pid`, when known)
/// and has taken its keys: what "up" means. `waiting` runs after every miss.
/// A component that answers its keys with an error cannot start: that ends
/// the wait.
async fn first_answer(
    shared: &Shared,
    c: Component,
    client: &ComponentClient,
    pid: Option<u32>,
    poll: Duration,
    mut waiting: impl FnMut(),
) -> Result<crate::ipc::Health, keys::StartRefused> {
    let mut complained = Instant::now();
    loop {
        let answer = client
            .call_with_timeout(ComponentRequest::Ping, Duration::from_millis(500))
            .await;
        let problem = match answer {
            Ok(ComponentResponse::Pong(h)) if pid.is_none_or(|p| p == h.pid) => {
                // Its files are listed even if it refuses to start (a file
                // from a newer image is shown with the version it has).
                shared.update(c, |s| s.stores = h.stores.clone());
                match shared.keys.install(c, client).await {
                    Ok(()) => return Ok(h),
                    Err(e) => match e.downcast::<keys::StartRefused>() {
                        Ok(refused) => return Err(refused),
                        Err(e) => format!("installing its keys failed: {e:#}"),
                    },
                }
            }
            Ok(other) => format!("unexpected answer {other:?}"),
            Err(e) => crate::error_chain(&e),
        };
        waiting();
        if complained.elapsed() > Duration::from_secs(5) {
            complained = Instant::now();
            tracing::warn!(child = c.name(), %problem, "{c}: component not answering health checks yet");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Watches a component that systemd runs as a unit of its own: wait until it
/// answers, hand it its keys, and when it has stopped answering (its unit's
/// Restart= and WatchdogSec= bring up a new one) wait for the next instance.
/// Never spawns, stops or signals it.
async fn external_component_task(
    shared: Arc<Shared>,
    c: Component,
    settled_tx: watch::Sender<bool>,
    mut stop: watch::Receiver<Option<tokio::time::Instant>>,
) {
    /// The components after it start anyway after this long, so a missing or
    /// failing unit does not keep the admin page from showing it.
    const SETTLE_AFTER: Duration = Duration::from_secs(10);
    let client = Arc::clone(&shared.clients[&c]);
    let waiting_since = Instant::now();
    let mut instances: u64 = 0;
    loop {
        shared.update(c, |s| {
            s.state = ComponentState::Starting;
            s.pid = None;
            s.missed_pings = 0;
        });
        let answered = first_answer(
            &shared,
            c,
            &client,
            None,
            Duration::from_millis(100),
            || {
                if waiting_since.elapsed() > SETTLE_AFTER {
                    let _ = settled_tx.send(true);
                }
            },
        );
        let health = tokio::select! {
            h = answered => match h {
                Ok(h) => h,
                Err(refused) => {
                    // Its unit runs it; all we can do is say why and ask again
                    // no faster than a crashed component restarts.
                    tracing::error!(child = c.name(), reason = %refused, "{c}: failed: {refused}");
                    shared.update(c, |s| {
                        s.summary = Some(format!("failed: {refused}"));
                        s.refused = Some(refused.0.clone());
                    });
                    let _ = settled_tx.send(true);
                    if !backoff(&shared, c, Instant::now(), &mut stop).await {
                        return;
                    }
                    continue;
                }
            },
            _ = stop_deadline(&mut stop) => {
                shared.update(c, |s| { s.state = ComponentState::Stopped; s.pid = None; s.lifeline = None; });
                return;
            }
        };
        let kind = if instances == 0 {
            "component.started"
        } else {
            "component.restarted"
        };
        instances += 1;
        shared
            .audit
            .record(
                kind,
                "supervisor",
                c.name(),
                serde_json::json!({"pid": health.pid, "user": lock(&shared.slots).get(&c).map(|s| s.user.clone()), "run_by": "systemd"}),
            )
            .await;
        tracing::info!(
            child = c.name(),
            pid = health.pid,
            "{c}: component up (its own systemd unit)"
        );
        shared.update(c, |s| {
            s.state = ComponentState::Up;
            s.pid = Some(health.pid);
            s.summary = health.summary;
            s.stores = health.stores;
            s.refused = None;
        });
        let _ = settled_tx.send(true);
        // The health rounds ping it; after MAX_MISSED_PINGS misses it is gone.
        let lost = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let missed = lock(&shared.slots).get(&c).map_or(0, |s| s.missed_pings);
                if missed >= MAX_MISSED_PINGS {
                    return;
                }
            }
        };
        tokio::select! {
            _ = lost => {}
            _ = stop_deadline(&mut stop) => {
                shared.update(c, |s| { s.state = ComponentState::Stopped; s.pid = None; s.lifeline = None; });
                return;
            }
        }
        tracing::error!(
            child = c.name(),
            pid = health.pid,
            "{c}: component stopped answering; waiting for systemd to restart its unit"
        );
        shared
            .audit
            .record(
                "component.lost",
                "supervisor",
                c.name(),
                serde_json::json!({"pid": health.pid, "run_by": "systemd"}),
            )
            .await;
    }
}

/// Resolves when the supervisor asks this component to stop, with the deadline.
async fn stop_deadline(
    stop: &mut watch::Receiver<Option<tokio::time::Instant>>,
) -> tokio::time::Instant {
    match stop.wait_for(Option::is_some).await {
        Ok(d) => d.unwrap_or_else(tokio::time::Instant::now),
        // The sender is gone: the supervisor is exiting; stop now.
        Err(_) => tokio::time::Instant::now(),
    }
}

/// Records a death and sleeps out the backoff. False when told to stop meanwhile.
async fn backoff(
    shared: &Arc<Shared>,
    c: Component,
    started: Instant,
    stop: &mut watch::Receiver<Option<tokio::time::Instant>>,
) -> bool {
    let policy = shared.policy();
    let mut delay = Duration::ZERO;
    shared.update(c, |s| {
        delay = s
            .tracker
            .on_exit(Instant::now(), started.elapsed(), &policy);
        s.state = ComponentState::Backoff;
        s.pid = None;
        s.lifeline = None;
        let degraded = s.tracker.degraded(Instant::now(), &policy);
        if degraded && !s.degraded {
            tracing::error!(
                child = c.name(),
                restarts = s.tracker.total(),
                "{c}: component restarted more than {} in {}",
                crate::plural(u64::from(policy.burst), "time", "times"),
                crate::plural(policy.window.as_secs(), "second", "seconds")
            );
        }
        s.degraded = degraded;
    });
    tracing::warn!(
        child = c.name(),
        delay_ms = delay.as_millis() as u64,
        "{c}: restarting after backoff"
    );
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stop_deadline(stop) => false,
    }
}

/// Orderly stop of one component: ask over IPC, else cut its lifeline; a
/// signal at the deadline is the last resort (it needs CAP_KILL, which the
/// unit does not give; a development instance has it).
async fn stop_child(
    shared: &Shared,
    c: Component,
    client: &ComponentClient,
    child: &mut tokio::process::Child,
    deadline: tokio::time::Instant,
) {
    let asked = tokio::time::timeout_at(
        deadline,
        client.call_with_timeout(ComponentRequest::Shutdown, Duration::from_millis(500)),
    )
    .await;
    if !matches!(asked, Ok(Ok(ComponentResponse::Done))) {
        shared.kill(c);
    }
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(_) => tracing::info!(child = c.name(), "{c}: component stopped"),
        Err(_) => {
            tracing::error!(
                child = c.name(),
                "{c}: component did not stop in time; killing it"
            );
            let _ = child.kill().await;
        }
    }
}

fn current_user_name() -> String {
    let uid = nix::unistd::Uid::effective();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
