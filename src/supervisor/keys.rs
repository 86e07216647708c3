//! The supervisor's side of the keystore: opens (and, when a TPM appears, migrates)
//! the master key once at start, hands each component only the derived keys it
//! needs, finishes an interrupted rotation, and runs `secret rotate-master`.

use std::sync::Mutex;

use anyhow::Context;

use crate::config::Config;
use crate::ipc::{
    Client, Component, ComponentRequest, ComponentResponse, GatewayRequest, GatewayResponse,
    KeyBundle, WireKey,
};
use crate::keystore::{DerivedKey, Keystore, Purpose, TierChoice, TierKind, TpmHelper};
use crate::paths::Paths;

/// The open keystore and the words `coworkctl status` shows for it.
#[derive(Debug)]
pub struct Keys {
    keystore: Mutex<Keystore>,
    status: Mutex<String>,
    /// A rotation was interrupted: resolve it with the gateway before handing out keys.
    rotation_pending: Mutex<bool>,
}

/// Which derived keys each component gets (habit 6: keys stay with their owner).
pub fn purposes(c: Component) -> &'static [Purpose] {
    match c {
        Component::Audit => &[Purpose::AuditCheckpoint],
        Component::Gateway => &[Purpose::Vault, Purpose::PairingCodeHash],
        Component::Admin => &[Purpose::AdminTlsKey, Purpose::AdminSession],
        Component::Sandbox => &[],
    }
}

impl Keys {
    /// Opens the keystore in `$STATE/supervisor/keystore/`.
    pub fn open(config: &Config, paths: &Paths) -> anyhow::Result<Keys> {
        let (mut keystore, report) = Keystore::open(
            &config.keystore,
            &paths.supervisor_state_dir(),
            &TpmHelper::beside_current_exe(),
        )
        .context("opening the keystore")?;
        for skipped in &report.skipped {
            tracing::info!(tier = %skipped.tier, reason = %skipped.reason, "keystore tier {} not used: {}", skipped.tier, skipped.reason);
        }
        for note in &report.notes {
            tracing::info!("keystore: {note}");
        }
        if report.migration_available == Some(TierKind::Tpm2)
            && config.keystore.tier == TierChoice::Auto
        {
            keystore
                .migrate_to(TierKind::Tpm2)
                .context("moving the master key from the host key file into the TPM")?;
            tracing::warn!(
                "keystore: a TPM is now present; the master key was sealed into it and the host key file removed"
            );
        }
        let tier = keystore.tier();
        let status = if tier.software_bound() {
            if config.profile == crate::config::Profile::Production {
                tracing::warn!(
                    "keystore tier is {tier}: secrets are software-bound (a copy of the disk is enough to read them); add a TPM 2.0"
                );
            }
            format!("{tier} (software-bound)")
        } else {
            tier.to_string()
        };
        tracing::info!(tier = %tier, created = report.created, "keystore: {status}");
        Ok(Keys {
            keystore: Mutex::new(keystore),
            status: Mutex::new(status),
            rotation_pending: Mutex::new(report.interrupted_rotation),
        })
    }

    pub fn status(&self) -> String {
        lock(&self.status).clone()
    }

    fn bundle(&self, purposes: &[Purpose]) -> KeyBundle {
        let keystore = lock(&self.keystore);
        KeyBundle {
            keys: purposes
                .iter()
                .map(|p| wire(&keystore.derive(*p)))
                .collect(),
        }
    }

    /// Sends `c` its keys (nothing for a component that needs none). For the
    /// gateway, first settles an interrupted rotation: the vault decides which
    /// master is current. A component that answers its keys with an error
    /// cannot start as it is (the admin page's address taken, say): the error
    /// is a [`StartRefused`] then, not a transport failure.
    pub async fn install(
        &self,
        c: Component,
        client: &Client<ComponentRequest, ComponentResponse>,
    ) -> anyhow::Result<()> {
        let wanted = purposes(c);
        if wanted.is_empty() {
            return Ok(());
        }
        if c == Component::Gateway && *lock(&self.rotation_pending) {
            self.resolve_rotation(client).await?;
        }
        let bundle = self.bundle(wanted);
        match client.call(ComponentRequest::InstallKeys(bundle)).await? {
            ComponentResponse::Done => Ok(()),
            ComponentResponse::Error(e) => Err(StartRefused(e.message).into()),
            _ => anyhow::bail!("{c} answered its keys with an unexpected message"),
        }
    }

    async fn resolve_rotation(
        &self,
        gateway: &Client<ComponentRequest, ComponentResponse>,
    ) -> anyhow::Result<()> {
        let (current, pending) = {
            let keystore = lock(&self.keystore);
            (
                keystore.derive(Purpose::Vault),
                keystore.pending_vault_key()?,
            )
        };
        let Some(pending) = pending else {
            *lock(&self.rotation_pending) = false;
            return Ok(());
        };
        let candidates = KeyBundle {
            keys: vec![wire(&current), wire(&pending)],
        };
        let opens = match gateway
            .call(ComponentRequest::Gateway(GatewayRequest::VaultProbe {
                candidates,
            }))
            .await?
        {
            ComponentResponse::Gateway(GatewayResponse::VaultProbe { opens }) => opens,
            other => anyhow::bail!("vault probe failed: {other:?}"),
        };
        let winner = match opens {
            Some(0) => current,
            Some(1) => pending,
            _ => anyhow::bail!(
                "an interrupted master key rotation cannot be resolved: neither key opens the vault"
            ),
        };
        let resolution = lock(&self.keystore).resolve_interrupted_rotation(|k| k == winner)?;
        tracing::warn!(
            ?resolution,
            "keystore: finished an interrupted master key rotation"
        );
        *lock(&self.rotation_pending) = false;
        Ok(())
    }

    /// `coworkctl secret rotate-master`: new master in the pending slot → the
    /// gateway re-wraps the vault in one transaction → the audit trail re-MACs its
    /// checkpoints under the new checkpoint key → the new master replaces the old.
    /// If the audit step fails, the vault is wrapped back and nothing changes.
    /// The caller then hands every component its new keys.
    pub async fn rotate(
        &self,
        gateway: &Client<ComponentRequest, ComponentResponse>,
        audit: &Client<ComponentRequest, ComponentResponse>,
    ) -> anyhow::Result<usize> {
        let (pending, old) = {
            let keystore = lock(&self.keystore);
            (
                keystore.prepare_rotation()?,
                keystore.derive(Purpose::Vault),
            )
        };
        let new = pending.derive(Purpose::Vault);
        let rewrap = |from: &DerivedKey, to: &DerivedKey| GatewayRequest::VaultRewrap {
            old: KeyBundle {
                keys: vec![wire(from)],
            },
            new: KeyBundle {
                keys: vec![wire(to)],
            },
        };
        let secrets = match gateway
            .call(ComponentRequest::Gateway(rewrap(&old, &new)))
            .await
        {
            Ok(ComponentResponse::Gateway(GatewayResponse::Rewrapped { secrets })) => secrets,
            other => {
                lock(&self.keystore).abort_rotation(pending)?;
                anyhow::bail!(
                    "the gateway could not re-wrap the vault, nothing changed: {other:?}"
                );
            }
        };
        let audit_key = KeyBundle {
            keys: vec![wire(&pending.derive(Purpose::AuditCheckpoint))],
        };
        match audit.call(ComponentRequest::InstallKeys(audit_key)).await {
            Ok(ComponentResponse::Done) => {}
            other => {
                let back = gateway
                    .call(ComponentRequest::Gateway(rewrap(&new, &old)))
                    .await;
                lock(&self.keystore).abort_rotation(pending)?;
                anyhow::bail!(
                    "the audit trail could not be re-keyed ({other:?}); the vault was wrapped back ({back:?}) and nothing changed"
                );
            }
        }
        lock(&self.keystore).commit_rotation(pending)?;
        tracing::warn!(
            secrets,
            "keystore: master key rotated; {secrets} secrets re-wrapped"
        );
        Ok(secrets)
    }
}

fn wire(key: &DerivedKey) -> WireKey {
    WireKey {
        purpose: key.purpose(),
        bytes: *key.expose(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_gets_only_its_keys() {
        assert_eq!(purposes(Component::Sandbox), &[] as &[Purpose]);
        assert!(!purposes(Component::Admin).contains(&Purpose::Vault));
        assert!(!purposes(Component::Audit).contains(&Purpose::Vault));
        assert_eq!(
            purposes(Component::Gateway),
            &[Purpose::Vault, Purpose::PairingCodeHash]
        );
    }
}

/// A component took its keys and answered that it cannot start (its reason, a
/// sentence for people): a failed start, handled like a crash.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartRefused(pub String);
