//! The channel kinds the appliance knows: for each platform, its transports,
//! the settings each reads and the vault secrets each needs. One table, read
//! by the admin page's add-a-channel form and `coworkctl channels kinds`
//! (`tests/check_config.rs` holds it to what the configuration accepts). A
//! new platform is a new row here plus its code. A transport missing what it
//! needs fails when its channel starts (status, settings page), not at
//! `check-config`, so a channel can be added before its secrets are stored.

use crate::gateway::settings::TransportKind;

/// One platform.
#[derive(Debug, Clone, Copy)]
pub struct ChannelKind {
    /// The platform, as a channel is usually named after it (`telegram`).
    pub name: &'static str,
    pub transports: &'static [TransportSpec],
}

/// One way of reaching a platform: `[channels.NAME.transport] kind = ...`.
#[derive(Debug, Clone, Copy)]
pub struct TransportSpec {
    /// The `kind` value (`telegram-polling`).
    pub name: &'static str,
    pub kind: TransportKind,
    /// The route on the gateway's webhook listener, for inbound webhooks;
    /// `None` when the appliance connects out (no inbound port needed).
    pub webhook_route: Option<&'static str>,
    /// `[channels.NAME.transport]` keys it must have.
    pub required: &'static [&'static str],
    /// Keys it may have.
    pub optional: &'static [&'static str],
    /// Of the keys above, those naming a vault secret, with what the secret holds.
    pub secrets: &'static [(&'static str, &'static str)],
}

/// Settings every network transport may carry.
const COMMON: &[&str] = &["api_base", "ca_file"];

/// The registry.
pub const KINDS: &[ChannelKind] = &[
    ChannelKind {
        name: "telegram",
        transports: &[
            TransportSpec {
                name: "telegram-polling",
                kind: TransportKind::TelegramPolling,
                webhook_route: None,
                required: &["token_secret"],
                optional: &["bot_user", "api_base", "ca_file"],
                secrets: &[("token_secret", "the bot token from @BotFather")],
            },
            TransportSpec {
                name: "telegram-webhook",
                kind: TransportKind::TelegramWebhook,
                webhook_route: Some("/telegram/webhook"),
                required: &["token_secret", "signing_secret"],
                optional: &["bot_user", "api_base", "ca_file"],
                secrets: &[
                    ("token_secret", "the bot token from @BotFather"),
                    (
                        "signing_secret",
                        "the webhook's secret token (X-Telegram-Bot-Api-Secret-Token)",
                    ),
                ],
            },
        ],
    },
    ChannelKind {
        name: "slack",
        transports: &[
            TransportSpec {
                name: "slack-events",
                kind: TransportKind::SlackEvents,
                webhook_route: Some("/slack/events"),
                required: &["token_secret", "signing_secret"],
                optional: &["bot_user", "api_base", "ca_file"],
                secrets: &[
                    ("token_secret", "the bot token (xoxb-)"),
                    ("signing_secret", "the app's signing secret"),
                ],
            },
            TransportSpec {
                name: "slack-socket",
                kind: TransportKind::SlackSocket,
                webhook_route: None,
                required: &["token_secret", "app_token_secret"],
                optional: &["bot_user", "signing_secret", "api_base", "ca_file"],
                secrets: &[
                    ("token_secret", "the bot token (xoxb-)"),
                    (
                        "app_token_secret",
                        "the app-level token (xapp-) with connections:write",
                    ),
                    (
                        "signing_secret",
                        "the app's signing secret (not used by Socket Mode)",
                    ),
                ],
            },
        ],
    },
    ChannelKind {
        name: "discord",
        transports: &[
            TransportSpec {
                name: "discord-gateway",
                kind: TransportKind::DiscordGateway,
                webhook_route: None,
                required: &["token_secret"],
                optional: &["bot_user", "api_base", "ca_file"],
                secrets: &[("token_secret", "the bot token")],
            },
            TransportSpec {
                name: "discord-interactions",
                kind: TransportKind::DiscordInteractions,
                webhook_route: Some("/discord/interactions"),
                required: &["token_secret", "application_id", "public_key"],
                optional: &["bot_user", "api_base", "ca_file"],
                secrets: &[("token_secret", "the bot token")],
            },
        ],
    },
    ChannelKind {
        name: "local",
        transports: &[TransportSpec {
            name: "none",
            kind: TransportKind::None,
            webhook_route: None,
            required: &[],
            optional: &[],
            secrets: &[],
        }],
    },
];

/// Every transport of every kind, in table order.
pub fn transports() -> impl Iterator<Item = &'static TransportSpec> {
    KINDS.iter().flat_map(|k| k.transports.iter())
}

/// The entry of `kind`. Every [`TransportKind`] has one (a test checks it).
pub fn spec(kind: TransportKind) -> Option<&'static TransportSpec> {
    transports().find(|t| t.kind == kind)
}

impl TransportSpec {
    /// Whether `key` is a setting of this transport.
    pub fn accepts(&self, key: &str) -> bool {
        self.keys().contains(&key)
    }

    /// Every setting it reads, required first (`kind` aside).
    pub fn keys(&self) -> Vec<&'static str> {
        if self.kind == TransportKind::None {
            return Vec::new();
        }
        let mut keys: Vec<&'static str> = self.required.to_vec();
        for k in self.optional.iter().chain(COMMON) {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transport_kind_has_one_entry_named_as_in_the_configuration() {
        let all = [
            TransportKind::None,
            TransportKind::TelegramPolling,
            TransportKind::TelegramWebhook,
            TransportKind::SlackEvents,
            TransportKind::SlackSocket,
            TransportKind::DiscordGateway,
            TransportKind::DiscordInteractions,
        ];
        // A new TransportKind variant fails to compile here until listed.
        for kind in all {
            match kind {
                TransportKind::None
                | TransportKind::TelegramPolling
                | TransportKind::TelegramWebhook
                | TransportKind::SlackEvents
                | TransportKind::SlackSocket
                | TransportKind::DiscordGateway
                | TransportKind::DiscordInteractions => {}
            }
            assert_eq!(
                transports().filter(|t| t.kind == kind).count(),
                1,
                "{kind:?}"
            );
            let spec = spec(kind).unwrap();
            let named: TransportKind =
                serde_json::from_value(serde_json::Value::String(spec.name.into())).unwrap();
            assert_eq!(named, kind, "{}", spec.name);
            assert_eq!(
                spec.webhook_route.is_some(),
                kind.uses_webhook(),
                "{}",
                spec.name
            );
        }
        assert_eq!(transports().count(), all.len());
    }

    #[test]
    fn every_secret_is_a_listed_key_of_its_transport() {
        for t in transports() {
            for (key, what) in t.secrets {
                assert!(t.accepts(key), "{}: {key}", t.name);
                assert!(
                    key.ends_with("_secret") && !what.is_empty(),
                    "{}: {key}",
                    t.name
                );
            }
            for key in t.required.iter().chain(t.optional) {
                assert!(
                    !key.ends_with("_secret") || t.secrets.iter().any(|(k, _)| k == key),
                    "{}: {key} names a secret the table does not describe",
                    t.name
                );
            }
        }
    }
}
