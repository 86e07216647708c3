//! The channel kinds the appliance knows: every platform's [`Channel`], and
//! through it its transports, the settings each reads and the vault secrets
//! each needs. Read by the runner (which starts a configured channel through
//! its platform), the admin page's add-a-channel form and `coworkctl channels
//! kinds` (`tests/check_config.rs` holds it to what the configuration
//! accepts). A new platform is its folder, its [`TransportKind`] variant and
//! one line in [`PLATFORMS`]. A
//! transport missing what it needs fails when its channel starts (status,
//! settings page), not at `check-config`, so a channel can be added before its
//! secrets are stored.

use super::{
    Channel, bluebubbles, discord, email, google_chat, imessage, line, local, matrix, mattermost,
    signal, slack, teams, telegram, twitch, whatsapp,
};
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
    /// The platform's API base, used unless `api_base` is set; empty for a
    /// self-hosted platform (Mattermost), whose `api_base` is required.
    pub api_base: &'static str,
    /// `[channels.NAME.transport]` keys it must have.
    pub required: &'static [&'static str],
    /// Keys it may have.
    pub optional: &'static [&'static str],
    /// Of the keys above, those naming a vault secret, with what the secret holds.
    pub secrets: &'static [(&'static str, &'static str)],
    /// The shape of the platform's stable ids, and its name in a sentence:
    /// allowlists, approvers and per-chat settings must hold such ids (never
    /// display names or e-mail addresses). `None`: not checked yet.
    pub id_shape: Option<IdShape>,
}

/// A check of a platform's stable ids, and what such an id is in a sentence.
pub type IdShape = (fn(&str) -> bool, &'static str);

/// Settings every network transport may carry (`api_base` only one with a
/// default API base to replace).
const COMMON: &[&str] = &["api_base", "ca_file"];

/// The platforms, in the order the settings page lists them.
pub static PLATFORMS: &[&dyn Channel] = &[
    &telegram::Platform,
    &slack::Platform,
    &discord::Platform,
    &line::Platform,
    &whatsapp::Platform,
    &teams::Platform,
    &google_chat::Platform,
    &email::Platform,
    &matrix::Platform,
    &mattermost::Platform,
    &twitch::Platform,
    &bluebubbles::Platform,
    &signal::Platform,
    &imessage::Platform,
    &local::Platform,
];

/// Every platform's entry.
pub fn kinds() -> impl Iterator<Item = &'static ChannelKind> {
    PLATFORMS.iter().map(|p| p.kind())
}

/// The platform a transport kind belongs to.
pub fn platform(kind: TransportKind) -> Option<&'static dyn Channel> {
    PLATFORMS
        .iter()
        .copied()
        .find(|p| p.kind().transports.iter().any(|t| t.kind == kind))
}

/// Every transport of every kind, in table order.
pub fn transports() -> impl Iterator<Item = &'static TransportSpec> {
    kinds().flat_map(|k| k.transports.iter())
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
            if *k == "api_base" && self.api_base.is_empty() {
                continue;
            }
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
            TransportKind::Line,
            TransportKind::WhatsappCloud,
            TransportKind::Teams,
            TransportKind::GoogleChat,
            TransportKind::GoogleChatPubsub,
            TransportKind::Email,
            TransportKind::Matrix,
            TransportKind::Mattermost,
            TransportKind::Twitch,
            TransportKind::Bluebubbles,
            TransportKind::BluebubblesPolling,
            TransportKind::Signal,
            TransportKind::Imessage,
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
                | TransportKind::DiscordInteractions
                | TransportKind::Line
                | TransportKind::WhatsappCloud
                | TransportKind::Teams
                | TransportKind::GoogleChat
                | TransportKind::GoogleChatPubsub
                | TransportKind::Email
                | TransportKind::Matrix
                | TransportKind::Mattermost
                | TransportKind::Twitch
                | TransportKind::Bluebubbles
                | TransportKind::BluebubblesPolling
                | TransportKind::Signal => {}
                TransportKind::Imessage => {}
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
                platform(kind).unwrap().kind().name,
                kinds()
                    .find(|k| k.transports.iter().any(|t| t.kind == kind))
                    .unwrap()
                    .name
            );
            // A default API base exactly where `api_base` may replace it; a
            // self-hosted platform has none of its own: its channels must
            // name their server.
            assert_eq!(
                spec.api_base.is_empty(),
                kind == TransportKind::None
                    || !spec.accepts("api_base")
                    || spec.required.contains(&"api_base"),
                "{}",
                spec.name
            );
        }
        assert_eq!(transports().count(), all.len());
    }

    #[test]
    fn platforms_transports_and_routes_are_each_named_once() {
        let mut names: Vec<&str> = kinds().map(|k| k.name).collect();
        let mut routes: Vec<&str> = transports().filter_map(|t| t.webhook_route).collect();
        let (n, r) = (names.len(), routes.len());
        names.sort_unstable();
        names.dedup();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!((names.len(), routes.len()), (n, r));
        for t in transports() {
            let p = platform(t.kind).unwrap();
            assert!(p.kind().transports.iter().any(|x| x.name == t.name));
            assert!(t.webhook_route.is_none_or(|r| r.starts_with('/')));
            assert!(
                t.api_base.is_empty() || t.api_base.starts_with("https://"),
                "{}",
                t.name
            );
        }
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
