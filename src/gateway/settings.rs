//! `[gateway]` settings: per-channel access policies, pairing and rate limits.
//!
//! The per-channel struct is a superset of the real crate's
//! `config::ChannelSettings` (same field names `enabled`/`dm`/`group`, same
//! [`AccessMode`] values), so it can replace it.
//!
//! **Wildcards.** `"*"` is refused in every list (`allowlist`, `group_allowlist`,
//! `accounts`, `chats`): other gateways treated `allowlist = ["*"]` as "everyone"
//! and so silently switched pairing off. The one way to admit everyone is
//! `mode = "open"`, which only the development profile accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::GatewayError;

/// The appliance profile (mirrors `config::Profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Production,
    Development,
}

/// How a context (DM or group) admits senders. Same values as `config::AccessMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Unknown senders may only redeem a pairing code (the default everywhere).
    Pairing,
    /// Only senders on the allowlist; pairings are ignored.
    Allowlist,
    /// Anyone: development profile only.
    Open,
    /// Nobody; messages are ignored.
    Disabled,
}

/// The whole `[gateway]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Channels by name (`local`, `telegram`, `slack`, `discord`, ...). A channel
    /// not listed here is refused.
    pub channels: BTreeMap<String, ChannelSettings>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        let mut channels = BTreeMap::new();
        channels.insert(
            super::inbound::LOCAL_CHANNEL.to_string(),
            ChannelSettings::default(),
        );
        GatewaySettings { channels }
    }
}

/// Tools withheld from the agent in a context (by tool name).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolPolicy {
    pub deny: BTreeSet<String>,
}

impl ToolPolicy {
    /// The group default: no `memory`, no `clipboard`.
    pub fn group_default() -> ToolPolicy {
        ToolPolicy {
            deny: ["memory", "clipboard"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    pub fn allows(&self, tool: &str) -> bool {
        !self.deny.contains(tool)
    }
}

/// A per-chat override of the context policy (keyed by chat id in `chats`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatPolicy {
    pub mode: Option<AccessMode>,
    pub require_mention: Option<bool>,
    pub tools: Option<ToolPolicy>,
}

/// Per-user message rate limit (token bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Refill rate.
    pub messages_per_minute: u32,
    /// Bucket size (messages that may arrive at once).
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            messages_per_minute: 20,
            burst: 20,
        }
    }
}

/// Failed pairing-code redemptions: kept in `state.db`, so they survive restarts.
/// Only guesses against an active code count (see `gateway::pairing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSettings {
    /// Failures of one sender within `window_secs` that lock that sender out.
    pub sender_max_failures: u32,
    /// Failed guesses against one active code (from anyone) that burn the code;
    /// the channel itself is never locked. `channel_max_failures` is the old name.
    #[serde(alias = "channel_max_failures")]
    pub code_max_failures: u32,
    /// Codes per channel created in any 24 hours that may take wrong guesses;
    /// issuing is refused once that many did.
    pub max_codes_per_day: u32,
    pub window_secs: u64,
    pub lockout_secs: u64,
}

/// The bound on successful guesses the lockout settings must keep (per channel
/// per year; codes are 40-bit).
pub const MAX_EXPECTED_GUESSES_PER_YEAR: f64 = 1e-6;

impl LockoutSettings {
    /// Most failed guesses a channel can take in a year: each code takes at
    /// most `code_max_failures`, and at most `max_codes_per_day` codes exist a day.
    pub fn guesses_per_year(&self) -> u64 {
        u64::from(self.code_max_failures) * u64::from(self.max_codes_per_day) * 366
    }

    /// Expected successful guesses per year: guesses × 2^-40.
    pub fn expected_successes_per_year(&self) -> f64 {
        self.guesses_per_year() as f64 / (1u64 << 40) as f64
    }
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            sender_max_failures: 5,
            code_max_failures: 50,
            max_codes_per_day: 24,
            window_secs: 900,
            lockout_secs: 900,
        }
    }
}

/// One channel: its restrictions, context policies, pairing and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelSettings {
    pub enabled: bool,
    /// Policy for direct messages.
    pub dm: AccessMode,
    /// Policy for group chats.
    pub group: AccessMode,
    /// Group messages must mention the bot (default true).
    pub require_mention: bool,
    /// Sender ids admitted in `allowlist` mode (and authorized in `pairing` mode).
    pub allowlist: Vec<String>,
    /// Sender ids that may answer `approve ID` / `deny ID` in chat (never
    /// their own requests; in a group only as an authorized sender there).
    /// Empty by default: approvals are then answered only with `coworkctl
    /// approvals` or on the admin page. Nobody is an approver by being paired.
    pub approvers: Vec<String>,
    /// Group chat ids the bot answers in; empty = any group.
    pub group_allowlist: Vec<String>,
    /// Slack workspace (team) ids / Discord guild ids the bot serves; empty = any.
    #[serde(alias = "workspaces", alias = "guilds")]
    pub accounts: Vec<String>,
    pub dm_tools: ToolPolicy,
    pub group_tools: ToolPolicy,
    /// Per-chat overrides by chat id.
    pub chats: BTreeMap<String, ChatPolicy>,
    /// Lifetime of a pairing code, 60..=3600 s.
    pub pairing_ttl_secs: u64,
    /// Never answer unknown senders (no "requires pairing" reply).
    pub silent: bool,
    /// At most one "requires pairing" reply per sender per window.
    pub prompt_window_secs: u64,
    pub rate_limit: RateLimitSettings,
    pub lockout: LockoutSettings,
    /// Which tasks share a sandbox workspace (default: one per chat). Not
    /// `accounts`' alias `workspaces`, which are Slack workspace ids.
    pub workspace_scope: WorkspaceScope,
    /// How the channel reaches its platform (none for `local`).
    pub transport: TransportSettings,
}

/// Which tasks of one sender share a sandbox workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkspaceScope {
    /// One workspace per (channel, chat, sender): a group never sees what the
    /// same sender's DM tasks wrote, nor another group's.
    #[default]
    PerChat,
    /// One workspace per (channel, sender) across their DM and groups, only
    /// when the owner says so. An approval then lapses when another task
    /// writes the workspace before the approved command runs.
    PerSender,
}

/// How a channel reaches its platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// No network transport (the `local` channel, or not set up yet).
    #[default]
    None,
    /// Bot API `getUpdates` long polling (no inbound port needed).
    TelegramPolling,
    /// Bot API webhook with the secret-token header, on the webhook listener.
    TelegramWebhook,
    /// Events API over HTTP, signing-secret verified, on the webhook listener.
    SlackEvents,
    /// Socket Mode WebSocket (no inbound port needed).
    SlackSocket,
    /// The Gateway WebSocket (no inbound port needed).
    DiscordGateway,
    /// The interactions endpoint, Ed25519 verified, on the webhook listener.
    DiscordInteractions,
    /// The Messaging API webhook, signed with the channel secret, on the
    /// webhook listener.
    Line,
    /// WhatsApp Business (Cloud API) webhook, signed with the app secret,
    /// on the webhook listener.
    WhatsappCloud,
    /// Microsoft Teams through the Azure Bot Service: the messaging
    /// endpoint, Bot Framework JWT verified, on the webhook listener.
    Teams,
    /// Google Chat app's HTTP endpoint, Google-signed bearer JWTs, on the
    /// webhook listener.
    GoogleChat,
    /// Google Chat app's events pulled from a Pub/Sub subscription (no
    /// inbound port needed).
    GoogleChatPubsub,
    /// A dedicated mailbox read over IMAP (IDLE, TLS), answered over SMTP
    /// submission (TLS); no inbound port needed.
    Email,
    /// A Matrix homeserver's Client-Server API: the `/sync` long poll (no
    /// inbound port needed), messages sent by its REST API.
    Matrix,
    /// A Mattermost server's WebSocket API (no inbound port needed), posts
    /// by its REST API.
    Mattermost,
    /// Twitch chat over IRC with TLS (no inbound port needed).
    Twitch,
    /// iMessage through the owner's BlueBubbles server on the local
    /// network: its webhook (a secret in the URL) on the webhook listener,
    /// answers by its REST API.
    Bluebubbles,
    /// The same server polled for new messages (no inbound port needed).
    BluebubblesPolling,
    /// Signal through a local signal-cli daemon's JSON-RPC on a Unix socket
    /// (no inbound port, never TCP).
    Signal,
    /// iMessage through `imsg rpc` on the owner's Mac, reached over SSH on
    /// the local network with a key the appliance generated (no inbound
    /// port needed).
    Imessage,
}

/// `[channels.NAME.transport]`: the platform side of a channel. Secrets are
/// named here and read from the vault (`coworkctl secret set NAME`), never
/// written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSettings {
    pub kind: TransportKind,
    /// The platform's API base URL (default: the platform's own); https only,
    /// http allowed on loopback (local fakes). BlueBubbles: the owner's
    /// server, which must be on the local network (http allowed there).
    pub api_base: Option<String>,
    /// Vault secret with the bot token (Telegram, Slack `xoxb-`, Discord).
    pub token_secret: Option<String>,
    /// Vault secret with the Telegram webhook secret token, the Slack
    /// signing secret, or the secret of the BlueBubbles webhook's URL.
    pub signing_secret: Option<String>,
    /// Vault secret with the Slack app-level token (`xapp-`, Socket Mode).
    pub app_token_secret: Option<String>,
    /// Discord application id and its Ed25519 public key (hex; public).
    /// iMessage: the appliance's own SSH public key (`ssh-ed25519 AAAA…
    /// cowork@appliance`), written by the settings page when it generates
    /// the key, shown there for the Mac's `authorized_keys`.
    pub application_id: Option<String>,
    pub public_key: Option<String>,
    /// The bot's own user name / id on the platform, for mention detection.
    pub bot_user: Option<String>,
    /// Vault secret with the WhatsApp webhook's verify token (the `GET`
    /// subscription handshake).
    pub verify_token_secret: Option<String>,
    /// The WhatsApp business phone number id replies are sent from (public).
    pub phone_number_id: Option<String>,
    /// The owner's organization; requests from any other are refused: the
    /// Microsoft Entra tenant id (Teams) or the Google Workspace domain id
    /// (Google Chat).
    pub organization_id: Option<String>,
    /// Where the platform publishes the keys that sign its requests (default
    /// the platform's own): the Bot Framework OpenID metadata (Teams), the
    /// JWKS of chat@system.gserviceaccount.com (Google Chat).
    pub keys_url: Option<String>,
    /// The OAuth token endpoint for the appliance's own token (default the
    /// platform's own, or the Google service account key's `token_uri`).
    pub token_url: Option<String>,
    /// The Google Cloud project number (the audience of Google Chat's tokens).
    pub project_number: Option<String>,
    /// The Pub/Sub subscription Google Chat's events arrive on
    /// (`projects/PROJECT/subscriptions/NAME`).
    pub subscription: Option<String>,
    /// The Pub/Sub API base (default Google's own).
    pub pubsub_base: Option<String>,
    /// The mailbox's IMAP server: `imaps://HOST[:993]` (TLS from the start).
    pub imap_url: Option<String>,
    /// The SMTP submission server: `smtps://HOST[:465]` (TLS from the start)
    /// or `smtp+starttls://HOST[:587]` (STARTTLS required).
    pub smtp_url: Option<String>,
    /// The mailbox's login name (IMAP and SMTP).
    pub username: Option<String>,
    /// Vault secret with the mailbox's app password or the BlueBubbles
    /// server's password.
    pub password_secret: Option<String>,
    /// The address replies are sent from (default: `username`).
    pub address: Option<String>,
    /// The receiving server's authserv-id, the first word of the
    /// `Authentication-Results` headers it writes (e-mail sender check).
    pub authserv_id: Option<String>,
    /// Only messages whose subject contains this (case-insensitive) are for
    /// the appliance; others stay unread for the owner. Routing, not access
    /// control.
    pub subject_filter: Option<String>,
    /// The IMAP folder read (default `INBOX`).
    pub mailbox: Option<String>,
    /// The team ids a Mattermost channel serves; posts in channels of any
    /// other team are refused. Required: an empty list starts nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub team_allowlist: Vec<String>,
    /// The Mattermost channel ids (public or private) the bot answers in;
    /// empty: the private channels of the allowed teams, never a public one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel_allowlist: Vec<String>,
    /// The IRC server of a Twitch channel: `ircs://HOST[:6697]` (TLS only;
    /// default Twitch's own).
    pub server: Option<String>,
    /// The Twitch channels (logins, `#` optional) the bot joins: those the
    /// owner moderates. Required: an empty list starts nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The Unix socket of a local `signal-cli daemon --socket` (owned by us
    /// or root, neither it nor its directory writable by group or others).
    pub socket_path: Option<PathBuf>,
    /// The Signal account signal-cli serves: the bot's number in E.164.
    pub account: Option<String>,
    /// iMessage: the owner's Mac on the local network (an address or a
    /// `NAME.local` name), its SSH port (default 22), the Mac user who is
    /// signed in to Messages, and the Mac's SSH host key pinned
    /// (`ssh-ed25519 AAAA…`, from its `/etc/ssh/ssh_host_ed25519_key.pub`).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub host_key: Option<String>,
    /// Vault secret with the appliance's SSH private key (OpenSSH form),
    /// generated by the settings page.
    pub key_secret: Option<String>,
    /// The `imsg` command on the Mac (default `imsg`, found on its PATH).
    pub imsg_path: Option<String>,
    /// iMessage: the only handles (+15551234567, a lowercase e-mail) whose
    /// messages are read at all, beside pairing; empty: anyone may try
    /// (pairing still decides).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Extra root certificates (PEM) to trust for this platform (local fakes).
    pub ca_file: Option<PathBuf>,
}

impl TransportSettings {
    /// The keys given a value (`kind` aside), as the configuration names them.
    pub fn keys_set(&self) -> Vec<&'static str> {
        // Destructured whole: a new setting fails to compile until listed.
        let TransportSettings {
            kind: _,
            api_base,
            token_secret,
            signing_secret,
            app_token_secret,
            application_id,
            public_key,
            bot_user,
            verify_token_secret,
            phone_number_id,
            organization_id,
            keys_url,
            token_url,
            project_number,
            subscription,
            pubsub_base,
            imap_url,
            smtp_url,
            username,
            password_secret,
            address,
            authserv_id,
            subject_filter,
            mailbox,
            team_allowlist,
            channel_allowlist,
            server,
            channels,
            socket_path,
            account,
            host,
            port,
            user,
            host_key,
            key_secret,
            imsg_path,
            contacts,
            ca_file,
        } = self;
        let set = [
            ("api_base", api_base.is_some()),
            ("token_secret", token_secret.is_some()),
            ("signing_secret", signing_secret.is_some()),
            ("app_token_secret", app_token_secret.is_some()),
            ("application_id", application_id.is_some()),
            ("public_key", public_key.is_some()),
            ("bot_user", bot_user.is_some()),
            ("verify_token_secret", verify_token_secret.is_some()),
            ("phone_number_id", phone_number_id.is_some()),
            ("organization_id", organization_id.is_some()),
            ("keys_url", keys_url.is_some()),
            ("token_url", token_url.is_some()),
            ("project_number", project_number.is_some()),
            ("subscription", subscription.is_some()),
            ("pubsub_base", pubsub_base.is_some()),
            ("imap_url", imap_url.is_some()),
            ("smtp_url", smtp_url.is_some()),
            ("username", username.is_some()),
            ("password_secret", password_secret.is_some()),
            ("address", address.is_some()),
            ("authserv_id", authserv_id.is_some()),
            ("subject_filter", subject_filter.is_some()),
            ("mailbox", mailbox.is_some()),
            ("team_allowlist", !team_allowlist.is_empty()),
            ("channel_allowlist", !channel_allowlist.is_empty()),
            ("server", server.is_some()),
            ("channels", !channels.is_empty()),
            ("socket_path", socket_path.is_some()),
            ("account", account.is_some()),
            ("host", host.is_some()),
            ("port", port.is_some()),
            ("user", user.is_some()),
            ("host_key", host_key.is_some()),
            ("key_secret", key_secret.is_some()),
            ("imsg_path", imsg_path.is_some()),
            ("contacts", !contacts.is_empty()),
            ("ca_file", ca_file.is_some()),
        ];
        set.into_iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| k)
            .collect()
    }
}

pub const DEFAULT_PAIRING_TTL_SECS: u64 = 300;
/// Most chat approvers a channel may name: a short list of people the owner
/// trusts with every ask-level command there.
pub const MAX_APPROVERS: usize = 32;
pub const PAIRING_TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=3600;

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            enabled: true,
            dm: AccessMode::Pairing,
            group: AccessMode::Pairing,
            require_mention: true,
            allowlist: Vec::new(),
            approvers: Vec::new(),
            group_allowlist: Vec::new(),
            accounts: Vec::new(),
            dm_tools: ToolPolicy::default(),
            group_tools: ToolPolicy::group_default(),
            chats: BTreeMap::new(),
            pairing_ttl_secs: DEFAULT_PAIRING_TTL_SECS,
            silent: false,
            prompt_window_secs: 3600,
            rate_limit: RateLimitSettings::default(),
            lockout: LockoutSettings::default(),
            workspace_scope: WorkspaceScope::default(),
            transport: Default::default(),
        }
    }
}

impl GatewaySettings {
    /// Checks every channel; `open` is refused unless `profile` is development.
    pub fn validate(&self, profile: Profile) -> Result<(), GatewayError> {
        for (name, ch) in &self.channels {
            validate_channel_name(name)?;
            ch.validate(name, profile)?;
        }
        Ok(())
    }
}

fn validate_channel_name(name: &str) -> Result<(), GatewayError> {
    let ok = !name.is_empty()
        && name.len() <= super::inbound::MAX_CHANNEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(GatewayError::Settings {
            channel: name.escape_debug().to_string(),
            field: "(name)",
            reason: "channel names are 1 to 32 characters of a-z 0-9 _ -".into(),
        })
    }
}

impl ChannelSettings {
    fn validate(&self, channel: &str, profile: Profile) -> Result<(), GatewayError> {
        let err = |field: &'static str, reason: String| GatewayError::Settings {
            channel: channel.to_string(),
            field,
            reason,
        };
        let check_mode = |field: &'static str, mode: AccessMode| {
            if mode == AccessMode::Open && profile != Profile::Development {
                Err(err(
                    field,
                    "mode \"open\" is allowed only in the development profile".into(),
                ))
            } else {
                Ok(())
            }
        };
        check_mode("dm", self.dm)?;
        check_mode("group", self.group)?;
        for (chat, policy) in &self.chats {
            check_id(chat).map_err(|r| err("chats", r))?;
            if let Some(mode) = policy.mode {
                check_mode("chats.mode", mode)?;
            }
        }
        for (field, list) in [
            ("allowlist", &self.allowlist),
            ("approvers", &self.approvers),
            ("group_allowlist", &self.group_allowlist),
            ("accounts", &self.accounts),
            ("transport.team_allowlist", &self.transport.team_allowlist),
            (
                "transport.channel_allowlist",
                &self.transport.channel_allowlist,
            ),
            ("transport.channels", &self.transport.channels),
            ("transport.contacts", &self.transport.contacts),
        ] {
            for id in list {
                check_id(id).map_err(|r| err(field, r))?;
            }
        }
        if self.approvers.len() > MAX_APPROVERS {
            return Err(err(
                "approvers",
                format!(
                    "{} approvers; at most {MAX_APPROVERS}",
                    self.approvers.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for id in &self.approvers {
            if !seen.insert(id.as_str()) {
                return Err(err("approvers", format!("{id:?} is listed twice")));
            }
        }
        if !PAIRING_TTL_RANGE.contains(&self.pairing_ttl_secs) {
            return Err(err(
                "pairing_ttl_secs",
                format!(
                    "{} is not between 60 and 3600 seconds",
                    self.pairing_ttl_secs
                ),
            ));
        }
        if !(60..=7 * 86_400).contains(&self.prompt_window_secs) {
            return Err(err(
                "prompt_window_secs",
                "must be between 60 and 604800 seconds".into(),
            ));
        }
        let rl = &self.rate_limit;
        if rl.messages_per_minute == 0 || rl.burst == 0 || rl.burst > 10_000 {
            return Err(err(
                "rate_limit",
                "messages_per_minute must be above 0 and burst between 1 and 10000".into(),
            ));
        }
        let lo = &self.lockout;
        if lo.sender_max_failures == 0
            || lo.code_max_failures == 0
            || lo.max_codes_per_day == 0
            || lo.window_secs == 0
            || lo.lockout_secs == 0
            || lo.window_secs > 86_400
            || lo.lockout_secs > 86_400
        {
            return Err(err(
                "lockout",
                "failure limits must be above 0 and durations between 1 and 86400 seconds".into(),
            ));
        }
        if lo.expected_successes_per_year() >= MAX_EXPECTED_GUESSES_PER_YEAR {
            return Err(err(
                "lockout",
                format!(
                    "code_max_failures × max_codes_per_day × 366 = {} guesses a year; \
                     × 2^-40 must stay under {MAX_EXPECTED_GUESSES_PER_YEAR:e}",
                    lo.guesses_per_year()
                ),
            ));
        }
        let t = &self.transport;
        // The BlueBubbles server holds the owner's iMessage account behind a
        // password sent in the query string: it must be on the local network.
        let (lan_only, api_base) = match t.kind {
            TransportKind::Bluebubbles | TransportKind::BluebubblesPolling => (&t.api_base, &None),
            _ => (&None, &t.api_base),
        };
        if let Some(url) = lan_only {
            crate::net::parse_lan_url(url.trim_end_matches('/'), "https", "http")
                .map_err(|e| err("transport.api_base", format!("{url:?}: {e}")))?;
        }
        for (field, url) in [
            ("transport.api_base", api_base),
            ("transport.keys_url", &t.keys_url),
            ("transport.token_url", &t.token_url),
            ("transport.pubsub_base", &t.pubsub_base),
        ] {
            if let Some(url) = url {
                crate::net::parse_url(url.trim_end_matches('/'), "https", "http")
                    .map_err(|e| err(field, format!("{url:?}: {e}")))?;
            }
        }
        for (field, url, schemes) in [
            ("transport.imap_url", &t.imap_url, IMAP_SCHEMES),
            ("transport.smtp_url", &t.smtp_url, SMTP_SCHEMES),
            ("transport.server", &t.server, IRC_SCHEMES),
        ] {
            if let Some(url) = url {
                mail_server(url, schemes).map_err(|e| err(field, format!("{url:?}: {e}")))?;
            }
        }
        for name in &t.channels {
            if !crate::gateway::channels::twitch::is_login(name.strip_prefix('#').unwrap_or(name)) {
                return Err(err(
                    "transport.channels",
                    format!("{name:?} is not a Twitch channel name (lowercase letters, digits, _)"),
                ));
            }
        }
        if let Some(number) = &t.account
            && !crate::gateway::channels::signal::is_e164(number)
        {
            return Err(err(
                "transport.account",
                format!("{number:?} is not a phone number in E.164 form (+ and 8 to 15 digits)"),
            ));
        }
        if let Some(path) = &t.socket_path
            && !path.is_absolute()
        {
            return Err(err(
                "transport.socket_path",
                format!("{} is not an absolute path", path.display()),
            ));
        }
        // The Matrix bot's own account: a full user id (`whoami` must name it).
        if let (TransportKind::Matrix, Some(me)) = (t.kind, &t.bot_user)
            && !crate::gateway::channels::matrix::is_user_id(me)
        {
            return Err(err(
                "transport.bot_user",
                format!("{me:?} is not a full Matrix user id (@name:server)"),
            ));
        }
        crate::gateway::channels::imessage::check_settings(t)
            .map_err(|(field, reason)| err(field, reason))?;
        for (field, value) in [
            ("transport.username", &t.username),
            ("transport.address", &t.address),
            ("transport.authserv_id", &t.authserv_id),
            ("transport.subject_filter", &t.subject_filter),
            ("transport.mailbox", &t.mailbox),
        ] {
            if let Some(v) = value {
                check_mail_word(v).map_err(|e| err(field, format!("{v:?}: {e}")))?;
            }
        }
        Ok(())
    }

    /// The policy in force for one chat in one context.
    pub fn resolve(&self, context: super::inbound::Context, chat: &str) -> ContextPolicy {
        use super::inbound::Context;
        let (mode, require_mention, tools) = match context {
            Context::Dm => (self.dm, false, &self.dm_tools),
            Context::Group => (self.group, self.require_mention, &self.group_tools),
        };
        let mut policy = ContextPolicy {
            mode,
            require_mention,
            tools: tools.clone(),
        };
        if let Some(over) = self.chats.get(chat) {
            if let Some(m) = over.mode {
                policy.mode = m;
            }
            if let (Context::Group, Some(r)) = (context, over.require_mention) {
                policy.require_mention = r;
            }
            if let Some(t) = &over.tools {
                policy.tools = t.clone();
            }
        }
        policy
    }
}

/// The schemes of an IMAP server: TLS from the start only (no STARTTLS, no
/// plaintext), with its default port.
pub const IMAP_SCHEMES: &[(&str, u16)] = &[("imaps", 993)];
/// The schemes of an SMTP submission server: TLS from the start (465) or
/// STARTTLS, which the client then requires (587). Never plaintext.
pub const SMTP_SCHEMES: &[(&str, u16)] = &[("smtps", 465), ("smtp+starttls", 587)];

/// The schemes of an IRC server (Twitch chat): TLS from the start only.
pub const IRC_SCHEMES: &[(&str, u16)] = &[("ircs", 6697)];

/// A mail server's address, from `imaps://HOST[:PORT]` and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailServer {
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
}

/// Parses a mail server URL: one of `schemes`, a host, an optional port and
/// nothing else (no user, password, path or query).
pub fn mail_server(text: &str, schemes: &[(&'static str, u16)]) -> Result<MailServer, String> {
    let url = reqwest::Url::parse(text.trim_end_matches('/'))
        .map_err(|e| format!("not a valid URL: {e}"))?;
    let Some(&(scheme, default_port)) = schemes.iter().find(|(s, _)| *s == url.scheme()) else {
        let names: Vec<String> = schemes.iter().map(|(s, _)| format!("{s}://")).collect();
        return Err(format!(
            "{}:// is not supported; use {}",
            url.scheme(),
            names.join(" or ")
        ));
    };
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
        _ => return Err("no host".into()),
    };
    if !url.username().is_empty()
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("only a host and a port may be given".into());
    }
    Ok(MailServer {
        scheme,
        host: host.to_ascii_lowercase(),
        port: url.port().unwrap_or(default_port),
    })
}

/// A short mail setting (a login, an address, a server id, a folder): 1 to
/// 256 bytes, no control characters, no surrounding whitespace.
fn check_mail_word(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 256 {
        return Err("must be 1 to 256 bytes".into());
    }
    if v.chars().any(char::is_control) || v.trim() != v {
        return Err("contains a control character or surrounding whitespace".into());
    }
    Ok(())
}

/// The resolved policy for one context of one chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPolicy {
    pub mode: AccessMode,
    pub require_mention: bool,
    pub tools: ToolPolicy,
}

fn check_id(id: &str) -> Result<(), String> {
    if id.trim() == "*" {
        return Err(
            "wildcard \"*\" is not allowed; to admit everyone use mode = \"open\" (development profile only)"
                .into(),
        );
    }
    super::inbound::check_id_chars(id).map_err(|r| format!("{id:?}: {r}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_set_names_every_setting_as_the_configuration_does() {
        let all = TransportSettings {
            kind: TransportKind::SlackSocket,
            api_base: Some("https://x".into()),
            token_secret: Some("a".into()),
            signing_secret: Some("b".into()),
            app_token_secret: Some("c".into()),
            application_id: Some("d".into()),
            public_key: Some("e".into()),
            bot_user: Some("f".into()),
            verify_token_secret: Some("h".into()),
            phone_number_id: Some("1".into()),
            organization_id: Some("o".into()),
            keys_url: Some("https://k".into()),
            token_url: Some("https://t".into()),
            project_number: Some("2".into()),
            subscription: Some("s".into()),
            pubsub_base: Some("https://p".into()),
            imap_url: Some("imaps://i".into()),
            smtp_url: Some("smtps://s".into()),
            username: Some("u".into()),
            password_secret: Some("pw".into()),
            address: Some("a@b".into()),
            authserv_id: Some("mx".into()),
            subject_filter: Some("[bot]".into()),
            mailbox: Some("INBOX".into()),
            team_allowlist: vec!["t".into()],
            channel_allowlist: vec!["c".into()],
            server: Some("ircs://irc".into()),
            channels: vec!["owner".into()],
            socket_path: Some("/s".into()),
            account: Some("+15550001111".into()),
            host: Some("mac.local".into()),
            port: Some(22),
            user: Some("owner".into()),
            host_key: Some("ssh-ed25519 AAAA".into()),
            key_secret: Some("k".into()),
            imsg_path: Some("imsg".into()),
            contacts: vec!["+15551234567".into()],
            ca_file: Some("/g".into()),
        };
        let table: toml::Table = toml::from_str(&toml::to_string(&all).unwrap()).unwrap();
        let mut named: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "kind")
            .collect();
        let mut set = all.keys_set();
        named.sort_unstable();
        set.sort_unstable();
        assert_eq!(set, named);
        assert!(TransportSettings::default().keys_set().is_empty());
    }

    #[test]
    fn defaults_are_pairing_with_mention_and_group_tool_denials() {
        let ch = ChannelSettings::default();
        assert_eq!(ch.dm, AccessMode::Pairing);
        assert_eq!(ch.group, AccessMode::Pairing);
        assert!(ch.require_mention);
        assert!(!ch.group_tools.allows("memory"));
        assert!(!ch.group_tools.allows("clipboard"));
        assert!(ch.dm_tools.allows("memory"));
        GatewaySettings::default()
            .validate(Profile::Production)
            .unwrap();
    }

    /// Issue 16 item 6: guesses allowed per year × 2^-40 stays under 1e-6.
    #[test]
    fn guesses_a_year_times_two_to_the_minus_40_is_under_one_in_a_million() {
        let lo = LockoutSettings::default();
        // 50 wrong guesses per code × 24 guessed-at codes a day × 366 days.
        assert_eq!(lo.guesses_per_year(), 50 * 24 * 366);
        let p = lo.guesses_per_year() as f64 * 2f64.powi(-40);
        assert!(p < 1e-6, "{p}");
        assert!((lo.expected_successes_per_year() - p).abs() < 1e-18);
        // A setting that breaks the bound is refused, by name.
        let toml = "[channels.slack.lockout]\ncode_max_failures = 50\nmax_codes_per_day = 100\n";
        let s: GatewaySettings = toml::from_str(toml).unwrap();
        let e = s.validate(Profile::Development).unwrap_err().to_string();
        assert!(e.contains("lockout") && e.contains("2^-40"), "{e}");
        // The old name still parses.
        let old: GatewaySettings =
            toml::from_str("[channels.slack.lockout]\nchannel_max_failures = 20\n").unwrap();
        assert_eq!(old.channels["slack"].lockout.code_max_failures, 20);
    }

    #[test]
    fn wildcard_is_a_config_error_in_every_list() {
        for field in [
            "allowlist",
            "group_allowlist",
            "accounts",
            "transport.team_allowlist",
            "transport.channel_allowlist",
        ] {
            let toml = match field.split_once('.') {
                Some((table, key)) => {
                    format!("[channels.mm.{table}]\n{key} = [\"U1\", \"*\"]\n")
                }
                None => format!("[channels.slack]\n{field} = [\"U1\", \"*\"]\n"),
            };
            let s: GatewaySettings = toml::from_str(&toml).unwrap();
            let e = s.validate(Profile::Development).unwrap_err();
            assert!(e.to_string().contains("wildcard"), "{field}: {e}");
        }
    }

    #[test]
    fn approvers_are_checked_ids_without_duplicates_and_bounded() {
        let parse = |list: &str| {
            toml::from_str::<GatewaySettings>(&format!("[channels.t]\napprovers = {list}\n"))
                .unwrap()
                .validate(Profile::Production)
        };
        assert!(ChannelSettings::default().approvers.is_empty());
        parse("[\"111\", \"222\"]").unwrap();
        for (bad, why) in [
            ("[\"\"]", "empty"),
            ("[\"*\"]", "wildcard"),
            ("[\" 111\"]", "whitespace"),
            ("[\"1\\u0007\"]", "control"),
            ("[\"111\", \"111\"]", "twice"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("approvers") && e.contains(why), "{bad}: {e}");
        }
        let long = format!("[{:?}]", "9".repeat(257));
        assert!(parse(&long).unwrap_err().to_string().contains("256"));
        let many: Vec<String> = (0..=MAX_APPROVERS).map(|n| format!("\"{n}\"")).collect();
        let e = parse(&format!("[{}]", many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 32"), "{e}");
    }

    #[test]
    fn urls_are_https_or_loopback_http_by_host_not_prefix() {
        for key in ["api_base", "keys_url", "token_url", "pubsub_base"] {
            let with = |url: &str| {
                let toml = format!(
                    "[channels.t.transport]\nkind = \"telegram-polling\"\n{key} = {url:?}\n"
                );
                toml::from_str::<GatewaySettings>(&toml)
                    .unwrap()
                    .validate(Profile::Production)
            };
            with("https://api.telegram.org").unwrap();
            with("http://127.0.0.1:8081/").unwrap();
            for bad in [
                "http://localhost.example.com",
                "http://127.0.0.1.nip.io",
                "ftp://127.0.0.1",
                "not a url",
            ] {
                let e = with(bad).unwrap_err().to_string();
                assert!(e.contains(&format!("transport.{key}")), "{bad}: {e}");
            }
        }
    }

    #[test]
    fn mail_servers_are_tls_urls_of_a_host_and_a_port() {
        let imap = |u: &str| mail_server(u, IMAP_SCHEMES);
        let smtp = |u: &str| mail_server(u, SMTP_SCHEMES);
        assert_eq!(
            imap("imaps://Mail.Example.com").unwrap(),
            MailServer {
                scheme: "imaps",
                host: "mail.example.com".into(),
                port: 993
            }
        );
        assert_eq!(smtp("smtps://127.0.0.1:2465/").unwrap().port, 2465);
        assert_eq!(smtp("smtp+starttls://[::1]").unwrap().host, "::1");
        assert_eq!(smtp("smtp+starttls://m.example").unwrap().port, 587);
        for (bad, why) in [
            ("imap://127.0.0.1", "imap:// is not supported; use imaps://"),
            ("smtp://127.0.0.1:25", "use smtps:// or smtp+starttls://"),
            ("imaps://u:p@host", "only a host and a port"),
            ("imaps://host/INBOX", "only a host and a port"),
            ("imaps://host?x=1", "only a host and a port"),
            ("not a url", "not a valid URL"),
        ] {
            let e = format!("{} | {}", imap(bad).unwrap_err(), smtp(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
        // Through the settings, by field.
        let with = |kv: &str| {
            toml::from_str::<GatewaySettings>(&format!(
                "[channels.e.transport]\nkind = \"email\"\n{kv}\n"
            ))
            .unwrap()
            .validate(Profile::Production)
        };
        with("imap_url = \"imaps://127.0.0.1:993\"\nsmtp_url = \"smtps://x\"").unwrap();
        let e = with("imap_url = \"imap://x\"").unwrap_err().to_string();
        assert!(e.contains("transport.imap_url"), "{e}");
        let e = with("subject_filter = \"a\\nb\"").unwrap_err().to_string();
        assert!(e.contains("transport.subject_filter"), "{e}");
    }

    #[test]
    fn open_refused_in_production_only() {
        let s: GatewaySettings = toml::from_str("[channels.t]\ndm = \"open\"\n").unwrap();
        assert!(s.validate(Profile::Production).is_err());
        s.validate(Profile::Development).unwrap();
        let s: GatewaySettings =
            toml::from_str("[channels.t.chats.\"-100\"]\nmode = \"open\"\n").unwrap();
        assert!(s.validate(Profile::Production).is_err());
    }

    #[test]
    fn unknown_fields_and_bad_ttl_refused() {
        assert!(toml::from_str::<GatewaySettings>("[channels.t]\nenabeld = true\n").is_err());
        let s: GatewaySettings = toml::from_str("[channels.t]\npairing_ttl_secs = 59\n").unwrap();
        assert!(s.validate(Profile::Development).is_err());
        let s: GatewaySettings = toml::from_str("[channels.t]\npairing_ttl_secs = 3600\n").unwrap();
        s.validate(Profile::Production).unwrap();
    }

    #[test]
    fn aliases_for_workspaces_and_guilds() {
        let s: GatewaySettings = toml::from_str(
            "[channels.slack]\nworkspaces = [\"T1\"]\n[channels.discord]\nguilds = [\"G1\"]\n",
        )
        .unwrap();
        assert_eq!(s.channels["slack"].accounts, vec!["T1"]);
        assert_eq!(s.channels["discord"].accounts, vec!["G1"]);
    }

    #[test]
    fn superset_of_config_channel_settings() {
        // The fields the real crate's ChannelSettings has parse unchanged.
        let s: GatewaySettings = toml::from_str(
            "[channels.local]\nenabled = false\ndm = \"allowlist\"\ngroup = \"disabled\"\n",
        )
        .unwrap();
        let ch = &s.channels["local"];
        assert!(!ch.enabled);
        assert_eq!(ch.dm, AccessMode::Allowlist);
        assert_eq!(ch.group, AccessMode::Disabled);
    }
}
