//! The running gateway: one [`Dispatcher`] for every channel, the channels
//! the configuration names (`[channels.NAME.transport]`), each started
//! through its platform ([`crate::gateway::channels::Channel`]), and the
//! webhook listener when one of them needs it. Started once the supervisor
//! has sent the keys (the vault holds the platform tokens); stopped with the
//! component.

use std::sync::Arc;

pub use super::channels::SecretLookup;
use super::channels::{InboundPath, Start, registry};
use super::dispatch::Dispatcher;
use super::error::GatewayError;
use super::outbound::Replies;
use super::settings::{GatewaySettings, TransportKind};
use super::transport::pacer::{Pacer, TransportProblems};
use super::transport::webhook::{self, Hooks, WebhookSettings};

/// A channel whose transport runs.
#[derive(Debug, Clone)]
pub struct StartedChannel {
    pub channel: String,
    pub kind: TransportKind,
}

/// Handles on everything started; dropping it stops nothing, `stop` does.
#[derive(Debug)]
pub struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    pub webhook_addr: Option<std::net::SocketAddr>,
    pub started: Vec<StartedChannel>,
    /// Channels whose transport could not start, and why.
    pub failed: Vec<(String, GatewayError)>,
    /// What the started transports' loops are retrying, by channel.
    pub problems: TransportProblems,
}

impl Running {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Starts every configured transport and, if one needs it, the webhook listener.
pub async fn start(
    settings: &GatewaySettings,
    webhook_settings: &WebhookSettings,
    dispatcher: Arc<Dispatcher>,
    secrets: Arc<dyn SecretLookup>,
    replies: &Replies,
) -> Result<Running, GatewayError> {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let hooks = Hooks::new(Arc::clone(&dispatcher));
    let mut routes: Vec<(&'static str, axum::routing::MethodRouter)> = Vec::new();
    let mut started = Vec::new();
    let mut failed = Vec::new();
    let problems = TransportProblems::default();
    for (name, ch) in &settings.channels {
        let t = &ch.transport;
        if !ch.enabled || t.kind == TransportKind::None {
            continue;
        }
        // One channel that cannot start (a missing token, say) does not keep
        // the others down.
        let begun = registry::platform(t.kind)
            .zip(registry::spec(t.kind))
            .ok_or_else(|| GatewayError::Settings {
                channel: name.clone(),
                field: "transport.kind",
                reason: format!("no platform serves {:?}", t.kind),
            })
            .and_then(|(platform, spec)| {
                let taken = spec
                    .webhook_route
                    .filter(|r| routes.iter().any(|(p, _)| p == r));
                if let Some(route) = taken {
                    return Err(GatewayError::Settings {
                        channel: name.clone(),
                        field: "transport.kind",
                        reason: format!(
                            "another channel already serves {route} on the webhook listener"
                        ),
                    });
                }
                let ctx = Start {
                    name,
                    spec,
                    transport: t,
                    secrets: &secrets,
                    dispatcher: &dispatcher,
                    hooks: &hooks,
                };
                platform.start(&ctx).map(|s| (spec, s))
            });
        match begun {
            Ok((spec, channel)) => {
                // The way out first: the first message's answer takes it.
                replies.register(name, channel.outbound);
                match channel.inbound {
                    InboundPath::Loop(run) => {
                        tokio::spawn(run(Pacer::new(name, &problems), stop_rx.clone()));
                    }
                    InboundPath::Webhook(route) => {
                        if let Some(path) = spec.webhook_route {
                            routes.push((path, *route));
                        }
                    }
                }
                started.push(StartedChannel {
                    channel: name.clone(),
                    kind: t.kind,
                });
            }
            Err(e) => failed.push((name.clone(), e)),
        }
    }

    let running: Vec<&str> = started.iter().map(|s| s.channel.as_str()).collect();
    replies.retain(&running);

    let mut webhook_addr = None;
    if !routes.is_empty() {
        // A listener being stopped (reload, re-key) may hold the port a moment.
        let mut tries = 0;
        let listener = loop {
            match webhook::bind(webhook_settings).await {
                Ok(l) => break l,
                Err(e) if tries >= 20 => return Err(e),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        webhook_addr = listener.local_addr().ok();
        let router = webhook::router(routes);
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = webhook::serve(listener, router, shutdown).await {
                tracing::error!(error = %e, "webhook listener stopped");
            }
            // Rejections counted but not yet summarized are audited, not dropped.
            hooks.flush().await;
        });
    }
    Ok(Running {
        stop,
        webhook_addr,
        started,
        failed,
        problems,
    })
}
