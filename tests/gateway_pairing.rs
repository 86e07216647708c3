//! Pairing-code lifecycle against a real `state.db` with the test clock: format,
//! TTL expiry, single use, rotation, cancel, listing without codes, codes never
//! stored in plaintext (the db files' bytes are searched after close), channel
//! binding, the per-sender lockout surviving a reopen (simulated restart),
//! strangers unable to lock a channel (guesses with no code active count nowhere;
//! a code is burned after 50 wrong guesses and a fresh one redeems), the daily
//! cap on codes taking guesses, and a 10,000-attempt brute force with zero successes.

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
            sender_attempts_left: 5,
            burned: false
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
            sender_attempts_left: 5,
            burned: false
        }
    );
    // Redeeming again as the paired user counts nothing, and cancels the code
    // it sent (shown in a chat, nobody else may use it).
    let b = p.issue(CH).unwrap();
    assert_eq!(
        p.redeem(CH, "u1", None, &attempt(b.code.as_str())).unwrap(),
        RedeemOutcome::AlreadyAuthorized {
            code_cancelled: true
        }
    );
    assert!(matches!(
        p.redeem(CH, "u4", None, &attempt(b.code.as_str())).unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::NoActiveCode,
            ..
        }
    ));
    // Rotation: issuing c revokes b.
    let c = p.issue(CH).unwrap();
    assert_eq!(
        p.redeem(CH, "u3", None, &attempt(b.code.as_str())).unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::Mismatch,
            sender_attempts_left: 4,
            burned: false
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
                    sender_attempts_left: left,
                    burned: false
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

/// Issue 16 item 6: many senders with wrong codes, with no code active and then
/// against the active code, never lock the channel: the owner's fresh code redeems.
#[test]
fn strangers_cannot_lock_the_channel_and_a_fresh_code_redeems() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (store, p) = open(dir.path(), &clock);
    // 200 senders guess while no code is active: same answer, nothing counted.
    for i in 0..200 {
        let sender = format!("stranger{i}");
        assert_eq!(
            p.redeem(CH, &sender, None, &attempt("ZZZZ9999")).unwrap(),
            RedeemOutcome::Invalid {
                detail: InvalidCode::NoActiveCode,
                sender_attempts_left: 5,
                burned: false
            }
        );
        // One sender repeats: still nothing counted, never locked out.
        assert!(matches!(
            p.redeem(CH, "stranger0", None, &attempt("/pair x"))
                .unwrap(),
            RedeemOutcome::Invalid {
                detail: InvalidCode::NoActiveCode,
                ..
            }
        ));
    }
    // The owner issues a code after the flood: it redeems at once.
    let first = p.issue_with_ttl(CH, 3600).unwrap();
    assert!(matches!(
        p.redeem(CH, "owner", None, &attempt(first.code.as_str()))
            .unwrap(),
        RedeemOutcome::Paired(_)
    ));
    // 55 senders guess against the next active code: the 50th guess burns it.
    let victim = p.issue_with_ttl(CH, 3600).unwrap();
    let mut burned_at = None;
    for i in 0..55 {
        let out = p
            .redeem(CH, &format!("bot{i}"), None, &attempt("ZZZZ9999"))
            .unwrap();
        match out {
            RedeemOutcome::Invalid {
                detail: InvalidCode::Mismatch,
                burned,
                ..
            } => {
                if burned {
                    burned_at = Some(i);
                }
            }
            RedeemOutcome::Invalid {
                detail: InvalidCode::NoActiveCode,
                burned: false,
                ..
            } => assert!(burned_at.is_some(), "{i}"),
            other => panic!("{i}: {other:?}"),
        }
        // Every stranger's answer is the same "invalid" outcome: no lock.
    }
    assert_eq!(burned_at, Some(49));
    assert!(p.was_burned(victim.id).unwrap(), "the owner can see it");
    assert!(!p.was_burned(first.id).unwrap());
    assert!(
        p.list(Some(CH)).unwrap().is_empty(),
        "a burned code is gone"
    );
    // The burned code itself no longer redeems.
    assert!(matches!(
        p.redeem(CH, "friend", None, &attempt(victim.code.as_str()))
            .unwrap(),
        RedeemOutcome::Invalid {
            detail: InvalidCode::NoActiveCode,
            ..
        }
    ));
    // The owner's fresh code redeems at once, through access control too.
    let fresh = p.issue_with_ttl(CH, 3600).unwrap();
    let access = AccessControl::new(
        settings(),
        Profile::Production,
        store.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let msg = dm("friend", fresh.code.as_str());
    let Decision::RedeemPairing { code } = access.evaluate(&msg).unwrap() else {
        panic!("not a redemption");
    };
    assert!(matches!(
        p.redeem(CH, "friend", None, &code).unwrap(),
        RedeemOutcome::Paired(_)
    ));
}

#[test]
fn issuing_is_capped_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (_s, p) = open(dir.path(), &clock);
    // Codes nobody guessed at do not count.
    for _ in 0..30 {
        p.issue(CH).unwrap();
    }
    for i in 0..24 {
        p.issue(CH).unwrap();
        p.redeem(CH, &format!("bot{i}"), None, &attempt("ZZZZ9999"))
            .unwrap();
        clock.advance(60);
    }
    assert!(
        p.issue(CH).is_err(),
        "a 25th guessed-at code within 24 hours"
    );
    assert!(p.issue("slack").is_ok(), "another channel is unaffected");
    clock.advance(86_400 - 24 * 60 + 60);
    assert!(p.issue(CH).is_ok(), "the oldest code left the window");
}

#[test]
fn brute_force_10000_wrong_codes_yield_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(T0);
    let (store, p) = open(dir.path(), &clock);
    let mut rng = rand::thread_rng();
    // The owner re-issues whenever the code expires or is burned, as often as
    // the daily cap lets them.
    let mut real = p.issue_with_ttl(CH, 3600).ok();
    let (mut paired, mut counted, mut uncounted, mut sender_locked, mut burned) = (0, 0, 0, 0, 0);
    for i in 0..10_000 {
        // 500 distinct senders; one attempt every 2 s (~5.5 hours in all).
        clock.advance(2);
        let now = T0 + 2 * (i + 1);
        let live = real
            .as_ref()
            .is_some_and(|r| now < r.expires_at && !p.was_burned(r.id).unwrap());
        if !live {
            real = p.issue_with_ttl(CH, 3600).ok();
        }
        let not = real.as_ref().map_or("", |r| r.code.as_str()).to_string();
        let sender = format!("attacker{}", i % 500);
        let guess = wrong_code(&mut rng, &not);
        match p.redeem(CH, &sender, None, &attempt(&guess)).unwrap() {
            RedeemOutcome::Paired(_) => paired += 1,
            RedeemOutcome::Invalid {
                detail: InvalidCode::Mismatch,
                burned: b,
                ..
            } => {
                counted += 1;
                burned += usize::from(b);
            }
            RedeemOutcome::Invalid { .. } => uncounted += 1,
            RedeemOutcome::SenderLockedOut { .. } => sender_locked += 1,
            other => panic!("{other:?}"),
        }
    }
    println!(
        "brute force: paired={paired} counted={counted} uncounted={uncounted} sender_locked={sender_locked} burned={burned}"
    );
    assert_eq!(paired, 0);
    // At most 24 codes a day, each burned after 50 wrong guesses.
    assert!(burned <= 24, "{burned}");
    assert!(counted <= 50 * 24, "{counted} guesses got through");
    assert!(store.list_users(Some(CH)).unwrap().is_empty());
    // The owner's user pairs with a fresh code once the daily cap allows one.
    clock.advance(86_400);
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
