//! Pairing codes: issued per channel by the owner (admin page, `coworkctl`),
//! redeemed by an unknown sender in a DM to become a paired user.
//!
//! - 8 symbols from Crockford's base32 alphabet (no I, L, O, U) drawn from the OS
//!   CSPRNG (40 bits); one active code per channel; issuing revokes the previous one.
//! - Stored only as HMAC-SHA256(pairing key, channel ‖ code); compared with
//!   `subtle`'s constant-time equality. The plaintext exists only in the
//!   [`IssuedCode`] handed to the issuer and in the redeemer's message.
//! - Single use, TTL from 60 to 3600 s (default 300 s).
//! - Only guesses against an active, unexpired code count; with no code active
//!   an attempt gets the same "invalid or expired" answer and counts nowhere, so
//!   strangers cannot run up a counter before the owner issues a code.
//! - Failed guesses count per sender in `state.db` (so they survive restarts): a
//!   sender locked out (`sender_max_failures` in `window_secs`) is refused even
//!   with the correct code.
//! - Failed guesses from anyone count against the active code: after
//!   `code_max_failures` (default 50) the code is *burned* (revoked, marked in
//!   `gateway_code_guesses`, audited as `gateway.pairing` `code_burned`) and the
//!   owner issues a fresh one, which redeems at once: the channel is never
//!   locked. Issuing is refused while `max_codes_per_day` (default 24) codes
//!   of the channel created in the last 24 hours took wrong guesses (a code
//!   takes guesses only until the next one is issued, so no 24 hours see more
//!   than that many guessed codes); codes nobody guessed at do not count.
//! - The bound on guessing: a year sees at most 50 × 24 × 366 = 439,200 failed
//!   guesses per channel; each hits a 40-bit code with probability 2^-40 ≈
//!   9.09e-13, so the expected number of successful guesses a year is at most
//!   439,200 × 2^-40 ≈ 4.0e-7 < 1e-6. Settings whose product breaks that bound
//!   are refused (`LockoutSettings::expected_successes_per_year`).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::clock::Clock;
use super::error::GatewayError;
use super::settings::{GatewaySettings, PAIRING_TTL_RANGE};
use super::store::{self, LimitScope, Store, UserRecord, UserState};

/// Symbols of a code: Crockford base32 without I, L, O, U.
pub const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CODE_LEN: usize = 8;
const HASH_DOMAIN: &[u8] = b"cowork-gateway-pairing-code-v1\0";

/// The 32-byte key codes are hashed with (from the keystore, purpose
/// `PairingCodeHash`). Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PairingKey([u8; 32]);

impl PairingKey {
    pub fn from_bytes(bytes: [u8; 32]) -> PairingKey {
        PairingKey(bytes)
    }
}

impl std::fmt::Debug for PairingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingKey(..)")
    }
}

/// A freshly issued code in plaintext: show it to the owner once, then drop it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PairingCode(String);

impl PairingCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingCode(..)")
    }
}

/// What [`Pairing::issue`] returns.
#[derive(Debug)]
pub struct IssuedCode {
    pub id: i64,
    pub channel: String,
    pub code: PairingCode,
    pub expires_at: i64,
}

/// An active code as listed: never the code itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInfo {
    pub id: i64,
    pub channel: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A candidate code taken from a message (not yet checked). Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CodeAttempt(String);

impl CodeAttempt {
    /// For tests and admin tools: the attempt exactly as typed.
    pub fn new(text: &str) -> CodeAttempt {
        CodeAttempt(text.chars().take(64).collect())
    }

    /// The canonical 8 symbols, if the attempt is a well-formed code: case-
    /// insensitive, Crockford's O→0 and I/L→1, one optional `-` or space in the middle.
    fn canonical(&self) -> Option<Zeroizing<[u8; CODE_LEN]>> {
        let mut out = Zeroizing::new([0u8; CODE_LEN]);
        let mut n = 0;
        let mut seps = 0;
        for (i, b) in self.0.bytes().enumerate() {
            if (b == b'-' || b == b' ') && i == 4 {
                seps += 1;
                continue;
            }
            let c = match b.to_ascii_uppercase() {
                b'O' => b'0',
                b'I' | b'L' => b'1',
                c => c,
            };
            if !CODE_ALPHABET.contains(&c) || n == CODE_LEN {
                return None;
            }
            out[n] = c;
            n += 1;
        }
        (n == CODE_LEN && seps <= 1).then_some(out)
    }
}

impl std::fmt::Debug for CodeAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeAttempt(..)")
    }
}

/// Whether `text` is a pairing-code redemption: `/pair CODE` (also
/// `/pair@botname CODE`; any argument counts as an attempt) or a message that is
/// *exactly* a code as displayed (8 upper-case symbols of the alphabet, optionally
/// `XXXX-XXXX`). Lower-case words such as "hello123" are not codes.
pub fn parse_code_message(text: &str) -> Option<CodeAttempt> {
    let t = text.trim();
    if t.len() > 80 {
        return None;
    }
    let mut words = t.split_whitespace();
    let first = words.next()?;
    let cmd = first.split('@').next().unwrap_or(first);
    if cmd.eq_ignore_ascii_case("/pair") {
        let arg: Vec<&str> = words.collect();
        if arg.is_empty() {
            return None;
        }
        return Some(CodeAttempt::new(&arg.join(" ")));
    }
    let strict = match t.len() {
        8 => t.bytes().all(|b| CODE_ALPHABET.contains(&b)),
        9 => {
            let b = t.as_bytes();
            b[4] == b'-'
                && b[..4]
                    .iter()
                    .chain(&b[5..])
                    .all(|c| CODE_ALPHABET.contains(c))
        }
        _ => false,
    };
    strict.then(|| CodeAttempt::new(t))
}

/// Why a redemption failed, for the audit trail. The sender is told the same
/// thing in every case ("invalid or expired code").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidCode {
    Malformed,
    NoActiveCode,
    Expired,
    Mismatch,
}

impl InvalidCode {
    /// Why, in words (the audit trail's detail).
    pub fn describe(self) -> &'static str {
        match self {
            InvalidCode::Malformed => "not a well-formed code",
            InvalidCode::NoActiveCode => "no code is active on the channel",
            InvalidCode::Expired => "the active code had expired",
            InvalidCode::Mismatch => "wrong code",
        }
    }
}

/// Result of [`Pairing::redeem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    /// The code matched: the sender is now paired; the code is used up.
    Paired(UserRecord),
    /// The sender was already paired or allowlisted; nothing counted. When the
    /// message was the channel's active code, that code is cancelled
    /// (`code_cancelled`): it was shown in a chat, so nobody else may use it.
    AlreadyAuthorized {
        code_cancelled: bool,
    },
    /// Wrong, expired or malformed. Counted against the sender and the active
    /// code only when a code was active (`Mismatch`, `Malformed`).
    Invalid {
        detail: InvalidCode,
        /// Failures the sender has left before a lockout (0: now locked).
        sender_attempts_left: u32,
        /// This guess was the active code's `code_max_failures`-th: the code is
        /// burned and the owner must issue a fresh one.
        burned: bool,
    },
    SenderLockedOut {
        until: i64,
    },
    /// Revoked users cannot pair again until the owner forgets or re-admits them.
    Revoked,
}

/// Issues, lists, cancels and redeems pairing codes.
#[derive(Debug)]
pub struct Pairing {
    store: Arc<Store>,
    key: PairingKey,
    clock: Arc<dyn Clock>,
    settings: Arc<GatewaySettings>,
}

impl Pairing {
    pub fn new(
        store: Arc<Store>,
        key: PairingKey,
        clock: Arc<dyn Clock>,
        settings: Arc<GatewaySettings>,
    ) -> Pairing {
        Pairing {
            store,
            key,
            clock,
            settings,
        }
    }

    fn hash(&self, channel: &str, code: &[u8]) -> [u8; 32] {
        // `new_from_slice` accepts any key length for HMAC; 32 bytes never fails.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(HASH_DOMAIN);
        mac.update(channel.as_bytes());
        mac.update(b"\0");
        mac.update(code);
        mac.finalize().into_bytes().into()
    }

    /// Issues a code for `channel` with the channel's configured TTL.
    pub fn issue(&self, channel: &str) -> Result<IssuedCode, GatewayError> {
        let ttl = self
            .settings
            .channels
            .get(channel)
            .map(|c| c.pairing_ttl_secs)
            .unwrap_or(super::settings::DEFAULT_PAIRING_TTL_SECS);
        self.issue_with_ttl(channel, ttl)
    }

    /// Issues a code valid for `ttl_secs` (60..=3600); the channel's previous
    /// active code, if any, is revoked.
    pub fn issue_with_ttl(&self, channel: &str, ttl_secs: u64) -> Result<IssuedCode, GatewayError> {
        let fail = |reason: String| GatewayError::IssueCode {
            channel: channel.to_string(),
            reason,
        };
        match self.settings.channels.get(channel) {
            Some(c) if c.enabled => {}
            Some(_) => return Err(fail("channel is disabled".into())),
            None => return Err(fail("no such channel in the settings".into())),
        }
        if !PAIRING_TTL_RANGE.contains(&ttl_secs) {
            return Err(fail(format!(
                "a code lasts from 60 to 3600 seconds, not {ttl_secs}"
            )));
        }
        let mut random = Zeroizing::new([0u8; CODE_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(&mut random[..])
            .map_err(|e| fail(format!("OS random generator: {e}")))?;
        // 256 is a multiple of 32: masking keeps the symbols uniform.
        let code = PairingCode(
            random
                .iter()
                .map(|b| CODE_ALPHABET[usize::from(b & 31)] as char)
                .collect(),
        );
        let hash = self.hash(channel, code.0.as_bytes());
        let now = self.clock.now();
        let expires_at = now + i64::try_from(ttl_secs).unwrap_or(3600);
        let per_day = self
            .settings
            .channels
            .get(channel)
            .map(|c| c.lockout.max_codes_per_day)
            .unwrap_or(0);
        let id = self.store.transaction("issue pairing code", |tx| {
            // Codes of the last 24 hours that took wrong guesses (a code takes
            // guesses only until the next is issued, so this check bounds them).
            let recent: i64 = tx
                .query_row(
                    "SELECT count(*) FROM gateway_pairing_codes c
                     JOIN gateway_code_guesses g ON g.code_id = c.id
                     WHERE c.channel = ?1 AND c.created_at > ?2 - 86400",
                    params![channel, now],
                    |r| r.get(0),
                )
                .map_err(GatewayError::db("count recent pairing codes"))?;
            if recent >= i64::from(per_day) {
                return Err(fail(format!(
                    "{recent} codes of the last 24 hours took wrong guesses (max_codes_per_day {per_day})"
                )));
            }
            tx.execute(
                "UPDATE gateway_pairing_codes SET state = 'revoked'
                 WHERE channel = ?1 AND state = 'active'",
                params![channel],
            )
            .map_err(GatewayError::db("revoke previous pairing code"))?;
            tx.execute(
                "INSERT INTO gateway_pairing_codes (channel, code_hash, created_at, expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, 'active')",
                params![channel, &hash[..], now, expires_at],
            )
            .map_err(GatewayError::db("insert pairing code"))?;
            Ok(tx.last_insert_rowid())
        })?;
        Ok(IssuedCode {
            id,
            channel: channel.to_string(),
            code,
            expires_at,
        })
    }

    /// Active, unexpired codes: channel, id and expiry; never the code.
    pub fn list(&self, channel: Option<&str>) -> Result<Vec<CodeInfo>, GatewayError> {
        let now = self.clock.now();
        let conn = self.store.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT id, channel, created_at, expires_at FROM gateway_pairing_codes
                 WHERE state = 'active' AND expires_at > ?1 AND (?2 IS NULL OR channel = ?2)
                 ORDER BY channel, id",
            )
            .map_err(GatewayError::db("list pairing codes"))?;
        let rows = st
            .query_map(params![now, channel], |r| {
                Ok(CodeInfo {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    created_at: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })
            .map_err(GatewayError::db("list pairing codes"))?;
        rows.collect::<Result<_, _>>()
            .map_err(GatewayError::db("list pairing codes"))
    }

    /// Cancels an active code by id; returns whether one was active.
    pub fn cancel(&self, id: i64) -> Result<bool, GatewayError> {
        let n = self
            .store
            .lock()
            .execute(
                "UPDATE gateway_pairing_codes SET state = 'cancelled' WHERE id = ?1 AND state = 'active'",
                params![id],
            )
            .map_err(GatewayError::db("cancel pairing code"))?;
        Ok(n == 1)
    }

    /// Redeems `attempt` for (`channel`, `sender`) in one transaction.
    pub fn redeem(
        &self,
        channel: &str,
        sender: &str,
        display_name: Option<&str>,
        attempt: &CodeAttempt,
    ) -> Result<RedeemOutcome, GatewayError> {
        let Some(settings) = self.settings.channels.get(channel).filter(|c| c.enabled) else {
            return Err(GatewayError::RedeemCode {
                channel: channel.to_string(),
                reason: "no such enabled channel",
            });
        };
        let lo = &settings.lockout;
        let window = i64::try_from(lo.window_secs).unwrap_or(i64::MAX);
        let lockout = i64::try_from(lo.lockout_secs).unwrap_or(i64::MAX);
        let now = self.clock.now();
        let sender_scope = LimitScope::Sender { channel, sender };
        self.store.transaction("redeem pairing code", |tx| {
            match store::user_in(tx, channel, sender)?.map(|u| u.state) {
                Some(UserState::Paired | UserState::Allowlisted) => {
                    let code_cancelled = self.cancel_if_active(tx, channel, attempt)?;
                    return Ok(RedeemOutcome::AlreadyAuthorized { code_cancelled });
                }
                Some(UserState::Revoked) => return Ok(RedeemOutcome::Revoked),
                None => {}
            }
            if let Some(until) = Store::locked_until(tx, sender_scope, now)? {
                return Ok(RedeemOutcome::SenderLockedOut { until });
            }
            let active: Option<(i64, Vec<u8>, i64)> = tx
                .query_row(
                    "SELECT id, code_hash, expires_at FROM gateway_pairing_codes
                     WHERE channel = ?1 AND state = 'active'",
                    params![channel],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(GatewayError::db("read active pairing code"))?;
            let canonical = attempt.canonical();
            let candidate = match &canonical {
                Some(c) => self.hash(channel, &c[..]),
                // Hash anyway so a malformed attempt costs the same.
                None => self.hash(channel, attempt.0.as_bytes()),
            };
            let uncounted = |detail| -> Result<RedeemOutcome, GatewayError> {
                Ok(RedeemOutcome::Invalid {
                    detail,
                    sender_attempts_left: Store::failures_left(
                        tx,
                        sender_scope,
                        now,
                        lo.sender_max_failures,
                        window,
                    )?,
                    burned: false,
                })
            };
            let (code_id, detail) = match &active {
                // Nothing to guess: the same answer, and no counter moves.
                None => return uncounted(InvalidCode::NoActiveCode),
                Some((id, _, expires_at)) if *expires_at <= now => {
                    tx.execute(
                        "UPDATE gateway_pairing_codes SET state = 'expired' WHERE id = ?1",
                        params![id],
                    )
                    .map_err(GatewayError::db("expire pairing code"))?;
                    return uncounted(InvalidCode::Expired);
                }
                Some((id, stored, _)) => {
                    let equal: bool = stored.as_slice().ct_eq(&candidate[..]).into();
                    if equal && canonical.is_some() {
                        tx.execute(
                            "UPDATE gateway_pairing_codes SET state = 'used', used_by = ?2
                             WHERE id = ?1 AND state = 'active'",
                            params![id, sender],
                        )
                        .map_err(GatewayError::db("use pairing code"))?;
                        store::set_user(tx, channel, sender, UserState::Paired, display_name, now)?;
                        Store::clear_failures(tx, sender_scope)?;
                        let user = store::user_in(tx, channel, sender)?.ok_or_else(|| {
                            GatewayError::CorruptRow {
                                operation: "read user just paired",
                                value: sender.to_string(),
                            }
                        })?;
                        return Ok(RedeemOutcome::Paired(user));
                    } else if canonical.is_none() {
                        (*id, InvalidCode::Malformed)
                    } else {
                        (*id, InvalidCode::Mismatch)
                    }
                }
            };
            let left = Store::record_failure(
                tx,
                sender_scope,
                now,
                lo.sender_max_failures,
                window,
                lockout,
            )?;
            let burned = count_code_guess(tx, code_id, now, lo.code_max_failures)?;
            Ok(RedeemOutcome::Invalid {
                detail,
                sender_attempts_left: left,
                burned,
            })
        })
    }

    /// Cancels `channel`'s active code if `attempt` is it (sent in a chat by
    /// someone already admitted); returns whether it did.
    pub fn withdraw(&self, channel: &str, attempt: &CodeAttempt) -> Result<bool, GatewayError> {
        self.store.transaction("withdraw pairing code", |tx| {
            self.cancel_if_active(tx, channel, attempt)
        })
    }

    /// Cancels `channel`'s active code if `attempt` is it; returns whether it did.
    fn cancel_if_active(
        &self,
        tx: &rusqlite::Transaction<'_>,
        channel: &str,
        attempt: &CodeAttempt,
    ) -> Result<bool, GatewayError> {
        let Some(canonical) = attempt.canonical() else {
            return Ok(false);
        };
        let active: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT id, code_hash FROM gateway_pairing_codes
                 WHERE channel = ?1 AND state = 'active'",
                params![channel],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(GatewayError::db("read active pairing code"))?;
        let Some((id, stored)) = active else {
            return Ok(false);
        };
        let candidate = self.hash(channel, &canonical[..]);
        if !bool::from(stored.as_slice().ct_eq(&candidate[..])) {
            return Ok(false);
        }
        tx.execute(
            "UPDATE gateway_pairing_codes SET state = 'cancelled' WHERE id = ?1 AND state = 'active'",
            params![id],
        )
        .map_err(GatewayError::db("cancel pairing code sent by a paired user"))?;
        Ok(true)
    }

    /// Whether code `id` was burned by failed guesses (for the owner's view).
    pub fn was_burned(&self, id: i64) -> Result<bool, GatewayError> {
        self.store
            .lock()
            .query_row(
                "SELECT burned_at IS NOT NULL FROM gateway_code_guesses WHERE code_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map(|b| b.unwrap_or(false))
            .map_err(GatewayError::db("read pairing code guesses"))
    }
}

/// Counts one failed guess against active code `id`; at `max` the code is
/// burned (revoked, `burned_at` set). Returns whether this guess burned it.
fn count_code_guess(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    now: i64,
    max: u32,
) -> Result<bool, GatewayError> {
    tx.execute(
        "INSERT INTO gateway_code_guesses (code_id, failures) VALUES (?1, 1)
         ON CONFLICT (code_id) DO UPDATE SET failures = failures + 1",
        params![id],
    )
    .map_err(GatewayError::db("count pairing code guess"))?;
    let failures: i64 = tx
        .query_row(
            "SELECT failures FROM gateway_code_guesses WHERE code_id = ?1",
            params![id],
            |r| r.get(0),
        )
        .map_err(GatewayError::db("count pairing code guess"))?;
    if failures < i64::from(max) {
        return Ok(false);
    }
    tx.execute(
        "UPDATE gateway_pairing_codes SET state = 'revoked' WHERE id = ?1 AND state = 'active'",
        params![id],
    )
    .map_err(GatewayError::db("burn pairing code"))?;
    tx.execute(
        "UPDATE gateway_code_guesses SET burned_at = ?2 WHERE code_id = ?1",
        params![id, now],
    )
    .map_err(GatewayError::db("burn pairing code"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_messages() {
        assert!(parse_code_message("ABCD2345").is_some());
        assert!(parse_code_message("  ABCD-2345 ").is_some());
        assert!(parse_code_message("/pair abcd2345").is_some());
        assert!(parse_code_message("/pair@cowork_bot ABCD2345").is_some());
        assert!(parse_code_message("/PAIR x").is_some());
        assert!(parse_code_message("/pair").is_none());
        assert!(parse_code_message("hello123").is_none());
        assert!(parse_code_message("ABCD23456").is_none());
        assert!(
            parse_code_message("ABCDO345").is_none(),
            "O is not a code symbol"
        );
        assert!(parse_code_message("please pair ABCD2345").is_none());
    }

    #[test]
    fn canonical_forms() {
        let c = |s: &str| CodeAttempt::new(s).canonical().map(|c| c.to_vec());
        assert_eq!(c("abcd-2345"), Some(b"ABCD2345".to_vec()));
        assert_eq!(
            c("0ILO 2345"),
            Some(
                b"0110 2345"
                    .iter()
                    .copied()
                    .filter(|&b| b != b' ')
                    .collect()
            )
        );
        assert_eq!(c("ABCD23U5"), None);
        assert_eq!(c("ABCD234"), None);
        assert_eq!(c("ABCD234567"), None);
        assert_eq!(c("AB-CD2345"), None);
    }

    #[test]
    fn debug_never_shows_codes_or_keys() {
        let k = PairingKey::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "PairingKey(..)");
        assert_eq!(
            format!("{:?}", CodeAttempt::new("ABCD2345")),
            "CodeAttempt(..)"
        );
    }
}
