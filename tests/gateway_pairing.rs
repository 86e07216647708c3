//! Pairing-code lifecycle against a real `state.db` with the test clock: format,
//! TTL expiry, single use, rotation, cancel, listing without codes, codes never
//! stored in plaintext (the db files' bytes are searched after close), channel
//! binding, the per-sender lockout surviving a reopen (simulated restart), the
//! per-channel lockout, and a 10,000-attempt brute force with zero successes.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use std::path::Path;
use std::sync::Arc;

use cowork::gateway::pairing::CODE_ALPHABET;
use cowork::gateway::{
    AccessControl, ChannelSettings, CodeAttempt, Context, Decision, GatewaySettings, Inbound,
    InvalidCode, Pairing, PairingKey, Profile, RawInbound, Reason, RedeemOutcome, RevokeScope,
    Store, TestClock, UserState,
};
use rand::Rng;

const T0: i64 = 1_700_000_000;
const CH: &str = "telegram";
const KEY: [u8; 32] = [0x5a; 32];

fn settings() -> Arc<GatewaySettings> {
    let mut s = GatewaySettings::default();
    s.channels.insert(CH.into(), ChannelSettings::default());
    s.channels
        .insert("slack".into(), ChannelSettings::default());
    Arc::new(s)
}

fn open(dir: &Path, clock: &TestClock) -> (Arc<Store>, Pairing) {
    let store = Arc::new(Store::open(dir).unwrap());
    let p = Pairing::new(
        store.clone(),
        PairingKey::from_bytes(KEY),
        Arc::new(clock.clone()),
        settings(),
    );
    (store, p)
}

fn attempt(s: &str) -> CodeAttempt {
    CodeAttempt::new(s)
}

fn wrong_code(rng: &mut impl Rng, not: &str) -> String {
    loop {
        let c: String = (0..8)
            .map(|_| CODE_ALPHABET[rng.gen_range(0..32)] as char)
            .collect();
        if c != not {
            return c;
        }
    }
}

#[test]
fn codes_are_8_unambiguous_symbols_and_listing_never_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (_s, p) = open(dir.path(), &clock);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let issued = p.issue(CH).unwrap();
        let c = issued.code.as_str().to_string();
        assert_eq!(c.len(), 8);
        assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
        assert!(!c.contains(['I', 'L', 'O', 'U']));
        seen.insert(c.clone());
        assert_eq!(issued.expires_at, T0 + 300);
        assert!(!format!("{issued:?}").contains(&c), "Debug shows the code");
        let list = p.list(None).unwrap();
        assert_eq!(list.len(), 1, "one active code per channel");
        assert_eq!(list[0].id, issued.id);
        assert_eq!(list[0].channel, CH);
        assert_eq!(list[0].expires_at, T0 + 300);
        assert!(!format!("{list:?}").contains(&c));
    }
    assert!(seen.len() >= 199, "codes repeat: {}", seen.len());
}

#[test]
fn ttl_bounds_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (_s, p) = open(dir.path(), &clock);
    assert!(p.issue_with_ttl(CH, 59).is_err());
    assert!(p.issue_with_ttl(CH, 3601).is_err());
    assert!(p.issue("nosuch").is_err());
    let a = p.issue_with_ttl(CH, 60).unwrap();
    assert_eq!(a.expires_at, T0 + 60);
    clock.advance(60);
    assert!(
        p.list(Some(CH)).unwrap().is_empty(),
        "expired codes are not listed"
    );
    assert_eq!(
        p.redeem(CH, "u1", None, &attempt(a.code.as_str())).unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::Expired,
            sender_attempts_left: 4
        }
    );
    // One second before expiry still works.
    let b = p.issue(CH).unwrap();
    clock.advance(299);
    assert!(matches!(
        p.redeem(CH, "u2", Some("Bob"), &attempt(b.code.as_str())).unwrap(),
        RedeemOutcome::Paired(u) if u.state == UserState::Paired && u.display_name.as_deref() == Some("Bob")
    ));
}

#[test]
fn single_use_rotation_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (store, p) = open(dir.path(), &clock);
    let a = p.issue(CH).unwrap();
    assert!(matches!(
        p.redeem(CH, "u1", None, &attempt(a.code.as_str())).unwrap(),
        RedeemOutcome::Paired(_)
    ));
    // Used: a second sender gets nothing.
    assert_eq!(
        p.redeem(CH, "u2", None, &attempt(a.code.as_str())).unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::NoActiveCode,
            sender_attempts_left: 4
        }
    );
    // Redeeming again as the paired user consumes and counts nothing.
    let b = p.issue(CH).unwrap();
    assert_eq!(
        p.redeem(CH, "u1", None, &attempt(b.code.as_str())).unwrap(),
        RedeemOutcome::AlreadyAuthorized
    );
    // Rotation: issuing c revokes b.
    let c = p.issue(CH).unwrap();
    assert_eq!(
        p.redeem(CH, "u3", None, &attempt(b.code.as_str())).unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::Mismatch,
            sender_attempts_left: 4
        }
    );
    // Lower case, a dash and Crockford's look-alikes are accepted for /pair.
    let lower = c.code.as_str().to_ascii_lowercase();
    let typed = format!("{}-{}", &lower[..4], &lower[4..]);
    assert!(matches!(
        p.redeem(CH, "u3", None, &attempt(&typed)).unwrap(),
        RedeemOutcome::Paired(_)
    ));
    // Cancel.
    let d = p.issue(CH).unwrap();
    assert!(p.cancel(d.id).unwrap());
    assert!(!p.cancel(d.id).unwrap());
    assert!(matches!(
        p.redeem(CH, "u4", None, &attempt(d.code.as_str())).unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::NoActiveCode,
            ..
        }
    ));
    // Malformed attempts count as failures.
    let _e = p.issue(CH).unwrap();
    assert!(matches!(
        p.redeem(CH, "u5", None, &attempt("not a code")).unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::Malformed,
            ..
        }
    ));
    let users = store.list_users(Some(CH)).unwrap();
    assert_eq!(
        users.iter().map(|u| u.sender.as_str()).collect::<Vec<_>>(),
        ["u1", "u3"]
    );
}

#[test]
fn codes_are_bound_to_their_channel_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (store, p) = open(dir.path(), &clock);
    let tg = p.issue(CH).unwrap();
    let _slack = p.issue("slack").unwrap();
    assert!(matches!(
        p.redeem("slack", "u1", None, &attempt(tg.code.as_str()))
            .unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::Mismatch,
            ..
        }
    ));
    // Another key (e.g. after key rotation) matches nothing.
    let other = Pairing::new(
        store,
        PairingKey::from_bytes([1; 32]),
        Arc::new(clock.clone()),
        settings(),
    );
    assert!(matches!(
        other
            .redeem(CH, "u2", None, &attempt(tg.code.as_str()))
            .unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::Mismatch,
            ..
        }
    ));
}

#[test]
fn codes_are_never_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let mut codes = Vec::new();
    {
        let (_s, p) = open(dir.path(), &clock);
        for i in 0..20 {
            let issued = p.issue(CH).unwrap();
            codes.push(issued.code.as_str().to_string());
            if i % 2 == 0 {
                let sender = format!("u{i}");
                assert!(matches!(
                    p.redeem(CH, &sender, None, &attempt(issued.code.as_str()))
                        .unwrap(),
                    RedeemOutcome::Paired(_)
                ));
            }
        }
        // Wrong attempts with the last (revoked-by-rotation) codes too.
        p.redeem(CH, "x", None, &attempt(&codes[1])).unwrap();
    } // closed: store and pairing dropped
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 4096);
    for c in &codes {
        for needle in [c.clone(), c.to_ascii_lowercase()] {
            assert!(
                !bytes.windows(8).any(|w| w == needle.as_bytes()),
                "code {needle} found in the db files"
            );
        }
    }
}

fn dm(sender: &str, text: &str) -> Inbound {
    Inbound::try_from(RawInbound {
        channel: CH.into(),
        account: None,
        sender: sender.into(),
        sender_name: None,
        chat: sender.into(),
        context: Context::Dm,
        mentions_bot: false,
        text: text.into(),
        attachments: vec![],
    })
    .unwrap()
}

#[test]
fn sender_lockout_after_5_failures_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let code = {
        let (_s, p) = open(dir.path(), &clock);
        let issued = p.issue_with_ttl(CH, 3600).unwrap();
        for left in (0..5).rev() {
            assert_eq!(
                p.redeem(CH, "mallory", None, &attempt("ZZZZ9999")).unwrap(),
                RedeemOutcome::Invalid {
                    detail: InvalidCode::Mismatch,
                    sender_attempts_left: left
                }
            );
            clock.advance(10);
        }
        issued.code.as_str().to_string()
    };
    // Restart: a new store and pairing over the same files.
    let (store, p) = open(dir.path(), &clock);
    // The correct code is refused while locked out.
    assert!(matches!(
        p.redeem(CH, "mallory", None, &attempt(&code)).unwrap(),
        RedeemOutcome::SenderLockedOut { until } if until == T0 + 40 + 900
    ));
    // The engine refuses the redemption before any comparison.
    let access = AccessControl::new(
        settings(),
        Profile::Production,
        store.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    assert!(matches!(
        access.evaluate(&dm("mallory", &code)).unwrap(),
        Decision::Denied {
            reason: Reason::SenderLockedOut { .. }
        }
    ));
    // Others are unaffected.
    assert!(matches!(
        p.redeem(CH, "alice", None, &attempt("ZZZZ9999")).unwrap(),
        RedeemOutcome::Invalid { .. }
    ));
    // After the lockout, the (still valid) code works.
    clock.set(T0 + 40 + 900);
    assert!(matches!(
        p.redeem(CH, "mallory", None, &attempt(&code)).unwrap(),
        RedeemOutcome::Paired(_)
    ));
}

#[test]
fn channel_lockout_after_50_failures_refuses_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (_s, p) = open(dir.path(), &clock);
    let issued = p.issue_with_ttl(CH, 3600).unwrap();
    for i in 0..50 {
        let out = p
            .redeem(CH, &format!("bot{i}"), None, &attempt("ZZZZ9999"))
            .unwrap();
        assert!(matches!(out, RedeemOutcome::Invalid { .. }), "{i}: {out:?}");
    }
    assert!(matches!(
        p.redeem(CH, "alice", None, &attempt(issued.code.as_str()))
            .unwrap(),
        RedeemOutcome::ChannelLockedOut { .. }
    ));
    // Another channel is unaffected.
    let s = p.issue("slack").unwrap();
    assert!(matches!(
        p.redeem("slack", "alice", None, &attempt(s.code.as_str()))
            .unwrap(),
        RedeemOutcome::Paired(_)
    ));
    clock.advance(900);
    assert!(matches!(
        p.redeem(CH, "alice", None, &attempt(issued.code.as_str()))
            .unwrap(),
        RedeemOutcome::Paired(_)
    ));
}

#[test]
fn brute_force_10000_wrong_codes_yield_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (store, p) = open(dir.path(), &clock);
    let mut rng = rand::thread_rng();
    let mut real = p.issue_with_ttl(CH, 3600).unwrap();
    let (mut paired, mut invalid, mut sender_locked, mut channel_locked) = (0, 0, 0, 0);
    let mut max_invalid_in_window = 0;
    let mut window = (T0, 0);
    for i in 0..10_000 {
        // 500 distinct senders; one attempt every 2 s (~5.5 hours in all).
        clock.advance(2);
        let now = T0 + 2 * (i + 1);
        if now >= real.expires_at {
            real = p.issue_with_ttl(CH, 3600).unwrap();
        }
        let sender = format!("attacker{}", i % 500);
        let guess = wrong_code(&mut rng, real.code.as_str());
        match p.redeem(CH, &sender, None, &attempt(&guess)).unwrap() {
            RedeemOutcome::Paired(_) => paired += 1,
            RedeemOutcome::Invalid { .. } => {
                invalid += 1;
                if now - window.0 >= 900 {
                    window = (now, 0);
                }
                window.1 += 1;
                max_invalid_in_window = max_invalid_in_window.max(window.1);
            }
            RedeemOutcome::SenderLockedOut { .. } => sender_locked += 1,
            RedeemOutcome::ChannelLockedOut { .. } => channel_locked += 1,
            other => panic!("{other:?}"),
        }
    }
    println!(
        "brute force: paired={paired} invalid={invalid} sender_locked={sender_locked} channel_locked={channel_locked}"
    );
    assert_eq!(paired, 0);
    assert!(
        channel_locked > 8_500,
        "the channel lockout engages: {channel_locked}"
    );
    // 50 failures (>= 100 s at this pace) then a 15-minute lockout: at most 50
    // guesses per 1,000 s of the 20,000 s run.
    assert!(
        invalid <= 50 * (20_000 / 1_000 + 1),
        "{invalid} guesses got through"
    );
    assert!(max_invalid_in_window <= 100, "{max_invalid_in_window}");
    assert!(store.list_users(Some(CH)).unwrap().is_empty());
    // The owner's user still pairs once the lockout passes.
    clock.advance(900);
    let fresh = p.issue(CH).unwrap();
    assert!(matches!(
        p.redeem(CH, "owner", None, &attempt(fresh.code.as_str()))
            .unwrap(),
        RedeemOutcome::Paired(_)
    ));
}

#[test]
fn revoke_all_revokes_users_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (store, p) = open(dir.path(), &clock);
    for (ch, who) in [(CH, "a"), (CH, "b"), ("slack", "c")] {
        let c = p.issue(ch).unwrap();
        p.redeem(ch, who, None, &attempt(c.code.as_str())).unwrap();
    }
    let pending = p.issue(CH).unwrap();
    assert_eq!(store.revoke_all(RevokeScope::Channel(CH), T0).unwrap(), 2);
    assert!(p.list(Some(CH)).unwrap().is_empty());
    assert!(matches!(
        p.redeem(CH, "d", None, &attempt(pending.code.as_str()))
            .unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::NoActiveCode,
            ..
        }
    ));
    assert_eq!(
        store.user("slack", "c").unwrap().unwrap().state,
        UserState::Paired
    );
    assert_eq!(store.revoke_all(RevokeScope::Everything, T0).unwrap(), 1);
    assert!(
        store
            .list_users(None)
            .unwrap()
            .iter()
            .all(|u| u.state == UserState::Revoked)
    );
}
