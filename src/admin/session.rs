//! Owner sessions, kept in memory only: a restart of the admin component logs
//! everyone out. Ids are 256 random bits; the map is keyed by the SHA-256 of
//! the id so lookups leak nothing about it. Each session has its own CSRF
//! token, an idle timeout and an absolute lifetime.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const COOKIE_NAME: &str = "__Host-cowork_session";
/// Pre-login double-submit cookie protecting the login and setup forms.
pub const PRE_COOKIE_NAME: &str = "__Host-cowork_pre";
/// At most this many live sessions; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 64;

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    created: u64,
    last_used: u64,
    flash: Option<String>,
}

/// A valid session as seen by a handler.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub key: String,
    pub csrf: String,
    pub flash: Option<String>,
}

#[derive(Debug)]
pub struct SessionStore {
    idle_secs: u64,
    max_secs: u64,
    map: Mutex<HashMap<String, Session>>,
}

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn key_of(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Constant-time string equality.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl SessionStore {
    pub fn new(idle_secs: u64, max_secs: u64) -> Self {
        SessionStore {
            idle_secs: idle_secs.max(1),
            max_secs: max_secs.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Start a session; returns the cookie value (the id).
    pub fn create(&self, now: u64) -> String {
        let id = random_token();
        let mut map = self.lock();
        self.purge(&mut map, now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            key_of(&id),
            Session {
                csrf: random_token(),
                created: now,
                last_used: now,
                flash: None,
            },
        );
        id
    }

    fn purge(&self, map: &mut HashMap<String, Session>, now: u64) {
        map.retain(|_, s| now < s.last_used + self.idle_secs && now < s.created + self.max_secs);
    }

    /// Look up a session by cookie value, touching it; `None` if unknown or expired.
    /// Takes the pending flash message.
    pub fn get(&self, id: &str, now: u64) -> Option<SessionView> {
        if id.len() != 64 {
            return None;
        }
        let key = key_of(id);
        let mut map = self.lock();
        self.purge(&mut map, now);
        let s = map.get_mut(&key)?;
        s.last_used = now;
        Some(SessionView {
            key,
            csrf: s.csrf.clone(),
            flash: s.flash.take(),
        })
    }

    pub fn set_flash(&self, key: &str, msg: String) {
        if let Some(s) = self.lock().get_mut(key) {
            s.flash = Some(msg);
        }
    }

    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Log everyone out.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_expiry() {
        let s = SessionStore::new(10, 25);
        let id = s.create(100);
        assert_eq!(id.len(), 64);
        assert!(s.get(&id, 109).is_some());
        assert!(s.get(&id, 118).is_some());
        assert!(s.get(&id, 124).is_some());
        assert!(s.get(&id, 125).is_none(), "absolute lifetime");
        let id2 = s.create(200);
        assert!(s.get(&id2, 210).is_none(), "idle timeout");
        assert!(s.get("x", 200).is_none());
    }
}
