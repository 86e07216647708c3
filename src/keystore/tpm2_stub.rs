//! Stand-in for the TPM tier on platforms without tss-esapi (macOS): every
//! operation reports the tier unusable.

use std::path::Path;

use super::error::KeystoreError;
use super::key::MasterKey;

/// Never constructed: [`Tpm::open`] always fails here.
#[derive(Debug)]
pub(super) struct Tpm(());

impl Tpm {
    pub(super) fn open(tcti: &str) -> Result<Tpm, KeystoreError> {
        Err(KeystoreError::TpmUnusable {
            tcti: tcti.to_string(),
            operation: "open TCTI".into(),
            reason: "the TPM tier is built for Linux only".into(),
        })
    }

    pub(super) fn seal(
        &mut self,
        _key: &MasterKey,
        _pcrs: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        Err(KeystoreError::TpmUnusable {
            tcti: String::new(),
            operation: "seal".into(),
            reason: "the TPM tier is built for Linux only".into(),
        })
    }

    pub(super) fn unseal(
        &mut self,
        _path: &Path,
        _bytes: &[u8],
    ) -> Result<MasterKey, KeystoreError> {
        Err(KeystoreError::TpmUnusable {
            tcti: String::new(),
            operation: "unseal".into(),
            reason: "the TPM tier is built for Linux only".into(),
        })
    }
}
