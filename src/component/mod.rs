//! The common life of a component process (`coworkd component NAME`): harden, load
//! the configuration, serve its socket, answer health checks, reload on request,
//! and exit cleanly on `Shutdown` or SIGTERM.
//!
//! Each component's own work (audit trail, gateway, sandbox, admin page) plugs in
//! here; the lifecycle requests are answered here, once.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::audit::AuditService;
use crate::config::Config;
use crate::gateway::GatewayService;
use crate::ipc::{
    self, Component, ComponentRequest, ComponentResponse, ErrorCode, Health, Peer, Role, Service,
    WireError,
};
use crate::logging::{self, LogHandle, LogTarget};
use crate::paths::Paths;
use crate::sandbox::SandboxService;

/// Runs one component until it is told to stop.
pub fn run(
    component: Component,
    paths: Paths,
    log: LogTarget,
    delegated_cgroup: bool,
    lifeline_fd: Option<i32>,
) -> anyhow::Result<()> {
    if let Some(fd) = lifeline_fd {
        watch_lifeline(fd).context("watching the supervisor's lifeline")?;
    }
    crate::privs::harden_process().context("hardening the process")?;
    // The image's files and the owner's settings, decided the same way as the
    // supervisor decided them (owner settings that do not validate are left out).
    let loaded = paths
        .load_config()
        .with_context(|| format!("loading {}", paths.config.display()))?;
    let mut config = loaded.config;
    let log_handle = logging::init(component.name(), config.log.level, log);
    if let crate::config::OwnerState::Refused(e) = &loaded.owner {
        tracing::error!(problems = %e, "the owner's settings are not applied");
    }
    if delegated_cgroup && component == Component::Sandbox {
        // Before the self-test, which reports whether commands get a cgroup.
        match crate::sandbox::adopt_delegated(&config.sandbox.cgroup_root) {
            Ok(parent) => {
                tracing::info!(parent = %parent.display(), "delegated cgroup taken over for per-command cgroups");
                config.sandbox.cgroup_parent = Some(parent);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot use the delegated cgroup; commands get no cgroup")
            }
        }
    }

    let roles = Roles::start(component, &config, &paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(component, paths, config, log_handle, roles))
}

async fn serve(
    component: Component,
    paths: Paths,
    config: Config,
    log: LogHandle,
    roles: Roles,
) -> anyhow::Result<()> {
    let socket = paths.serve_socket(component);
    // 0660: the supervisor and peer components reach it through the shared group;
    // the directory around it (created by the supervisor) keeps everyone else out.
    let listener = ipc::bind_socket(&socket, 0o660)
        .with_context(|| format!("binding {}", socket.display()))?;
    share_with_group(&socket)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let service = Arc::new(Lifecycle {
        component,
        paths: paths.clone(),
        config: std::sync::Mutex::new(config),
        log,
        stop: stop_tx,
        summary: roles.summary(),
        roles,
    });
    let auth = Arc::new(crate::privs::component_peer_auth(component));
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "component started");
    // Only a component run as a systemd unit of its own (the sandbox on the
    // appliance) has a NOTIFY_SOCKET: tell systemd it serves, and feed the unit's
    // watchdog from this runtime, so a hung component is restarted by systemd.
    let mut notifier = crate::supervisor::notify::Notifier::new();
    notifier.ready();
    if let Some(every) = crate::supervisor::notify::Notifier::watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                notifier.watchdog();
            }
        });
    }

    let server = tokio::spawn(ipc::serve(
        listener,
        auth,
        Arc::clone(&service),
        stop_rx.clone(),
    ));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut stop_rx = stop_rx;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM received; stopping"),
        _ = stop_rx.wait_for(|s| *s) => tracing::info!("shutdown requested; stopping"),
    }
    let _ = service.stop.send(true);
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("component stopped");
    Ok(())
}

/// Exits the process at once when the supervisor closes the lifeline pipe
/// (`--lifeline-fd`, see supervisor/spawn.rs) or dies. A thread of its own, so
/// it works even when the component's event loop is stuck; `_exit` runs no
/// destructors and takes no locks a stuck thread may hold.
#[allow(unsafe_code)]
fn watch_lifeline(fd: i32) -> anyhow::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let stat = nix::sys::stat::fstat(fd).with_context(|| format!("fd {fd}"))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        anyhow::bail!("fd {fd} is not a pipe");
    }
    // SAFETY: the fd was inherited for exactly this purpose, is open (fstat
    // succeeded) and nothing else in this process owns it.
    let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
    // Not inherited further (the sandbox's commands must not hold it).
    nix::fcntl::fcntl(
        pipe.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .with_context(|| format!("fd {fd}: setting FD_CLOEXEC"))?;
    std::thread::Builder::new()
        .name("lifeline".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            // Returns on EOF, a byte or an error: the supervisor let go.
            while let Err(nix::errno::Errno::EINTR) = nix::unistd::read(pipe.as_raw_fd(), &mut byte)
            {
            }
            // SAFETY: _exit ends the process without running anything else.
            unsafe { libc::_exit(137) }
        })
        .context("starting the lifeline thread")?;
    Ok(())
}

/// The component's own work, beside the lifecycle every component shares.
#[derive(Debug, Default)]
struct Roles {
    sandbox: Option<Arc<SandboxService>>,
    gateway: Option<Arc<GatewayService>>,
    audit: Option<Arc<AuditService>>,
    admin: Option<Arc<crate::admin::appliance::AdminRole>>,
    /// Why this component cannot do its work at all (a file from a newer
    /// image): the answer to its keys, so the supervisor reports it.
    refused: Option<String>,
    /// The refused files, with the versions they have.
    refused_stores: Vec<crate::ipc::StoreStatus>,
}

impl Roles {
    fn start(component: Component, config: &Config, paths: &Paths) -> anyhow::Result<Roles> {
        let mut roles = Roles::default();
        if component == Component::Sandbox {
            let service = SandboxService::start(&config.sandbox, paths)
                .context("starting the sandbox service")?;
            tracing::info!(
                isolation = service.summary(),
                "sandbox self-test: {}",
                service.summary()
            );
            roles.sandbox = Some(Arc::new(service));
        }
        if component == Component::Audit {
            // $STATE/audit/{audit.db, audit.anchor, audit.anchor-slots}
            roles.audit = Some(Arc::new(AuditService::new(&paths.state_dir, &config.audit)));
        }
        if component == Component::Admin {
            roles.admin = Some(Arc::new(crate::admin::appliance::AdminRole::new(
                config, paths,
            )));
        }
        if component == Component::Gateway {
            let dir = paths.component_state_dir(component);
            let opened = GatewayService::open(
                &dir,
                config.gateway_settings(),
                config.webhook.clone(),
                config.profile.into(),
                Some(paths.component_socket(Component::Audit)),
            )
            .and_then(|g| g.with_agent(crate::gateway::tasks::runtime_setup(config, paths)))
            .with_context(|| format!("opening {}", dir.join("state.db").display()));
            match opened {
                Ok(service) => roles.gateway = Some(Arc::new(service)),
                // A state.db from a newer image: touching it could corrupt it,
                // and restarting will not help. Serve anyway, so the supervisor
                // hears why (as the answer to the keys) and reports it degraded.
                Err(e) => match crate::schema::SchemaError::too_new_in(&e) {
                    Some(too_new) => {
                        let sentence = too_new.to_string();
                        tracing::error!("{sentence}");
                        // Still listed, with the version it has.
                        roles.refused_stores = too_new
                            .found_version()
                            .map(|schema| crate::ipc::StoreStatus {
                                name: crate::gateway::state_db::FILE.to_string(),
                                file: dir
                                    .join(crate::gateway::state_db::FILE)
                                    .display()
                                    .to_string(),
                                schema,
                            })
                            .into_iter()
                            .collect();
                        roles.refused = Some(sentence);
                    }
                    None => return Err(e),
                },
            }
        }
        Ok(roles)
    }

    async fn install_keys(&self, bundle: crate::ipc::KeyBundle) -> ComponentResponse {
        if let Some(sentence) = &self.refused {
            return WireError::new(ErrorCode::Unavailable, sentence.clone()).into();
        }
        if let Some(audit) = &self.audit
            && let Err(e) = audit.install_keys(&bundle).await
        {
            tracing::error!(error = %e.message, "cannot take the audit key");
            return e.into();
        }
        if let Some(gateway) = &self.gateway {
            if let Err(e) = gateway.install_keys(&bundle) {
                return e.into();
            }
            gateway.record_migration().await;
            gateway.send_known_secrets().await;
            gateway.start_transports().await;
        }
        if let Some(admin) = &self.admin
            && let Err(e) = admin.install_keys(&bundle).await
        {
            tracing::error!(error = %e.message, "cannot start the admin page");
            return e.into();
        }
        ComponentResponse::Done
    }

    /// Ready: able to do its work (the gateway needs its vault key first, the
    /// admin page its TLS key).
    async fn ready(&self) -> bool {
        let admin = match &self.admin {
            Some(a) => a.is_running().await,
            None => true,
        };
        admin
            && self.gateway.as_ref().is_none_or(|g| g.has_keys())
            && self.audit.as_ref().is_none_or(|a| a.is_open())
    }

    /// What the component reports about itself in `coworkctl status`.
    fn summary(&self) -> Option<String> {
        self.sandbox.as_ref().map(|s| s.summary().to_string())
    }

    /// The files this component owns and their schema versions.
    async fn stores(&self) -> Vec<crate::ipc::StoreStatus> {
        let mut out = self.refused_stores.clone();
        if let Some(g) = &self.gateway {
            out.extend(g.stores());
        }
        if let Some(a) = &self.audit {
            out.extend(a.stores().await);
        }
        if let Some(a) = &self.admin {
            out.extend(a.stores());
        }
        out
    }
}

fn not_served(component: Component, what: &str) -> ComponentResponse {
    WireError::new(
        ErrorCode::BadRequest,
        format!("the {component} component does not serve {what} requests"),
    )
    .into()
}

/// Under per-component users, hands the socket to the shared group so the
/// supervisor and peers (its members) can connect; the peer table decides the rest.
fn share_with_group(socket: &std::path::Path) -> anyhow::Result<()> {
    let me = nix::unistd::getuid();
    if me.is_root() {
        return Ok(());
    }
    let Some(gid) = crate::privs::group_gid(crate::paths::SHARED_GROUP) else {
        return Ok(());
    };
    let member = nix::unistd::getgroups().is_ok_and(|groups| groups.contains(&gid));
    if member {
        std::os::unix::fs::chown(socket, None, Some(gid.as_raw())).with_context(|| {
            format!(
                "giving {} to group {}",
                socket.display(),
                crate::paths::SHARED_GROUP
            )
        })?;
    }
    Ok(())
}

/// The lifecycle half of every component's service.
struct Lifecycle {
    component: Component,
    paths: Paths,
    config: std::sync::Mutex<Config>,
    log: LogHandle,
    stop: watch::Sender<bool>,
    summary: Option<String>,
    roles: Roles,
}

impl Service for Lifecycle {
    type Request = ComponentRequest;
    type Response = ComponentResponse;

    fn role(&self) -> Role {
        self.component.role()
    }

    async fn handle(&self, peer: Peer, request: ComponentRequest) -> ComponentResponse {
        match request {
            ComponentRequest::Ping => ComponentResponse::Pong(Health {
                component: self.component,
                pid: std::process::id(),
                ready: self.roles.ready().await,
                summary: self.summary.clone(),
                stores: self.roles.stores().await,
            }),
            ComponentRequest::Reload => match self.paths.load_config().map(|l| l.config) {
                Ok(new) => {
                    // Channels whose secrets were missing get another try.
                    if let Some(gateway) = &self.roles.gateway {
                        gateway.start_transports().await;
                    }
                    self.log.set_level(new.log.level);
                    *self.config.lock().unwrap_or_else(|p| p.into_inner()) = new;
                    tracing::info!("configuration reloaded");
                    ComponentResponse::Done
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload refused; keeping the running configuration");
                    ComponentResponse::Error(WireError::new(ErrorCode::BadRequest, e.to_string()))
                }
            },
            ComponentRequest::Shutdown => {
                let _ = self.stop.send(true);
                ComponentResponse::Done
            }
            ComponentRequest::InstallKeys(bundle) => self.roles.install_keys(bundle).await,
            ComponentRequest::StatusUpdate(report) => match &self.roles.admin {
                Some(admin) => {
                    *admin.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(*report);
                    ComponentResponse::Done
                }
                None => not_served(self.component, "status"),
            },
            ComponentRequest::Admin(r) => match &self.roles.admin {
                Some(admin) => match admin.handle(r).await {
                    Ok(r) => ComponentResponse::Admin(r),
                    Err(e) => e.into(),
                },
                None => not_served(self.component, "admin"),
            },
            ComponentRequest::Gateway(r) => match &self.roles.gateway {
                Some(gateway) => gateway.handle(r).await,
                None => not_served(self.component, "gateway"),
            },
            ComponentRequest::Audit(r) => match &self.roles.audit {
                Some(audit) => audit.handle(&peer, r).await,
                None => not_served(self.component, "audit"),
            },
            ComponentRequest::Sandbox(r) => match &self.roles.sandbox {
                Some(sandbox) => sandbox.handle(r).await,
                None => not_served(self.component, "sandbox"),
            },
        }
    }
}
