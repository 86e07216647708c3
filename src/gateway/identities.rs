//! The safety numbers the owner confirmed, or the gateway first saw, for the
//! senders of a channel whose platform has them (Signal): the table
//! `gateway_identities` in `state.db`. A number seen on first contact is kept
//! as `first_use` (trust on first use); one the owner confirmed with
//! `coworkctl channels trust` as `confirmed`. Another number later means
//! the sender's key changed: the channel pauses that sender until the owner
//! confirms again. Kept in the store so a restart does not forget what was
//! confirmed.

use rusqlite::{OptionalExtension, params};

use super::error::GatewayError;
use super::store::Store;

/// `gateway_identities`, added by `state.db` schema step 3.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_identities (
    channel       TEXT NOT NULL,
    sender        TEXT NOT NULL,
    safety_number TEXT NOT NULL,
    standing      TEXT NOT NULL CHECK (standing IN ('first_use', 'confirmed')),
    at            INTEGER NOT NULL,
    PRIMARY KEY (channel, sender)
) WITHOUT ROWID;
";

/// How a stored safety number came to be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Seen on first contact, nobody confirmed it.
    FirstUse,
    /// The owner confirmed it.
    Confirmed,
}

impl Standing {
    fn as_str(self) -> &'static str {
        match self {
            Standing::FirstUse => "first_use",
            Standing::Confirmed => "confirmed",
        }
    }
}

/// A sender's kept safety number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptIdentity {
    pub safety_number: String,
    pub standing: Standing,
}

impl Store {
    /// The safety number kept for `sender` on `channel`, if any.
    pub fn identity(
        &self,
        channel: &str,
        sender: &str,
    ) -> Result<Option<KeptIdentity>, GatewayError> {
        let row: Option<(String, String)> = self
            .lock()
            .query_row(
                "SELECT safety_number, standing FROM gateway_identities
                 WHERE channel = ?1 AND sender = ?2",
                params![channel, sender],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(GatewayError::db("read identity"))?;
        row.map(|(safety_number, standing)| {
            let standing = match standing.as_str() {
                "first_use" => Standing::FirstUse,
                "confirmed" => Standing::Confirmed,
                other => {
                    return Err(GatewayError::CorruptRow {
                        operation: "read identity",
                        value: other.to_string(),
                    });
                }
            };
            Ok(KeptIdentity {
                safety_number,
                standing,
            })
        })
        .transpose()
    }

    /// Keeps `safety_number` for `sender` (replacing what was kept).
    pub fn keep_identity(
        &self,
        channel: &str,
        sender: &str,
        safety_number: &str,
        standing: Standing,
        now: i64,
    ) -> Result<(), GatewayError> {
        self.lock()
            .execute(
                "INSERT INTO gateway_identities (channel, sender, safety_number, standing, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (channel, sender) DO UPDATE SET
                     safety_number = excluded.safety_number,
                     standing = excluded.standing, at = excluded.at",
                params![channel, sender, safety_number, standing.as_str(), now],
            )
            .map_err(GatewayError::db("keep identity"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_numbers_replace_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.identity("sig", "u").unwrap(), None);
        store
            .keep_identity("sig", "u", "111", Standing::FirstUse, 1)
            .unwrap();
        store
            .keep_identity("sig", "u", "222", Standing::Confirmed, 2)
            .unwrap();
        assert_eq!(
            store.identity("sig", "u").unwrap(),
            Some(KeptIdentity {
                safety_number: "222".into(),
                standing: Standing::Confirmed
            })
        );
        assert_eq!(store.identity("other", "u").unwrap(), None);
    }
}
