//! The access-control policy engine end to end (settings + store + limits):
//! a table of every (mode × context × sender state × mention × message-is-code)
//! combination with its expected decision, then the known failure cases of other
//! gateways, each as its own named test, and the channel-level restrictions,
//! tool policies, prompt window, silent mode and message rate limit.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use std::sync::Arc;

use cowork::gateway::{
    AccessControl, AccessMode, ChannelSettings, ChatPolicy, CodeAttempt, Context, Decision,
    GatewaySettings, Grant, Inbound, Pairing, PairingKey, Profile, RawInbound, Reason,
    RedeemOutcome, Store, TestClock, ToolPolicy, UserState, decide,
};
use tempfile::TempDir;

const T0: i64 = 1_700_000_000;
const CH: &str = "telegram";
const GROUP_CHAT: &str = "-1001";

struct Rig {
    _dir: TempDir,
    store: Arc<Store>,
    clock: TestClock,
    access: AccessControl,
    pairing: Pairing,
}

fn settings_with(ch: ChannelSettings) -> Arc<GatewaySettings> {
    let mut s = GatewaySettings::default();
    s.channels.insert(CH.to_string(), ch);
    Arc::new(s)
}

fn rig_in(dir: TempDir, ch: ChannelSettings, profile: Profile) -> Rig {
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let clock = TestClock::new(T0);
    let settings = settings_with(ch);
    let access = AccessControl::new(
        settings.clone(),
        profile,
        store.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let pairing = Pairing::new(
        store.clone(),
        PairingKey::from_bytes([0x42; 32]),
        Arc::new(clock.clone()),
        settings,
    );
    Rig {
        _dir: dir,
        store,
        clock,
        access,
        pairing,
    }
}

fn rig(ch: ChannelSettings, profile: Profile) -> Rig {
    rig_in(tempfile::tempdir().unwrap(), ch, profile)
}

fn msg(sender: &str, context: Context, mentions_bot: bool, text: &str) -> Inbound {
    Inbound::try_from(RawInbound {
        channel: CH.into(),
        account: None,
        sender: sender.into(),
        sender_name: None,
        chat: match context {
            Context::Dm => sender.into(),
            Context::Group => GROUP_CHAT.into(),
        },
        context,
        mentions_bot,
        text: text.into(),
        attachments: vec![],
    })
    .unwrap()
}

fn dm(sender: &str, text: &str) -> Inbound {
    msg(sender, Context::Dm, false, text)
}

impl Rig {
    fn eval(&self, m: &Inbound) -> Decision {
        self.access.evaluate(m).unwrap()
    }

    /// Pairs `sender` through the real code path.
    fn pair(&self, sender: &str) {
        let issued = self.pairing.issue(CH).unwrap();
        let out = self
            .pairing
            .redeem(CH, sender, None, &CodeAttempt::new(issued.code.as_str()))
            .unwrap();
        assert!(matches!(out, RedeemOutcome::Paired(_)), "{out:?}");
    }
}

fn grant_of(d: &Decision) -> Option<Grant> {
    match d {
        Decision::Authorized { user, .. } => Some(user.grant),
        _ => None,
    }
}

// ---------------------------------------------------------------- the table

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    Unknown,
    Paired,
    Allowlisted,
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Auth(Grant),
    Redeem,
    Prompt,
    Already,
    Deny(&'static str),
    Ign(&'static str),
}

use AccessMode::{Allowlist, Disabled, Open, Pairing as PairingMode};
use Context::{Dm, Group};
use Expect::{Already, Auth, Deny, Ign, Prompt, Redeem};
use State::{Allowlisted, Paired, Revoked, Unknown};
const MENTION: bool = true;
const NO_MENT: bool = false;
const CODE: bool = true;
const TEXT: bool = false;
#[allow(non_upper_case_globals)]
const Pairing: AccessMode = PairingMode;

/// (mode of the context, context, sender state, mentions bot, text is a code) → decision.
/// `Allowlisted` = on the channel's configured allowlist. Open rows run in the
/// development profile.
#[rustfmt::skip]
const TABLE: &[(AccessMode, Context, State, bool, bool, Expect)] = &[
    (Pairing,   Dm   , Unknown    , NO_MENT, TEXT, Prompt),
    (Pairing,   Dm   , Unknown    , NO_MENT, CODE, Redeem),
    (Pairing,   Dm   , Unknown    , MENTION, TEXT, Prompt),
    (Pairing,   Dm   , Unknown    , MENTION, CODE, Redeem),
    (Pairing,   Dm   , Paired     , NO_MENT, TEXT, Auth(Grant::Paired)),
    (Pairing,   Dm   , Paired     , NO_MENT, CODE, Already),
    (Pairing,   Dm   , Paired     , MENTION, TEXT, Auth(Grant::Paired)),
    (Pairing,   Dm   , Paired     , MENTION, CODE, Already),
    (Pairing,   Dm   , Allowlisted, NO_MENT, TEXT, Auth(Grant::Allowlisted)),
    (Pairing,   Dm   , Allowlisted, NO_MENT, CODE, Already),
    (Pairing,   Dm   , Allowlisted, MENTION, TEXT, Auth(Grant::Allowlisted)),
    (Pairing,   Dm   , Allowlisted, MENTION, CODE, Already),
    (Pairing,   Dm   , Revoked    , NO_MENT, TEXT, Deny("revoked")),
    (Pairing,   Dm   , Revoked    , NO_MENT, CODE, Deny("revoked")),
    (Pairing,   Dm   , Revoked    , MENTION, TEXT, Deny("revoked")),
    (Pairing,   Dm   , Revoked    , MENTION, CODE, Deny("revoked")),
    (Pairing,   Group, Unknown    , NO_MENT, TEXT, Ign("not_mentioned")),
    (Pairing,   Group, Unknown    , NO_MENT, CODE, Ign("not_mentioned")),
    (Pairing,   Group, Unknown    , MENTION, TEXT, Ign("unknown_sender_in_group")),
    (Pairing,   Group, Unknown    , MENTION, CODE, Ign("unknown_sender_in_group")),
    (Pairing,   Group, Paired     , NO_MENT, TEXT, Ign("not_mentioned")),
    (Pairing,   Group, Paired     , NO_MENT, CODE, Ign("not_mentioned")),
    (Pairing,   Group, Paired     , MENTION, TEXT, Auth(Grant::Paired)),
    (Pairing,   Group, Paired     , MENTION, CODE, Already),
    (Pairing,   Group, Allowlisted, NO_MENT, TEXT, Ign("not_mentioned")),
    (Pairing,   Group, Allowlisted, NO_MENT, CODE, Ign("not_mentioned")),
    (Pairing,   Group, Allowlisted, MENTION, TEXT, Auth(Grant::Allowlisted)),
    (Pairing,   Group, Allowlisted, MENTION, CODE, Already),
    (Pairing,   Group, Revoked    , NO_MENT, TEXT, Ign("not_mentioned")),
    (Pairing,   Group, Revoked    , NO_MENT, CODE, Ign("not_mentioned")),
    (Pairing,   Group, Revoked    , MENTION, TEXT, Deny("revoked")),
    (Pairing,   Group, Revoked    , MENTION, CODE, Deny("revoked")),
    (Allowlist, Dm   , Unknown    , NO_MENT, TEXT, Deny("not_allowlisted")),
    (Allowlist, Dm   , Unknown    , NO_MENT, CODE, Deny("not_allowlisted")),
    (Allowlist, Dm   , Unknown    , MENTION, TEXT, Deny("not_allowlisted")),
    (Allowlist, Dm   , Unknown    , MENTION, CODE, Deny("not_allowlisted")),
    (Allowlist, Dm   , Paired     , NO_MENT, TEXT, Deny("not_allowlisted")),
    (Allowlist, Dm   , Paired     , NO_MENT, CODE, Deny("not_allowlisted")),
    (Allowlist, Dm   , Paired     , MENTION, TEXT, Deny("not_allowlisted")),
    (Allowlist, Dm   , Paired     , MENTION, CODE, Deny("not_allowlisted")),
    (Allowlist, Dm   , Allowlisted, NO_MENT, TEXT, Auth(Grant::Allowlisted)),
    (Allowlist, Dm   , Allowlisted, NO_MENT, CODE, Already),
    (Allowlist, Dm   , Allowlisted, MENTION, TEXT, Auth(Grant::Allowlisted)),
    (Allowlist, Dm   , Allowlisted, MENTION, CODE, Already),
    (Allowlist, Dm   , Revoked    , NO_MENT, TEXT, Deny("revoked")),
    (Allowlist, Dm   , Revoked    , NO_MENT, CODE, Deny("revoked")),
    (Allowlist, Dm   , Revoked    , MENTION, TEXT, Deny("revoked")),
    (Allowlist, Dm   , Revoked    , MENTION, CODE, Deny("revoked")),
    (Allowlist, Group, Unknown    , NO_MENT, TEXT, Ign("not_mentioned")),
    (Allowlist, Group, Unknown    , NO_MENT, CODE, Ign("not_mentioned")),
    (Allowlist, Group, Unknown    , MENTION, TEXT, Deny("not_allowlisted")),
    (Allowlist, Group, Unknown    , MENTION, CODE, Deny("not_allowlisted")),
    (Allowlist, Group, Paired     , NO_MENT, TEXT, Ign("not_mentioned")),
    (Allowlist, Group, Paired     , NO_MENT, CODE, Ign("not_mentioned")),
    (Allowlist, Group, Paired     , MENTION, TEXT, Deny("not_allowlisted")),
    (Allowlist, Group, Paired     , MENTION, CODE, Deny("not_allowlisted")),
    (Allowlist, Group, Allowlisted, NO_MENT, TEXT, Ign("not_mentioned")),
    (Allowlist, Group, Allowlisted, NO_MENT, CODE, Ign("not_mentioned")),
    (Allowlist, Group, Allowlisted, MENTION, TEXT, Auth(Grant::Allowlisted)),
    (Allowlist, Group, Allowlisted, MENTION, CODE, Already),
    (Allowlist, Group, Revoked    , NO_MENT, TEXT, Ign("not_mentioned")),
    (Allowlist, Group, Revoked    , NO_MENT, CODE, Ign("not_mentioned")),
    (Allowlist, Group, Revoked    , MENTION, TEXT, Deny("revoked")),
    (Allowlist, Group, Revoked    , MENTION, CODE, Deny("revoked")),
    (Open     , Dm   , Unknown    , NO_MENT, TEXT, Auth(Grant::Open)),
    (Open     , Dm   , Unknown    , NO_MENT, CODE, Auth(Grant::Open)),
    (Open     , Dm   , Unknown    , MENTION, TEXT, Auth(Grant::Open)),
    (Open     , Dm   , Unknown    , MENTION, CODE, Auth(Grant::Open)),
    (Open     , Dm   , Paired     , NO_MENT, TEXT, Auth(Grant::Paired)),
    (Open     , Dm   , Paired     , NO_MENT, CODE, Already),
    (Open     , Dm   , Paired     , MENTION, TEXT, Auth(Grant::Paired)),
    (Open     , Dm   , Paired     , MENTION, CODE, Already),
    (Open     , Dm   , Allowlisted, NO_MENT, TEXT, Auth(Grant::Allowlisted)),
    (Open     , Dm   , Allowlisted, NO_MENT, CODE, Already),
    (Open     , Dm   , Allowlisted, MENTION, TEXT, Auth(Grant::Allowlisted)),
    (Open     , Dm   , Allowlisted, MENTION, CODE, Already),
    (Open     , Dm   , Revoked    , NO_MENT, TEXT, Deny("revoked")),
    (Open     , Dm   , Revoked    , NO_MENT, CODE, Deny("revoked")),
    (Open     , Dm   , Revoked    , MENTION, TEXT, Deny("revoked")),
    (Open     , Dm   , Revoked    , MENTION, CODE, Deny("revoked")),
    (Open     , Group, Unknown    , NO_MENT, TEXT, Ign("not_mentioned")),
    (Open     , Group, Unknown    , NO_MENT, CODE, Ign("not_mentioned")),
    (Open     , Group, Unknown    , MENTION, TEXT, Auth(Grant::Open)),
    (Open     , Group, Unknown    , MENTION, CODE, Auth(Grant::Open)),
    (Open     , Group, Paired     , NO_MENT, TEXT, Ign("not_mentioned")),
    (Open     , Group, Paired     , NO_MENT, CODE, Ign("not_mentioned")),
    (Open     , Group, Paired     , MENTION, TEXT, Auth(Grant::Paired)),
    (Open     , Group, Paired     , MENTION, CODE, Already),
    (Open     , Group, Allowlisted, NO_MENT, TEXT, Ign("not_mentioned")),
    (Open     , Group, Allowlisted, NO_MENT, CODE, Ign("not_mentioned")),
    (Open     , Group, Allowlisted, MENTION, TEXT, Auth(Grant::Allowlisted)),
    (Open     , Group, Allowlisted, MENTION, CODE, Already),
    (Open     , Group, Revoked    , NO_MENT, TEXT, Ign("not_mentioned")),
    (Open     , Group, Revoked    , NO_MENT, CODE, Ign("not_mentioned")),
    (Open     , Group, Revoked    , MENTION, TEXT, Deny("revoked")),
    (Open     , Group, Revoked    , MENTION, CODE, Deny("revoked")),
    (Disabled , Dm   , Unknown    , NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Unknown    , NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Dm   , Unknown    , MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Unknown    , MENTION, CODE, Ign("context_disabled")),
    (Disabled , Dm   , Paired     , NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Paired     , NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Dm   , Paired     , MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Paired     , MENTION, CODE, Ign("context_disabled")),
    (Disabled , Dm   , Allowlisted, NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Allowlisted, NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Dm   , Allowlisted, MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Allowlisted, MENTION, CODE, Ign("context_disabled")),
    (Disabled , Dm   , Revoked    , NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Revoked    , NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Dm   , Revoked    , MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Dm   , Revoked    , MENTION, CODE, Ign("context_disabled")),
    (Disabled , Group, Unknown    , NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Group, Unknown    , NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Group, Unknown    , MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Group, Unknown    , MENTION, CODE, Ign("context_disabled")),
    (Disabled , Group, Paired     , NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Group, Paired     , NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Group, Paired     , MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Group, Paired     , MENTION, CODE, Ign("context_disabled")),
    (Disabled , Group, Allowlisted, NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Group, Allowlisted, NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Group, Allowlisted, MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Group, Allowlisted, MENTION, CODE, Ign("context_disabled")),
    (Disabled , Group, Revoked    , NO_MENT, TEXT, Ign("context_disabled")),
    (Disabled , Group, Revoked    , NO_MENT, CODE, Ign("context_disabled")),
    (Disabled , Group, Revoked    , MENTION, TEXT, Ign("context_disabled")),
    (Disabled , Group, Revoked    , MENTION, CODE, Ign("context_disabled")),
];

fn observed(d: &Decision) -> Expect {
    match d {
        Decision::Authorized { user, .. } => Auth(user.grant),
        Decision::RedeemPairing { .. } => Redeem,
        Decision::PairingPrompt => Prompt,
        Decision::AlreadyAuthorized { .. } => Already,
        Decision::Denied { reason } => Deny(reason.code()),
        Decision::Ignored { reason } => Ign(reason.code()),
    }
}

#[test]
fn decision_table_covers_every_combination() {
    // The table is complete and has no duplicates.
    let mut seen = std::collections::HashSet::new();
    for &(mode, ctx, state, mention, code, _) in TABLE {
        assert!(
            seen.insert((mode, ctx, state, mention, code)),
            "duplicate row {mode:?} {ctx:?} {state:?}"
        );
    }
    assert_eq!(seen.len(), 4 * 2 * 4 * 2 * 2);

    for &(mode, ctx, state, mention, code, expected) in TABLE {
        let ch = ChannelSettings {
            dm: mode,
            group: mode,
            allowlist: vec!["allowed".into()],
            ..ChannelSettings::default()
        };
        let r = rig(ch, Profile::Development);
        let sender = match state {
            Unknown => "stranger",
            Paired => {
                r.pair("friend");
                "friend"
            }
            Allowlisted => "allowed",
            Revoked => {
                r.pair("ex");
                r.store.revoke_user(CH, "ex", T0).unwrap();
                "ex"
            }
        };
        let text = if code { "ABCD2345" } else { "hello there" };
        let d = r.eval(&msg(sender, ctx, mention, text));
        assert_eq!(
            observed(&d),
            expected,
            "mode={mode:?} ctx={ctx:?} state={state:?} mention={mention} code={code}: {d:?}"
        );
        // The pure function agrees with the engine on first contact.
        let stored = r.store.user(CH, sender).unwrap().map(|u| u.state);
        let pure = decide(
            r.access.settings().channels.get(CH),
            Profile::Development,
            &msg(sender, ctx, mention, text),
            stored,
        );
        assert_eq!(observed(&pure), expected, "pure decide, same row");
    }
}

// ------------------------------------------------- known failure cases

#[test]
fn wildcard_allowlist_is_a_config_error_not_a_pairing_bypass() {
    let ch = ChannelSettings {
        allowlist: vec!["*".into()],
        ..ChannelSettings::default()
    };
    for profile in [Profile::Production, Profile::Development] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let err = AccessControl::new(
            settings_with(ch.clone()),
            profile,
            store,
            Arc::new(TestClock::new(T0)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("wildcard"), "{err}");
    }
    // Even unvalidated settings never treat "*" as everyone: the pure policy
    // compares ids literally and no sender id can be "*".
    let d = decide(Some(&ch), Profile::Production, &dm("stranger", "hi"), None);
    assert_eq!(d, Decision::PairingPrompt);
    let raw = RawInbound {
        channel: CH.into(),
        account: None,
        sender: "*".into(),
        sender_name: None,
        chat: "1".into(),
        context: Dm,
        mentions_bot: false,
        text: "hi".into(),
        attachments: vec![],
    };
    assert!(Inbound::try_from(raw).is_err());
}

#[test]
fn stored_pairings_do_not_leak_into_allowlist_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let r = rig_in(dir, ChannelSettings::default(), Profile::Production);
    r.pair("friend");
    assert_eq!(grant_of(&r.eval(&dm("friend", "hi"))), Some(Grant::Paired));
    // The owner switches the channel's DMs to allowlist mode (same state.db).
    let ch = ChannelSettings {
        dm: Allowlist,
        allowlist: vec!["boss".into()],
        ..ChannelSettings::default()
    };
    let access = AccessControl::new(
        settings_with(ch),
        Profile::Production,
        Arc::new(Store::open(&path).unwrap()),
        Arc::new(r.clock.clone()),
    )
    .unwrap();
    assert_eq!(
        access.evaluate(&dm("friend", "hi")).unwrap(),
        Decision::Denied {
            reason: Reason::NotAllowlisted
        }
    );
    assert_eq!(
        grant_of(&access.evaluate(&dm("boss", "hi")).unwrap()),
        Some(Grant::Allowlisted)
    );
}

#[test]
fn allowlist_mode_never_sends_prompts_or_accepts_codes() {
    let ch = ChannelSettings {
        dm: Allowlist,
        group: Allowlist,
        ..ChannelSettings::default()
    };
    let r = rig(ch, Profile::Production);
    let issued = r.pairing.issue(CH).unwrap();
    for text in [
        "hello",
        issued.code.as_str(),
        &format!("/pair {}", issued.code.as_str()),
        "/pair",
    ] {
        for _ in 0..3 {
            let d = r.eval(&dm("stranger", text));
            assert_eq!(
                d,
                Decision::Denied {
                    reason: Reason::NotAllowlisted
                },
                "{text:?}"
            );
        }
    }
    // The code was never consumed and no prompt was recorded.
    assert_eq!(r.pairing.list(Some(CH)).unwrap().len(), 1);
}

#[test]
fn group_membership_never_grants_dm_rights() {
    // Groups open (development) and the group allowlisted; DMs stay pairing.
    let ch = ChannelSettings {
        group: Open,
        group_allowlist: vec![GROUP_CHAT.into()],
        ..ChannelSettings::default()
    };
    let r = rig(ch, Profile::Development);
    let g = r.eval(&msg("member", Group, true, "hi"));
    assert_eq!(grant_of(&g), Some(Grant::Open));
    assert_eq!(r.eval(&dm("member", "hi")), Decision::PairingPrompt);
    assert!(
        r.store.user(CH, "member").unwrap().is_none(),
        "no user row from a group"
    );
    // Same with DMs in allowlist mode.
    let ch = ChannelSettings {
        dm: Allowlist,
        group: Open,
        ..ChannelSettings::default()
    };
    let r = rig(ch, Profile::Development);
    assert!(grant_of(&r.eval(&msg("member", Group, true, "hi"))).is_some());
    assert_eq!(
        r.eval(&dm("member", "hi")),
        Decision::Denied {
            reason: Reason::NotAllowlisted
        }
    );
}

#[test]
fn paired_users_codes_never_reach_the_model_nor_count() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    r.pair("friend");
    let active = r.pairing.issue(CH).unwrap();
    // Code-shaped messages of a paired user are answered "already paired"
    // (issue 19), never passed to the model; ordinary text is.
    for text in [
        "ABCD2345",
        active.code.as_str(),
        &format!("/pair {}", active.code.as_str()),
    ] {
        assert!(
            matches!(
                r.eval(&dm("friend", text)),
                Decision::AlreadyAuthorized { .. }
            ),
            "{text:?}"
        );
    }
    assert_eq!(
        grant_of(&r.eval(&dm("friend", "my code is ABCD2345"))),
        Some(Grant::Paired)
    );
    // The other user's code is untouched and no failure was counted.
    assert_eq!(r.pairing.list(Some(CH)).unwrap().len(), 1);
    assert_eq!(r.store.lockout(CH, "friend", r.clock_now()).unwrap(), None);
    // Only unknown senders in pairing mode redeem, and only exact codes or /pair.
    for (text, is_code) in [
        ("ABCD2345", true),
        ("ABCD-2345", true),
        ("/pair abcd2345", true),
        ("/pair@cowork_bot ABCD2345", true),
        ("hello123", false),
        ("my code is ABCD2345", false),
        ("abcd2345", false),
        ("ABCD23456", false),
    ] {
        let d = decide(
            r.access.settings().channels.get(CH),
            Profile::Production,
            &dm("stranger", text),
            None,
        );
        assert_eq!(
            matches!(d, Decision::RedeemPairing { .. }),
            is_code,
            "{text:?}: {d:?}"
        );
    }
}

trait Now {
    fn clock_now(&self) -> i64;
}
impl Now for Rig {
    fn clock_now(&self) -> i64 {
        use cowork::gateway::Clock;
        self.clock.now()
    }
}

#[test]
fn open_mode_is_refused_in_production() {
    let ch = ChannelSettings {
        dm: Open,
        ..ChannelSettings::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    assert!(
        AccessControl::new(
            settings_with(ch.clone()),
            Profile::Production,
            store,
            Arc::new(TestClock::new(T0))
        )
        .is_err()
    );
    // The pure policy refuses it too, should unvalidated settings reach it.
    let d = decide(Some(&ch), Profile::Production, &dm("x", "hi"), None);
    assert_eq!(
        d,
        Decision::Denied {
            reason: Reason::OpenRefusedInProduction
        }
    );
    let ch = ChannelSettings {
        chats: [(
            "x".to_string(),
            ChatPolicy {
                mode: Some(Open),
                ..ChatPolicy::default()
            },
        )]
        .into(),
        ..ChannelSettings::default()
    };
    let d = decide(Some(&ch), Profile::Production, &dm("x", "hi"), None);
    assert_eq!(
        d,
        Decision::Denied {
            reason: Reason::OpenRefusedInProduction
        }
    );
}

#[test]
fn unknown_senders_cannot_redeem_in_groups() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    let issued = r.pairing.issue(CH).unwrap();
    let d = r.eval(&msg("stranger", Group, true, issued.code.as_str()));
    assert_eq!(
        d,
        Decision::Ignored {
            reason: Reason::UnknownSenderInGroup
        }
    );
}

#[test]
fn revoked_beats_allowlist_and_store_allowlist_counts() {
    let ch = ChannelSettings {
        dm: Allowlist,
        allowlist: vec!["boss".into()],
        ..ChannelSettings::default()
    };
    let r = rig(ch, Profile::Production);
    r.store
        .allowlist_user(CH, "helper", Some("Helper"), T0)
        .unwrap();
    assert_eq!(
        grant_of(&r.eval(&dm("helper", "hi"))),
        Some(Grant::Allowlisted)
    );
    r.store.revoke_user(CH, "boss", T0).unwrap();
    assert_eq!(
        r.eval(&dm("boss", "hi")),
        Decision::Denied {
            reason: Reason::Revoked
        }
    );
}

#[test]
fn revoked_user_cannot_pair_again_until_forgotten() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    r.pair("ex");
    r.store.revoke_user(CH, "ex", T0).unwrap();
    let issued = r.pairing.issue(CH).unwrap();
    let attempt = CodeAttempt::new(issued.code.as_str());
    assert_eq!(
        r.pairing.redeem(CH, "ex", None, &attempt).unwrap(),
        RedeemOutcome::Revoked
    );
    assert_eq!(
        r.eval(&dm("ex", issued.code.as_str())),
        Decision::Denied {
            reason: Reason::Revoked
        }
    );
    r.store.forget_user(CH, "ex").unwrap();
    assert!(matches!(
        r.pairing.redeem(CH, "ex", None, &attempt).unwrap(),
        RedeemOutcome::Paired(_)
    ));
}

// ------------------------------------------- channel-level restrictions

#[test]
fn channel_restrictions_come_first() {
    let r = rig(
        ChannelSettings {
            accounts: vec!["T-OK".into()],
            group_allowlist: vec![GROUP_CHAT.into()],
            allowlist: vec!["boss".into()],
            ..ChannelSettings::default()
        },
        Profile::Production,
    );
    let with = |account: Option<&str>, ctx: Context, chat: &str, channel: &str| {
        Inbound::try_from(RawInbound {
            channel: channel.into(),
            account: account.map(Into::into),
            sender: "boss".into(),
            sender_name: None,
            chat: chat.into(),
            context: ctx,
            mentions_bot: true,
            text: "hi".into(),
            attachments: vec![],
        })
        .unwrap()
    };
    let reason = |d: Decision| match d {
        Decision::Denied { reason } | Decision::Ignored { reason } => Some(reason),
        _ => None,
    };
    // Even an allowlisted sender is refused by channel-level restrictions.
    assert_eq!(
        reason(r.eval(&with(Some("T-OK"), Dm, "d", "nosuch"))),
        Some(Reason::UnknownChannel)
    );
    assert_eq!(
        reason(r.eval(&with(Some("T-EVIL"), Dm, "d", CH))),
        Some(Reason::AccountNotAllowed)
    );
    assert_eq!(
        reason(r.eval(&with(None, Group, GROUP_CHAT, CH))),
        Some(Reason::AccountNotAllowed)
    );
    assert_eq!(
        reason(r.eval(&with(Some("T-OK"), Group, "-999", CH))),
        Some(Reason::GroupNotAllowed)
    );
    assert_eq!(
        reason(r.eval(&with(Some("T-OK"), Group, GROUP_CHAT, CH))),
        None
    );
    // A DM without an account (Discord DMs have no guild) is not under a guild.
    assert_eq!(reason(r.eval(&with(None, Dm, "d", CH))), None);

    let r = rig(
        ChannelSettings {
            enabled: false,
            ..ChannelSettings::default()
        },
        Profile::Production,
    );
    assert_eq!(
        r.eval(&dm("x", "hi")),
        Decision::Ignored {
            reason: Reason::ChannelDisabled
        }
    );
}

#[test]
fn tool_policy_per_context_and_per_chat() {
    let r = rig(
        ChannelSettings {
            allowlist: vec!["boss".into()],
            chats: [(
                "-2002".to_string(),
                ChatPolicy {
                    require_mention: Some(false),
                    tools: Some(ToolPolicy {
                        deny: ["memory", "clipboard", "shell"]
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    }),
                    ..ChatPolicy::default()
                },
            )]
            .into(),
            ..ChannelSettings::default()
        },
        Profile::Production,
    );
    let tools = |d: Decision| match d {
        Decision::Authorized { tools, .. } => tools,
        other => panic!("{other:?}"),
    };
    let t = tools(r.eval(&dm("boss", "hi")));
    assert!(t.allows("memory") && t.allows("clipboard"));
    let t = tools(r.eval(&msg("boss", Group, true, "hi")));
    assert!(!t.allows("memory") && !t.allows("clipboard") && t.allows("shell"));
    // Per-chat override: no mention needed, shell denied too.
    let m = Inbound::try_from(RawInbound {
        channel: CH.into(),
        account: None,
        sender: "boss".into(),
        sender_name: None,
        chat: "-2002".into(),
        context: Group,
        mentions_bot: false,
        text: "hi".into(),
        attachments: vec![],
    })
    .unwrap();
    let t = tools(r.eval(&m));
    assert!(!t.allows("shell") && !t.allows("memory"));
}

#[test]
fn per_chat_mode_override() {
    let r = rig(
        ChannelSettings {
            chats: [(
                "quiet".to_string(),
                ChatPolicy {
                    mode: Some(Disabled),
                    ..ChatPolicy::default()
                },
            )]
            .into(),
            ..ChannelSettings::default()
        },
        Profile::Production,
    );
    assert_eq!(
        r.eval(&dm("quiet", "hi")),
        Decision::Ignored {
            reason: Reason::ContextDisabled
        }
    );
    assert_eq!(r.eval(&dm("loud", "hi")), Decision::PairingPrompt);
}

// --------------------------------------------------- stateful limits

#[test]
fn pairing_prompt_at_most_once_per_window() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    assert_eq!(r.eval(&dm("stranger", "hi")), Decision::PairingPrompt);
    for _ in 0..5 {
        assert_eq!(
            r.eval(&dm("stranger", "hi?")),
            Decision::Ignored {
                reason: Reason::PromptAlreadySent
            }
        );
    }
    assert_eq!(r.eval(&dm("other", "hi")), Decision::PairingPrompt);
    r.clock.advance(3599);
    assert!(matches!(
        r.eval(&dm("stranger", "hi")),
        Decision::Ignored { .. }
    ));
    r.clock.advance(1);
    assert_eq!(r.eval(&dm("stranger", "hi")), Decision::PairingPrompt);
}

#[test]
fn silent_mode_never_prompts_but_still_redeems() {
    let r = rig(
        ChannelSettings {
            silent: true,
            ..ChannelSettings::default()
        },
        Profile::Production,
    );
    assert_eq!(
        r.eval(&dm("stranger", "hi")),
        Decision::Ignored {
            reason: Reason::Silent
        }
    );
    assert!(matches!(
        r.eval(&dm("stranger", "/pair ABCD2345")),
        Decision::RedeemPairing { .. }
    ));
}

#[test]
fn message_rate_limit_is_enforced_per_user() {
    let r = rig(
        ChannelSettings {
            allowlist: vec!["boss".into(), "other".into()],
            ..ChannelSettings::default()
        },
        Profile::Production,
    );
    for i in 0..20 {
        assert!(
            grant_of(&r.eval(&dm("boss", "hi"))).is_some(),
            "message {i}"
        );
    }
    assert_eq!(
        r.eval(&dm("boss", "hi")),
        Decision::Denied {
            reason: Reason::RateLimited
        }
    );
    assert!(grant_of(&r.eval(&dm("other", "hi"))).is_some());
    r.clock.advance(3);
    assert!(grant_of(&r.eval(&dm("boss", "hi"))).is_some());
    assert!(matches!(r.eval(&dm("boss", "hi")), Decision::Denied { .. }));
    r.clock.advance(60);
    for _ in 0..20 {
        assert!(grant_of(&r.eval(&dm("boss", "hi"))).is_some());
    }
}

#[test]
fn locked_out_sender_gets_no_redemption_decision() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    r.pairing.issue(CH).unwrap();
    for _ in 0..5 {
        r.pairing
            .redeem(CH, "mallory", None, &CodeAttempt::new("ZZZZ9999"))
            .unwrap();
    }
    assert!(matches!(
        r.eval(&dm("mallory", "/pair ABCD2345")),
        Decision::Denied {
            reason: Reason::SenderLockedOut { .. }
        }
    ));
}

#[test]
fn last_seen_is_recorded_for_authorized_users() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    r.pair("friend");
    r.clock.advance(100);
    r.eval(&dm("friend", "hi"));
    let u = r.store.user(CH, "friend").unwrap().unwrap();
    assert_eq!(u.state, UserState::Paired);
    assert_eq!(u.last_seen, Some(T0 + 100));
}

/// Messages inside a minute of the last write leave last_seen alone (a write
/// takes state.db's write lock, which every message would contend for); the
/// first one after the minute moves it.
#[test]
fn last_seen_is_written_at_most_once_a_minute() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    r.pair("friend");
    r.clock.advance(100);
    r.eval(&dm("friend", "one"));
    r.clock.advance(59);
    r.eval(&dm("friend", "two"));
    let seen = |r: &Rig| r.store.user(CH, "friend").unwrap().unwrap().last_seen;
    assert_eq!(seen(&r), Some(T0 + 100));
    r.clock.advance(1);
    r.eval(&dm("friend", "three"));
    assert_eq!(seen(&r), Some(T0 + 160));
}

#[test]
fn audit_reasons_are_stable_codes() {
    let r = rig(ChannelSettings::default(), Profile::Production);
    assert_eq!(r.eval(&dm("s", "hi")).audit_reason(), "pairing_prompt");
    assert_eq!(
        r.eval(&dm("s", "ABCD2345")).audit_reason(),
        "redeem_pairing"
    );
    assert_eq!(
        r.eval(&msg("s", Group, false, "hi")).audit_reason(),
        "not_mentioned"
    );
}
