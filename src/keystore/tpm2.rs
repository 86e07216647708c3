//! TPM 2.0 tier: the master key sealed as a keyedhash object under a storage
//! root key (SRK) re-created at each start from the standard ECC P-256 SRK
//! template under the owner hierarchy (deterministic: same TPM + same owner
//! seed → same key). Only the sealed blob is stored on disk.
//!
//! Sessions: sealing and unsealing use a session salted with the SRK with
//! parameter encryption (AES-128-CFB), so the master key never crosses the
//! TPM bus in clear. With a PCR policy the sealed object has no user auth:
//! only a policy session that passed TPM2_PolicyPCR on the recorded sha256
//! PCRs can unseal it.
//!
//! Blob format (`master.tpm2`), all lengths u16 big-endian:
//! `"CWTPM2\0\x01" | srk_alg u8 | n_pcrs u8 | pcrs[n] | srk_name | public | private | sha256(all before)`.

use std::path::Path;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use tss_esapi::{
    Context,
    attributes::{ObjectAttributesBuilder, SessionAttributesBuilder},
    constants::{SessionType, StartupType, response_code::Tss2ResponseCodeKind},
    handles::KeyHandle,
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        ecc::EccCurve,
        resource_handles::Hierarchy,
        session_handles::{AuthSession, PolicySession},
    },
    structures::{
        Digest, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot,
        Private, Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
        SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
    },
    tcti_ldr::TctiNameConf,
    traits::{Marshall, UnMarshall},
};
use zeroize::Zeroizing;

use super::error::KeystoreError;
use super::key::MasterKey;

const MAGIC: &[u8; 8] = b"CWTPM2\0\x01";
const SRK_ECC_P256: u8 = 1;

/// An open TPM with the SRK loaded.
pub(super) struct Tpm {
    ctx: Context,
    tcti: String,
    srk: KeyHandle,
    srk_name: Vec<u8>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("tcti", &self.tcti)
            .finish_non_exhaustive()
    }
}

/// Parsed sealed blob.
struct SealedBlob {
    pcrs: Vec<u8>,
    srk_name: Vec<u8>,
    public: Vec<u8>,
    private: Vec<u8>,
}

fn srk_template() -> Result<Public, tss_esapi::Error> {
    // TCG "EK/SRK template" style storage key: restricted decryption,
    // fixedTPM/fixedParent, sensitiveDataOrigin, userWithAuth, noDA, AES-128-CFB.
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_decrypt(true)
        .with_restricted(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

fn sealed_template(policy: Option<Digest>) -> Result<Public, tss_esapi::Error> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_admin_with_policy(true)
        // With a PCR policy, the policy is the only way to unseal.
        .with_user_with_auth(policy.is_none())
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(policy.unwrap_or_default())
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

fn pcr_selection(pcrs: &[u8]) -> Result<PcrSelectionList, tss_esapi::Error> {
    let mut slots = Vec::with_capacity(pcrs.len());
    for &p in pcrs {
        slots.push(PcrSlot::try_from(1u32 << u32::from(p))?);
    }
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
}

fn kind(e: &tss_esapi::Error) -> Option<Tss2ResponseCodeKind> {
    match e {
        tss_esapi::Error::Tss2Error(rc) => rc.kind(),
        tss_esapi::Error::WrapperError(_) => None,
    }
}

impl Tpm {
    /// Opens the TCTI, starts the TPM if needed and creates the SRK.
    pub(super) fn open(tcti: &str) -> Result<Tpm, KeystoreError> {
        let conf = TctiNameConf::from_str(tcti).map_err(|e| KeystoreError::TctiInvalid {
            tcti: tcti.to_string(),
            reason: e.to_string(),
        })?;
        // A missing device node is the common "no TPM" case: say so plainly
        // instead of letting the TSS library print its own errors.
        if let Some(dev) = tcti.strip_prefix("device:")
            && !dev.is_empty()
            && !Path::new(dev).exists()
        {
            return Err(KeystoreError::TpmUnusable {
                tcti: tcti.to_string(),
                operation: "open TCTI".into(),
                reason: format!("no TPM device node {dev}"),
            });
        }
        let unusable = |operation: &'static str| {
            let tcti = tcti.to_string();
            move |e: tss_esapi::Error| KeystoreError::TpmUnusable {
                tcti,
                operation: operation.into(),
                reason: e.to_string(),
            }
        };
        let mut ctx = Context::new(conf).map_err(unusable("open TCTI"))?;
        // The firmware (or swtpm's startup-clear) normally started it; a second
        // startup answers TPM_RC_INITIALIZE, which means "already running".
        match ctx.startup(StartupType::Clear) {
            Ok(()) => {}
            Err(e) if kind(&e) == Some(Tss2ResponseCodeKind::Initialize) => {}
            Err(e) => return Err(unusable("TPM2_Startup")(e)),
        }
        let template = srk_template().map_err(unusable("build SRK template"))?;
        let srk = ctx
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(unusable("create primary storage key"))?
            .key_handle;
        let (_, name, _) = ctx
            .execute_without_session(|c| c.read_public(srk))
            .map_err(unusable("read SRK name"))?;
        Ok(Tpm {
            ctx,
            tcti: tcti.to_string(),
            srk,
            srk_name: name.value().to_vec(),
        })
    }

    fn unusable(&self, operation: &'static str) -> impl FnOnce(tss_esapi::Error) -> KeystoreError {
        let tcti = self.tcti.clone();
        move |e| KeystoreError::TpmUnusable {
            tcti,
            operation: operation.into(),
            reason: e.to_string(),
        }
    }

    /// A session salted with the SRK, with command and response parameter
    /// encryption.
    fn start_session(&mut self, ty: SessionType) -> Result<AuthSession, KeystoreError> {
        let srk = self.srk;
        let session = self
            .ctx
            .execute_without_session(|c| {
                c.start_auth_session(
                    Some(srk),
                    None,
                    None,
                    ty,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
            })
            .map_err(self.unusable("start auth session"))?
            .ok_or_else(|| KeystoreError::TpmUnusable {
                tcti: self.tcti.clone(),
                operation: "start auth session".into(),
                reason: "TPM returned no session".into(),
            })?;
        let (attrs, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .build();
        self.ctx
            .tr_sess_set_attributes(session, attrs, mask)
            .map_err(self.unusable("set session attributes"))?;
        Ok(session)
    }

    fn flush_session(&mut self, session: AuthSession) {
        let handle = tss_esapi::handles::SessionHandle::from(session);
        let _ = self.ctx.flush_context(handle.into());
    }

    /// The policy digest of TPM2_PolicyPCR over the current values of `pcrs`.
    fn pcr_policy_digest(&mut self, pcrs: &[u8]) -> Result<Digest, KeystoreError> {
        let selection = pcr_selection(pcrs).map_err(self.unusable("build PCR selection"))?;
        let trial = self
            .ctx
            .execute_without_session(|c| {
                c.start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Trial,
                    SymmetricDefinition::Null,
                    HashingAlgorithm::Sha256,
                )
            })
            .map_err(self.unusable("start trial session"))?
            .ok_or_else(|| KeystoreError::TpmUnusable {
                tcti: self.tcti.clone(),
                operation: "start trial session".into(),
                reason: "TPM returned no session".into(),
            })?;
        let res = (|| {
            let policy = PolicySession::try_from(trial)?;
            // Empty pcrDigest: the TPM uses the PCRs' current values.
            self.ctx.execute_without_session(|c| {
                c.policy_pcr(policy, Digest::default(), selection)?;
                c.policy_get_digest(policy)
            })
        })();
        self.flush_session(trial);
        res.map_err(self.unusable("compute PCR policy"))
    }

    /// Seals `key` under the SRK (with a PCR policy if `pcrs` is not empty)
    /// and returns the blob to store on disk.
    pub(super) fn seal(&mut self, key: &MasterKey, pcrs: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        let policy = if pcrs.is_empty() {
            None
        } else {
            Some(self.pcr_policy_digest(pcrs)?)
        };
        let template =
            sealed_template(policy).map_err(self.unusable("build sealed object template"))?;
        let data = SensitiveData::try_from(key.bytes().to_vec())
            .map_err(self.unusable("wrap master key for sealing"))?;
        let session = self.start_session(SessionType::Hmac)?;
        let srk = self.srk;
        let created = self.ctx.execute_with_session(Some(session), |c| {
            c.create(srk, template, None, Some(data), None, None)
        });
        self.flush_session(session);
        let created = created.map_err(self.unusable("TPM2_Create (seal)"))?;
        let public = created
            .out_public
            .marshall()
            .map_err(self.unusable("marshal sealed public area"))?;
        Ok(encode_blob(&SealedBlob {
            pcrs: pcrs.to_vec(),
            srk_name: self.srk_name.clone(),
            public,
            private: created.out_private.value().to_vec(),
        }))
    }

    /// Loads and unseals a blob read from `path`.
    pub(super) fn unseal(&mut self, path: &Path, bytes: &[u8]) -> Result<MasterKey, KeystoreError> {
        let blob = decode_blob(path, bytes)?;
        let foreign = |reason: String| KeystoreError::SealedBlobForeign {
            path: path.to_path_buf(),
            reason,
        };
        if blob.srk_name != self.srk_name {
            return Err(foreign(
                "the storage root key of this TPM differs from the one the blob was sealed under"
                    .into(),
            ));
        }
        let corrupt = |reason: String| KeystoreError::SealedBlobCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let public =
            Public::unmarshall(&blob.public).map_err(|e| corrupt(format!("public area: {e}")))?;
        let private = Private::try_from(blob.private.clone())
            .map_err(|e| corrupt(format!("private area: {e}")))?;

        let session = self.start_session(SessionType::Hmac)?;
        let srk = self.srk;
        let loaded = self
            .ctx
            .execute_with_session(Some(session), |c| c.load(srk, private, public));
        self.flush_session(session);
        let object = loaded
            .map_err(|e| foreign(format!("TPM2_Load refused the blob under this SRK: {e}")))?;

        let result = if blob.pcrs.is_empty() {
            let session = self.start_session(SessionType::Hmac)?;
            let r = self
                .ctx
                .execute_with_session(Some(session), |c| c.unseal(object.into()));
            self.flush_session(session);
            r
        } else {
            let selection =
                pcr_selection(&blob.pcrs).map_err(|e| corrupt(format!("PCR list: {e}")))?;
            let session = self.start_session(SessionType::Policy)?;
            let r = (|| {
                let policy = PolicySession::try_from(session)?;
                self.ctx.execute_without_session(|c| {
                    c.policy_pcr(policy, Digest::default(), selection)
                })?;
                self.ctx
                    .execute_with_session(Some(session), |c| c.unseal(object.into()))
            })();
            self.flush_session(session);
            r
        };
        let _ = self.ctx.flush_context(object.into());
        let data = result.map_err(|e| match kind(&e) {
            Some(
                Tss2ResponseCodeKind::PolicyFail
                | Tss2ResponseCodeKind::PcrChanged
                | Tss2ResponseCodeKind::Value,
            ) if !blob.pcrs.is_empty() => KeystoreError::TpmPolicyMismatch {
                path: path.to_path_buf(),
                pcrs: blob.pcrs.clone(),
            },
            _ => KeystoreError::TpmUnusable {
                tcti: self.tcti.clone(),
                operation: "TPM2_Unseal".into(),
                reason: e.to_string(),
            },
        })?;
        let bytes = Zeroizing::new(data.value().to_vec());
        MasterKey::from_slice(&bytes)
            .ok_or_else(|| corrupt(format!("unsealed {} bytes, expected 32", bytes.len())))
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        // The Context also flushes on drop; flushing explicitly keeps a TPM
        // without resource manager (swtpm) from filling its object slots.
        let _ = self.ctx.flush_context(self.srk.into());
    }
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are TPM buffers (< 64 KiB by construction).
    let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&field[..usize::from(len)]);
}

fn encode_blob(b: &SealedBlob) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(MAGIC);
    out.push(SRK_ECC_P256);
    out.push(b.pcrs.len() as u8);
    out.extend_from_slice(&b.pcrs);
    push_field(&mut out, &b.srk_name);
    push_field(&mut out, &b.public);
    push_field(&mut out, &b.private);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

fn decode_blob(path: &Path, bytes: &[u8]) -> Result<SealedBlob, KeystoreError> {
    let corrupt = |reason: &str| KeystoreError::SealedBlobCorrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < MAGIC.len() + 2 + 32 {
        return Err(corrupt("file too short"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(
            "not a CoWork sealed master key (bad magic or version)",
        ));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(corrupt("checksum mismatch"));
    }
    let mut rest = &body[MAGIC.len()..];
    let mut take = |n: usize| -> Result<&[u8], KeystoreError> {
        if rest.len() < n {
            return Err(corrupt("truncated field"));
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a)
    };
    if take(1)?[0] != SRK_ECC_P256 {
        return Err(corrupt("unknown storage key algorithm"));
    }
    let n = usize::from(take(1)?[0]);
    let pcrs = take(n)?.to_vec();
    if pcrs.iter().any(|&p| p > 23) {
        return Err(corrupt("PCR index out of range"));
    }
    let mut field = || -> Result<Vec<u8>, KeystoreError> {
        let len = take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        Ok(take(len)?.to_vec())
    };
    let srk_name = field()?;
    let public = field()?;
    let private = field()?;
    if !rest.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(SealedBlob {
        pcrs,
        srk_name,
        public,
        private,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        encode_blob(&SealedBlob {
            pcrs: vec![7, 16],
            srk_name: vec![1; 34],
            public: vec![2; 60],
            private: vec![3; 120],
        })
    }

    #[test]
    fn blob_roundtrip() {
        let b = decode_blob(Path::new("x"), &sample()).unwrap();
        assert_eq!(b.pcrs, vec![7, 16]);
        assert_eq!(b.private, vec![3; 120]);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let good = sample();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(
                    decode_blob(Path::new("x"), &bad),
                    Err(KeystoreError::SealedBlobCorrupt { .. })
                ),
                "flip at {i} not detected"
            );
        }
        for n in 0..good.len() {
            assert!(decode_blob(Path::new("x"), &good[..n]).is_err());
        }
    }

    #[test]
    fn bad_tcti_is_a_clear_error() {
        assert!(matches!(
            Tpm::open("nonsense:foo"),
            Err(KeystoreError::TctiInvalid { .. })
        ));
    }
}
