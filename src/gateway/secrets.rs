//! The vault operations served over IPC, on the gateway's `state.db`.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use zeroize::Zeroizing;

use super::channels::SecretLookup;
use super::error::GatewayError;
use super::store::Store;
use super::transport::Redacted;
use crate::ipc::{
    ErrorCode, GatewayRequest, GatewayResponse, KeyBundle, SecretBytes, SecretListing, WireError,
};
use crate::keystore::vault::Vault;
use crate::keystore::{DerivedKey, Purpose, VaultError};

/// The vault on the gateway's `state.db` connection, once its key is in.
/// Locks are always taken in one order: the connection, then the key.
#[derive(Debug)]
pub(super) struct VaultCell {
    /// `state.db` (the process's one connection): the vault table.
    state: Arc<Store>,
    vault: Mutex<Option<Vault>>,
}

impl VaultCell {
    pub(super) fn new(state: Arc<Store>) -> VaultCell {
        VaultCell {
            state,
            vault: Mutex::new(None),
        }
    }

    pub(super) fn set_key(&self, vault: Vault) {
        let _db = self.state.lock();
        *lock(&self.vault) = Some(vault);
    }

    pub(super) fn has_key(&self) -> bool {
        lock(&self.vault).is_some()
    }

    /// Serves one vault request; `true` with the answer when the set of
    /// stored values changed (set, delete, re-wrap).
    pub(super) fn request(
        &self,
        request: GatewayRequest,
    ) -> Result<(GatewayResponse, bool), WireError> {
        let changes = matches!(
            request,
            GatewayRequest::SecretSet { .. }
                | GatewayRequest::SecretDelete { .. }
                | GatewayRequest::VaultRewrap { .. }
        );
        let db = self.state.lock();
        vault_request(&db, &self.vault, request).map(|r| (r, changes))
    }

    /// One secret's value.
    pub(super) fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, WireError> {
        let db = self.state.lock();
        let vault = lock(&self.vault);
        vault
            .as_ref()
            .ok_or_else(no_keys)?
            .get(&db, name)
            .map_err(vault_error)
    }

    /// Every stored value, for the audit trail's redactor.
    pub(super) fn values(&self) -> Result<Vec<SecretBytes>, WireError> {
        let db = self.state.lock();
        let vault = lock(&self.vault);
        let vault = vault.as_ref().ok_or_else(no_keys)?;
        vault
            .list(&db)
            .map_err(vault_error)?
            .iter()
            .map(|s| {
                vault
                    .get(&db, &s.name)
                    .map(|v| SecretBytes(v.to_vec()))
                    .map_err(vault_error)
            })
            .collect()
    }
}

/// Serves one vault request on the gateway's `state.db` connection.
fn vault_request(
    db: &Connection,
    vault: &Mutex<Option<Vault>>,
    request: GatewayRequest,
) -> Result<GatewayResponse, WireError> {
    match request {
        GatewayRequest::SecretSet { name, value } => {
            let vault = lock(vault);
            let vault = vault.as_ref().ok_or_else(no_keys)?;
            let version = vault.set(db, &name, &value.0).map_err(vault_error)?;
            tracing::info!(secret = %name, version, "secret stored");
            Ok(GatewayResponse::SecretStored { name, version })
        }
        GatewayRequest::SecretList => {
            let vault = lock(vault);
            let vault = vault.as_ref().ok_or_else(no_keys)?;
            let list = vault.list(db).map_err(vault_error)?;
            Ok(GatewayResponse::Secrets(
                list.into_iter()
                    .map(|s| SecretListing {
                        name: s.name,
                        version: s.version,
                        updated_at: s.updated_at,
                        bytes: Some(s.bytes),
                    })
                    .collect(),
            ))
        }
        GatewayRequest::SecretDelete { name } => {
            let vault = lock(vault);
            let vault = vault.as_ref().ok_or_else(no_keys)?;
            vault.delete(db, &name).map_err(vault_error)?;
            tracing::info!(secret = %name, "secret deleted");
            Ok(GatewayResponse::Secrets(Vec::new()))
        }
        GatewayRequest::VaultProbe { candidates } => {
            let mut opens = None;
            for (i, k) in candidates.keys.iter().enumerate() {
                let v = Vault::new(DerivedKey::from_supervisor(k.purpose, k.bytes));
                if v.opens(db).map_err(vault_error)? {
                    opens = Some(i);
                    break;
                }
            }
            Ok(GatewayResponse::VaultProbe { opens })
        }
        GatewayRequest::VaultRewrap { old, new } => {
            let old = Vault::new(key_of(&old, Purpose::Vault)?);
            let new_key = key_of(&new, Purpose::Vault)?;
            let new = Vault::new(new_key);
            let secrets = Vault::rewrap(db, &old, &new).map_err(vault_error)?;
            *lock(vault) = Some(new);
            tracing::info!(secrets, "vault re-wrapped under a new master key");
            Ok(GatewayResponse::Rewrapped { secrets })
        }
        GatewayRequest::Access { .. }
        | GatewayRequest::LocalMessage { .. }
        | GatewayRequest::LocalPoll { .. }
        | GatewayRequest::ChannelStates
        | GatewayRequest::Agent { .. } => {
            Err(WireError::new(ErrorCode::Internal, "not a vault request"))
        }
    }
}

pub(super) fn key_of(bundle: &KeyBundle, purpose: Purpose) -> Result<DerivedKey, WireError> {
    bundle
        .keys
        .iter()
        .find(|k| k.purpose == purpose)
        .map(|k| DerivedKey::from_supervisor(purpose, k.bytes))
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::BadRequest,
                format!("key bundle lacks the {} key", purpose.label()),
            )
        })
}

fn no_keys() -> WireError {
    WireError::new(ErrorCode::Unavailable, "the gateway has no vault key yet")
}

/// Maps vault errors to wire errors; the message names the secret, never a value.
fn vault_error(e: VaultError) -> WireError {
    let code = match &e {
        VaultError::InvalidName { .. } | VaultError::ValueTooLarge { .. } => ErrorCode::BadRequest,
        VaultError::NotFound { .. } => ErrorCode::NotFound,
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a channel reads its tokens through (each read decrypts afresh, so a
/// credential replaced in the vault is what the next read returns).
impl SecretLookup for VaultCell {
    fn secret(&self, name: &str) -> Result<Redacted, GatewayError> {
        let bytes = self.get(name).map_err(|e| GatewayError::Sink {
            sink: "vault",
            reason: e.message,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| GatewayError::Sink {
            sink: "vault",
            reason: format!("secret {name} is not UTF-8 text"),
        })?;
        Ok(Redacted::from(text.trim().to_string()))
    }
}
