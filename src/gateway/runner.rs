//! The running gateway: one [`Dispatcher`] for every channel, the transports the
//! configuration names (`[channels.NAME.transport]`), and the webhook listener.
//! Started once the supervisor has sent the keys (the vault holds the platform
//! tokens); stopped with the component.

use std::sync::Arc;

use super::channels::Redacted;
use super::channels::discord::Discord;
use super::channels::slack::Slack;
use super::channels::telegram::Telegram;
use super::dispatch::Dispatcher;
use super::error::GatewayError;
use super::settings::{GatewaySettings, TransportKind, TransportSettings};
use super::tasks::{Outbound, Replies};
use super::transport::HttpConfig;
use super::transport::discord::DiscordClient;
use super::transport::discord_gateway::{DiscordGateway, GatewayConfig, run_gateway};
use super::transport::pacer::{Pacer, TransportProblems};
use super::transport::slack::SlackClient;
use super::transport::slack_socket::{SocketModeClient, run_socket_mode};
use super::transport::telegram::{TelegramClient, run_polling};
use super::transport::webhook::{
    self, DiscordWebhook, SlackWebhook, TelegramWebhook, WebhookApp, WebhookSettings,
};

/// Reads a named secret from the vault.
pub trait SecretLookup: Send + Sync {
    fn secret(&self, name: &str) -> Result<Redacted, GatewayError>;
}

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

fn missing(channel: &str, what: &'static str) -> GatewayError {
    GatewayError::Settings {
        channel: channel.to_string(),
        field: "transport",
        reason: format!("{what} is required for this transport"),
    }
}

fn secret_of(
    secrets: &dyn SecretLookup,
    channel: &str,
    name: &Option<String>,
    what: &'static str,
) -> Result<Redacted, GatewayError> {
    let name = name.as_deref().ok_or_else(|| missing(channel, what))?;
    secrets.secret(name)
}

fn http_config(channel: &str, t: &TransportSettings) -> Result<HttpConfig, GatewayError> {
    let mut cfg = HttpConfig::new(
        t.api_base
            .clone()
            .unwrap_or_else(|| t.kind.default_base().to_string()),
    );
    if let Some(path) = &t.ca_file {
        cfg.extra_root_pem = Some(std::fs::read(path).map_err(|e| GatewayError::Settings {
            channel: channel.to_string(),
            field: "transport.ca_file",
            reason: format!("{}: {e}", path.display()),
        })?);
    }
    Ok(cfg)
}

/// A random secret token for a polling-mode Telegram parser (its webhook
/// verifier is never used then).
fn unused_secret_token() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..32)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
        .collect()
}

/// Starts every configured transport and, if one needs it, the webhook listener.
pub async fn start(
    settings: &GatewaySettings,
    webhook_settings: &WebhookSettings,
    dispatcher: Arc<Dispatcher>,
    secrets: &dyn SecretLookup,
    replies: &Replies,
) -> Result<Running, GatewayError> {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut app = WebhookApp {
        dispatcher: Arc::clone(&dispatcher),
        telegram: None,
        slack: None,
        discord: None,
    };
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
        let pacer = Pacer::new(name, &problems);
        match start_channel(
            name,
            t,
            &dispatcher,
            secrets,
            &stop_rx,
            &mut app,
            replies,
            pacer,
        ) {
            Ok(()) => started.push(StartedChannel {
                channel: name.clone(),
                kind: t.kind,
            }),
            Err(e) => failed.push((name.clone(), e)),
        }
    }

    let mut webhook_addr = None;
    let needs_webhook = settings
        .channels
        .values()
        .any(|c| c.enabled && c.transport.kind.uses_webhook());
    if needs_webhook {
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
        let dispatcher = app.dispatcher.clone();
        let (router, rejections) = webhook::router_with_rejections(Arc::new(app));
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = webhook::serve(listener, router, shutdown).await {
                tracing::error!(error = %e, "webhook listener stopped");
            }
            // Rejections counted but not yet summarized are audited, not dropped.
            for ev in rejections.flush(dispatcher.clock().now(), true) {
                if let Err(e) = dispatcher.trail().event(ev).await {
                    tracing::error!(error = %e, "audit of the webhook rejection summary failed");
                }
            }
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

#[allow(clippy::too_many_arguments)] // one caller; the channel re-cut (issue 20) replaces it
fn start_channel(
    name: &str,
    t: &TransportSettings,
    dispatcher: &Arc<Dispatcher>,
    secrets: &dyn SecretLookup,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
    app: &mut WebhookApp,
    replies: &Replies,
    pacer: Pacer,
) -> Result<(), GatewayError> {
    let http = http_config(name, t)?;
    match t.kind {
        TransportKind::None => {}
        TransportKind::TelegramPolling | TransportKind::TelegramWebhook => {
            let token = secret_of(secrets, name, &t.token_secret, "token_secret")?;
            let bot_id = token
                .expose()
                .split_once(':')
                .and_then(|(id, _)| id.parse::<i64>().ok())
                .unwrap_or(0);
            let client = Arc::new(TelegramClient::new(&http, token)?);
            replies.register(name, Arc::clone(&client) as Arc<dyn Outbound>);
            let bot = t.bot_user.clone().unwrap_or_default();
            if t.kind == TransportKind::TelegramPolling {
                let parser = Arc::new(Telegram::new(&unused_secret_token(), bot_id, &bot)?);
                tokio::spawn(run_polling(
                    client,
                    parser,
                    Arc::clone(dispatcher),
                    25,
                    pacer,
                    stop_rx.clone(),
                ));
            } else {
                let secret = secret_of(secrets, name, &t.signing_secret, "signing_secret")?;
                app.telegram = Some(TelegramWebhook {
                    verifier: Telegram::new(secret.expose(), bot_id, &bot)?,
                    client,
                });
            }
        }
        TransportKind::SlackEvents | TransportKind::SlackSocket => {
            let token = secret_of(secrets, name, &t.token_secret, "token_secret")?;
            let signing = match &t.signing_secret {
                Some(_) => secret_of(secrets, name, &t.signing_secret, "signing_secret")?,
                // Socket Mode needs no signing secret; the parser still wants one.
                None if t.kind == TransportKind::SlackSocket => {
                    Redacted::from(unused_secret_token())
                }
                None => return Err(missing(name, "signing_secret")),
            };
            let bot = t.bot_user.clone().unwrap_or_default();
            let parser = Slack::new(signing.expose().as_bytes(), &bot)?;
            let slack = Arc::new(SlackClient::new(&http, &token)?);
            replies.register(name, Arc::clone(&slack) as Arc<dyn Outbound>);
            let replies = slack;
            if t.kind == TransportKind::SlackSocket {
                let app_token = secret_of(secrets, name, &t.app_token_secret, "app_token_secret")?;
                let socket = Arc::new(SocketModeClient::new(&http, &app_token)?);
                tokio::spawn(run_socket_mode(
                    socket,
                    Arc::new(parser),
                    replies,
                    Arc::clone(dispatcher),
                    pacer,
                    stop_rx.clone(),
                ));
            } else {
                app.slack = Some(SlackWebhook {
                    verifier: parser,
                    client: replies,
                });
            }
        }
        TransportKind::DiscordGateway | TransportKind::DiscordInteractions => {
            let token = secret_of(secrets, name, &t.token_secret, "token_secret")?;
            let discord = Arc::new(DiscordClient::new(&http, &token)?);
            replies.register(name, Arc::clone(&discord) as Arc<dyn Outbound>);
            let replies = discord;
            if t.kind == TransportKind::DiscordGateway {
                let url = t
                    .api_base
                    .as_deref()
                    .map(|b| b.replacen("https://", "wss://", 1))
                    .unwrap_or_else(|| "wss://gateway.discord.gg/?v=10&encoding=json".into());
                let mut cfg = GatewayConfig::new(url);
                cfg.extra_root_pem = http.extra_root_pem.clone();
                tokio::spawn(run_gateway(
                    DiscordGateway::new(cfg, token),
                    Some(replies),
                    Arc::clone(dispatcher),
                    pacer,
                    stop_rx.clone(),
                ));
            } else {
                let key = t
                    .public_key
                    .as_deref()
                    .ok_or_else(|| missing(name, "public_key"))?;
                let app_id = t
                    .application_id
                    .as_deref()
                    .ok_or_else(|| missing(name, "application_id"))?;
                app.discord = Some(DiscordWebhook {
                    verifier: Discord::new(key, app_id)?,
                    client: Some(replies),
                });
            }
        }
    }
    Ok(())
}
