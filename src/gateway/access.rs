//! The one access-control policy engine. Every inbound message gets exactly one
//! [`Decision`], evaluated in this order:
//!
//! 1. **Channel**: configured and enabled; account (Slack workspace / Discord
//!    guild) allowlist; group-chat allowlist.
//! 2. **Context policy** (DM or group, per channel, optionally per chat): mode
//!    `disabled` → ignored; `open` outside the development profile → denied;
//!    groups require a mention of the bot unless configured otherwise.
//! 3. **Sender**: revoked → denied (in every mode); allowlisted (settings or
//!    store) → authorized; paired → authorized in `pairing` and `open` mode only
//!    (pairings never leak into `allowlist` mode); unknown → in `pairing` mode
//!    and a DM only, a code redemption (`/pair CODE` or exactly a code) or a
//!    pairing prompt; in groups unknown senders are ignored; `open` authorizes.
//!
//! Then the stateful limits: an authorized sender over the message rate is
//! denied; a redemption by a locked-out sender or channel is denied before any
//! code comparison; a pairing prompt is sent at most once per window per sender,
//! never in silent mode.
//!
//! [`decide`] is the pure part (settings + message + stored standing → decision);
//! [`AccessControl::evaluate`] adds the store and the limits.

use std::sync::Arc;

use super::clock::Clock;
use super::error::GatewayError;
use super::inbound::{Context, Inbound};
use super::pairing::{CodeAttempt, parse_code_message};
use super::ratelimit::MessageLimiter;
use super::settings::{AccessMode, ChannelSettings, GatewaySettings, Profile, ToolPolicy};
use super::store::{Store, UserState};

/// How an authorized sender got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Paired,
    Allowlisted,
    /// `open` mode (development profile only).
    Open,
}

/// The sender a task runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedUser {
    pub channel: String,
    pub sender: String,
    pub grant: Grant,
}

/// Why a message was denied or ignored (for the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownChannel,
    ChannelDisabled,
    AccountNotAllowed,
    GroupNotAllowed,
    ContextDisabled,
    OpenRefusedInProduction,
    NotMentioned,
    Revoked,
    NotAllowlisted,
    UnknownSenderInGroup,
    PromptAlreadySent,
    Silent,
    RateLimited,
    SenderLockedOut { until: i64 },
}

impl Reason {
    /// A stable code for audit entries.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::UnknownChannel => "unknown_channel",
            Reason::ChannelDisabled => "channel_disabled",
            Reason::AccountNotAllowed => "account_not_allowed",
            Reason::GroupNotAllowed => "group_not_allowed",
            Reason::ContextDisabled => "context_disabled",
            Reason::OpenRefusedInProduction => "open_refused_in_production",
            Reason::NotMentioned => "not_mentioned",
            Reason::Revoked => "revoked",
            Reason::NotAllowlisted => "not_allowlisted",
            Reason::UnknownSenderInGroup => "unknown_sender_in_group",
            Reason::PromptAlreadySent => "prompt_already_sent",
            Reason::Silent => "silent",
            Reason::RateLimited => "rate_limited",
            Reason::SenderLockedOut { .. } => "sender_locked_out",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What to do with one inbound message. `Denied` and `Ignored` get no reply;
/// `PairingPrompt` gets the "this assistant requires pairing" reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Authorized {
        user: AuthorizedUser,
        tools: ToolPolicy,
    },
    /// Pass `code` to [`super::Pairing::redeem`].
    RedeemPairing {
        code: CodeAttempt,
    },
    PairingPrompt,
    /// A paired or allowlisted sender sent a pairing code: not for the model;
    /// answered "already paired", and the code cancelled if it is the active one.
    AlreadyAuthorized {
        code: CodeAttempt,
    },
    Denied {
        reason: Reason,
    },
    Ignored {
        reason: Reason,
    },
}

impl Decision {
    /// A stable reason code for the audit trail.
    pub fn audit_reason(&self) -> &'static str {
        match self {
            Decision::Authorized { user, .. } => match user.grant {
                Grant::Paired => "authorized_paired",
                Grant::Allowlisted => "authorized_allowlisted",
                Grant::Open => "authorized_open",
            },
            Decision::RedeemPairing { .. } => "redeem_pairing",
            Decision::PairingPrompt => "pairing_prompt",
            Decision::AlreadyAuthorized { .. } => "already_authorized",
            Decision::Denied { reason } | Decision::Ignored { reason } => reason.code(),
        }
    }
}

/// The pure policy: `settings` of the message's channel (`None`: not configured),
/// the profile, the message, and the sender's stored state.
pub fn decide(
    settings: Option<&ChannelSettings>,
    profile: Profile,
    msg: &Inbound,
    stored: Option<UserState>,
) -> Decision {
    let ignored = |reason| Decision::Ignored { reason };
    let denied = |reason| Decision::Denied { reason };

    // 1. Channel-level restrictions.
    let Some(ch) = settings else {
        return denied(Reason::UnknownChannel);
    };
    if !ch.enabled {
        return ignored(Reason::ChannelDisabled);
    }
    if !ch.accounts.is_empty() {
        match msg.account() {
            Some(a) if ch.accounts.iter().any(|x| x == a) => {}
            // A DM without an account (e.g. a Discord DM) is not under a guild.
            None if msg.context() == Context::Dm => {}
            _ => return denied(Reason::AccountNotAllowed),
        }
    }
    if msg.context() == Context::Group
        && !ch.group_allowlist.is_empty()
        && !ch.group_allowlist.iter().any(|g| g == msg.chat())
    {
        return denied(Reason::GroupNotAllowed);
    }

    // 2. Context policy.
    let policy = ch.resolve(msg.context(), msg.chat());
    match policy.mode {
        AccessMode::Disabled => return ignored(Reason::ContextDisabled),
        AccessMode::Open if profile != Profile::Development => {
            return denied(Reason::OpenRefusedInProduction);
        }
        _ => {}
    }
    if msg.context() == Context::Group && policy.require_mention && !msg.mentions_bot() {
        return ignored(Reason::NotMentioned);
    }

    // 3. Sender.
    let authorized = |grant| Decision::Authorized {
        user: AuthorizedUser {
            channel: msg.channel().to_string(),
            sender: msg.sender().to_string(),
            grant,
        },
        tools: policy.tools.clone(),
    };
    if stored == Some(UserState::Revoked) {
        return denied(Reason::Revoked);
    }
    let allowlisted =
        stored == Some(UserState::Allowlisted) || ch.allowlist.iter().any(|s| s == msg.sender());
    // A pairing code (or `/pair ...`) from someone already admitted never
    // reaches the model: they are told they are paired, and the code is
    // cancelled if it is the channel's active one (it was shown in a chat).
    let admitted = |grant| match parse_code_message(msg.text()) {
        Some(code) => Decision::AlreadyAuthorized { code },
        None => authorized(grant),
    };
    if allowlisted {
        return admitted(Grant::Allowlisted);
    }
    let paired = stored == Some(UserState::Paired);
    match policy.mode {
        AccessMode::Allowlist => denied(Reason::NotAllowlisted),
        AccessMode::Open if paired => admitted(Grant::Paired),
        AccessMode::Open => authorized(Grant::Open),
        AccessMode::Pairing if paired => admitted(Grant::Paired),
        AccessMode::Pairing => match msg.context() {
            Context::Group => ignored(Reason::UnknownSenderInGroup),
            Context::Dm => match parse_code_message(msg.text()) {
                Some(code) => Decision::RedeemPairing { code },
                None => Decision::PairingPrompt,
            },
        },
        AccessMode::Disabled => ignored(Reason::ContextDisabled),
    }
}

/// Whether the bot may follow `sender` into a new chat of `context` (a
/// Matrix invitation), before any message: someone admitted there now (on
/// the allowlist, or paired where pairing counts), or, in a direct chat
/// under the pairing policy, anyone (else nobody could ever send the bot a
/// pairing code). A revoked sender, a disabled context or an unknown
/// channel: never. Development's `open` admits everyone, as `decide` does.
pub fn accepts_invite(
    settings: Option<&ChannelSettings>,
    profile: Profile,
    sender: &str,
    context: Context,
    stored: Option<UserState>,
) -> bool {
    let Some(ch) = settings else { return false };
    let mode = match context {
        Context::Dm => ch.dm,
        Context::Group => ch.group,
    };
    if !ch.enabled || mode == AccessMode::Disabled || stored == Some(UserState::Revoked) {
        return false;
    }
    if stored == Some(UserState::Allowlisted) || ch.allowlist.iter().any(|s| s == sender) {
        return true;
    }
    match mode {
        AccessMode::Pairing => stored == Some(UserState::Paired) || context == Context::Dm,
        AccessMode::Open => profile == Profile::Development || stored == Some(UserState::Paired),
        AccessMode::Allowlist | AccessMode::Disabled => false,
    }
}

/// `last_seen` is written at most this often per user.
const LAST_SEEN_INTERVAL: i64 = 60;

/// The policy engine with its store, clock and limits.
#[derive(Debug)]
pub struct AccessControl {
    settings: Arc<GatewaySettings>,
    profile: Profile,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    limiter: MessageLimiter,
}

impl AccessControl {
    /// The store it reads standings from (a channel keeps its senders'
    /// safety numbers there too).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Validates `settings` against `profile` (so `open` in production, a
    /// wildcard or a bad TTL is refused here, at startup).
    pub fn new(
        settings: Arc<GatewaySettings>,
        profile: Profile,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<AccessControl, GatewayError> {
        settings.validate(profile)?;
        Ok(AccessControl {
            settings,
            profile,
            store,
            clock,
            limiter: MessageLimiter::default(),
        })
    }

    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }

    /// Until when pairing is paused for (`channel`, `sender`), if it is.
    pub fn lockout(&self, channel: &str, sender: &str) -> Result<Option<i64>, GatewayError> {
        self.store.lockout(channel, sender, self.clock.now())
    }

    /// [`accepts_invite`] for `sender` on `channel`, by its stored state.
    pub fn accepts_invite(
        &self,
        channel: &str,
        sender: &str,
        context: Context,
    ) -> Result<bool, GatewayError> {
        let ch = self.settings.channels.get(channel);
        let stored = match ch {
            Some(_) => self.store.user(channel, sender)?.map(|u| u.state),
            None => None,
        };
        Ok(accepts_invite(ch, self.profile, sender, context, stored))
    }

    /// Decides what to do with `msg` (see the module doc for the order).
    pub fn evaluate(&self, msg: &Inbound) -> Result<Decision, GatewayError> {
        let ch = self.settings.channels.get(msg.channel());
        let record = match ch {
            Some(_) => self.store.user(msg.channel(), msg.sender())?,
            None => None,
        };
        let stored = record.as_ref().map(|u| u.state);
        let decision = decide(ch, self.profile, msg, stored);
        let Some(ch) = ch else { return Ok(decision) };
        let now = self.clock.now();
        Ok(match decision {
            Decision::Authorized { .. } => {
                let rl = &ch.rate_limit;
                if !self.limiter.take(
                    msg.channel(),
                    msg.sender(),
                    now,
                    rl.messages_per_minute,
                    rl.burst,
                ) {
                    Decision::Denied {
                        reason: Reason::RateLimited,
                    }
                } else {
                    // Written at most once a minute: a write takes state.db's
                    // write lock, which every message would otherwise contend for.
                    if let Some(u) = &record
                        && u.last_seen.is_none_or(|at| at <= now - LAST_SEEN_INTERVAL)
                    {
                        self.store
                            .touch(msg.channel(), msg.sender(), now, LAST_SEEN_INTERVAL)?;
                    }
                    decision
                }
            }
            Decision::RedeemPairing { .. } => {
                if let Some(until) = self.store.lockout(msg.channel(), msg.sender(), now)? {
                    Decision::Denied {
                        reason: Reason::SenderLockedOut { until },
                    }
                } else {
                    decision
                }
            }
            Decision::PairingPrompt => {
                let window = i64::try_from(ch.prompt_window_secs).unwrap_or(i64::MAX);
                if ch.silent {
                    Decision::Ignored {
                        reason: Reason::Silent,
                    }
                } else if !self
                    .store
                    .claim_prompt(msg.channel(), msg.sender(), now, window)?
                {
                    Decision::Ignored {
                        reason: Reason::PromptAlreadySent,
                    }
                } else {
                    decision
                }
            }
            Decision::AlreadyAuthorized { .. }
            | Decision::Denied { .. }
            | Decision::Ignored { .. } => decision,
        })
    }

    /// Undoes the prompt claim of a [`Decision::PairingPrompt`] whose prompt
    /// was never sent (its audit entry failed), so the platform's retry prompts.
    pub fn release_prompt(&self, msg: &Inbound) -> Result<(), GatewayError> {
        self.store.release_prompt(msg.channel(), msg.sender())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitations_are_accepted_from_admitted_senders_and_for_pairing_dms_only() {
        use AccessMode::*;
        use Context::*;
        let ch = |dm, group| ChannelSettings {
            dm,
            group,
            allowlist: vec!["@listed:x".into()],
            ..ChannelSettings::default()
        };
        let paired = Some(UserState::Paired);
        let revoked = Some(UserState::Revoked);
        let p = Profile::Production;
        // (settings, sender, context, stored) → accepted
        let table: &[(ChannelSettings, &str, Context, Option<UserState>, bool)] = &[
            (ch(Pairing, Pairing), "@new:x", Dm, None, true),
            (ch(Pairing, Pairing), "@new:x", Group, None, false),
            (ch(Pairing, Pairing), "@p:x", Group, paired, true),
            (ch(Pairing, Pairing), "@listed:x", Group, None, true),
            (ch(Pairing, Pairing), "@listed:x", Dm, revoked, false),
            (ch(Allowlist, Allowlist), "@new:x", Dm, None, false),
            (ch(Allowlist, Allowlist), "@p:x", Dm, paired, false),
            (ch(Allowlist, Allowlist), "@listed:x", Group, None, true),
            (ch(Disabled, Pairing), "@listed:x", Dm, None, false),
            (ch(Open, Open), "@new:x", Group, None, false),
        ];
        for (i, (settings, sender, context, stored, want)) in table.iter().enumerate() {
            assert_eq!(
                accepts_invite(Some(settings), p, sender, *context, *stored),
                *want,
                "row {i}"
            );
        }
        let dev = accepts_invite(
            Some(&ch(Open, Open)),
            Profile::Development,
            "@n:x",
            Group,
            None,
        );
        assert!(dev, "open admits everyone in development");
        let mut off = ch(Pairing, Pairing);
        off.enabled = false;
        assert!(!accepts_invite(Some(&off), p, "@listed:x", Dm, None));
        assert!(!accepts_invite(None, p, "@listed:x", Dm, None));
    }
}
