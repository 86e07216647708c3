//! The TPM, reached through a short-lived helper process (`coworkd-tpm`).
//!
//! Only `coworkd-tpm` links the TSS stack (libtss2-esys, its TCTI loader and
//! libcrypto). The supervisor runs it for each of the three things the keystore
//! asks of a TPM (probe, seal, unseal), hands it one request on stdin and reads
//! one answer on stdout. So no long-lived process maps those libraries: the
//! supervisor and every component run the one `coworkd` binary and share its
//! pages, and the code that parses TPM responses lives for one command only.
//!
//! Wire format, both ways one CBOR value (at most [`MAX_MESSAGE`] bytes):
//! [`Request`] in, [`Answer`] out. Key bytes travel only through the pipe,
//! never in argv or the environment; both ends wipe their copies. The helper
//! runs with an empty environment, hardened like every process
//! ([`super::harden_process`]), and exits after its one answer.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::KeystoreError;
use super::key::MasterKey;

/// The helper's file name, installed beside `coworkd`.
pub const HELPER_BINARY: &str = "coworkd-tpm";

/// Largest request or answer: a sealed blob is well under 1 KiB.
const MAX_MESSAGE: u64 = 64 * 1024;

/// How this process reaches the TPM: the helper binary to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmHelper {
    exe: PathBuf,
}

#[derive(Serialize, Deserialize)]
enum Request {
    /// Can a storage key be created through this TCTI?
    Probe { tcti: String },
    Seal {
        tcti: String,
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        pcrs: Vec<u8>,
    },
    Unseal {
        tcti: String,
        /// For error messages only: the helper never opens files.
        path: PathBuf,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
    },
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Usable,
    Sealed(#[serde(with = "serde_bytes")] Vec<u8>),
    Unsealed(#[serde(with = "serde_bytes")] Vec<u8>),
    Failed(Failure),
}

/// The TPM errors of [`KeystoreError`], as they cross the pipe.
#[derive(Debug, Serialize, Deserialize)]
enum Failure {
    TctiInvalid {
        reason: String,
    },
    Unusable {
        operation: String,
        reason: String,
    },
    Foreign {
        reason: String,
    },
    Corrupt {
        reason: String,
    },
    PolicyMismatch {
        pcrs: Vec<u8>,
    },
    /// Anything else the helper hit (it cannot read its request, say).
    Other {
        reason: String,
    },
}

impl TpmHelper {
    pub fn new(exe: impl Into<PathBuf>) -> TpmHelper {
        TpmHelper { exe: exe.into() }
    }

    /// `coworkd-tpm` beside the running executable: how the supervisor finds
    /// it. Never a PATH lookup: the helper is handed the master key.
    pub fn beside_current_exe() -> TpmHelper {
        let exe = std::env::current_exe()
            .map(|e| e.with_file_name(HELPER_BINARY))
            .unwrap_or_else(|_| Path::new("/usr/bin").join(HELPER_BINARY));
        TpmHelper { exe }
    }

    /// `Ok` if a storage key can be created through `tcti`, else why not.
    pub(super) fn probe(&self, tcti: &str) -> Result<(), KeystoreError> {
        no_device_node(tcti)?;
        match self.run(
            tcti,
            "probe",
            &Request::Probe {
                tcti: tcti.to_string(),
            },
        )? {
            Answer::Usable => Ok(()),
            other => Err(unexpected(tcti, "probe", &other)),
        }
    }

    /// Seals `key` (under a PCR policy when `pcrs` is not empty); returns the
    /// blob to store on disk.
    pub(super) fn seal(
        &self,
        tcti: &str,
        key: &MasterKey,
        pcrs: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        no_device_node(tcti)?;
        let request = Zeroizing::new(Request::Seal {
            tcti: tcti.to_string(),
            key: key.bytes().to_vec(),
            pcrs: pcrs.to_vec(),
        });
        match self.run(tcti, "seal", &request)? {
            Answer::Sealed(blob) => Ok(blob),
            other => Err(unexpected(tcti, "seal", &other)),
        }
    }

    /// Unseals the blob read from `path`.
    pub(super) fn unseal(
        &self,
        tcti: &str,
        path: &Path,
        blob: &[u8],
    ) -> Result<MasterKey, KeystoreError> {
        no_device_node(tcti)?;
        let request = Request::Unseal {
            tcti: tcti.to_string(),
            path: path.to_path_buf(),
            blob: blob.to_vec(),
        };
        match self.run(tcti, "unseal", &request)? {
            Answer::Unsealed(key) => {
                let key = Zeroizing::new(key);
                MasterKey::from_slice(&key).ok_or_else(|| KeystoreError::TpmUnusable {
                    tcti: tcti.to_string(),
                    operation: "unseal".into(),
                    reason: format!("the unsealed key has {} bytes", key.len()),
                })
            }
            other => Err(unexpected(tcti, "unseal", &other)),
        }
    }

    /// Runs the helper with one request; a [`Failure`] answer comes back as
    /// the [`KeystoreError`] the helper met, with `path` for blob errors.
    fn run(&self, tcti: &str, operation: &str, request: &Request) -> Result<Answer, KeystoreError> {
        let fail = |reason: String| KeystoreError::TpmUnusable {
            tcti: tcti.to_string(),
            operation: format!("{operation} (via {})", self.exe.display()),
            reason,
        };
        let mut input = Zeroizing::new(Vec::new());
        ciborium::into_writer(request, &mut *input)
            .map_err(|e| fail(format!("cannot encode the request: {e}")))?;
        let mut child = Command::new(&self.exe)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.exe.display())))?;
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(&input))
            .unwrap_or(Ok(()));
        let mut output = Zeroizing::new(Vec::new());
        let read = child
            .stdout
            .take()
            .map(|stdout| stdout.take(MAX_MESSAGE + 1).read_to_end(&mut output))
            .unwrap_or(Ok(0));
        let status = child
            .wait()
            .map_err(|e| fail(format!("waiting for the helper: {e}")))?;
        written.map_err(|e| fail(format!("writing the request: {e}")))?;
        read.map_err(|e| fail(format!("reading the answer: {e}")))?;
        if output.len() as u64 > MAX_MESSAGE {
            return Err(fail(format!("the answer exceeds {MAX_MESSAGE} bytes")));
        }
        let answer: Answer = ciborium::from_reader(output.as_slice()).map_err(|e| {
            fail(format!(
                "no answer ({status}): {e}; the helper's messages are in the journal"
            ))
        })?;
        let path = match request {
            Request::Unseal { path, .. } => path.clone(),
            _ => PathBuf::new(),
        };
        match answer {
            Answer::Failed(f) => Err(f.into_error(tcti, path)),
            ok => Ok(ok),
        }
    }
}

/// A missing device node is the common "no TPM" case (a dev machine, a box
/// without one): answer it here, without starting the helper.
fn no_device_node(tcti: &str) -> Result<(), KeystoreError> {
    match tcti.strip_prefix("device:") {
        Some(dev) if !dev.is_empty() && !Path::new(dev).exists() => {
            Err(KeystoreError::TpmUnusable {
                tcti: tcti.to_string(),
                operation: "open TCTI".into(),
                reason: format!("no TPM device node {dev}"),
            })
        }
        _ => Ok(()),
    }
}

fn unexpected(tcti: &str, operation: &str, answer: &Answer) -> KeystoreError {
    let what = match answer {
        Answer::Usable => "usable",
        Answer::Sealed(_) => "a sealed blob",
        Answer::Unsealed(_) => "an unsealed key",
        Answer::Failed(_) => "a failure",
    };
    KeystoreError::TpmUnusable {
        tcti: tcti.to_string(),
        operation: operation.into(),
        reason: format!("the helper answered {what}"),
    }
}

impl Failure {
    fn from_error(e: KeystoreError) -> Failure {
        match e {
            KeystoreError::TctiInvalid { reason, .. } => Failure::TctiInvalid { reason },
            KeystoreError::TpmUnusable {
                operation, reason, ..
            } => Failure::Unusable { operation, reason },
            KeystoreError::SealedBlobForeign { reason, .. } => Failure::Foreign { reason },
            KeystoreError::SealedBlobCorrupt { reason, .. } => Failure::Corrupt { reason },
            KeystoreError::TpmPolicyMismatch { pcrs, .. } => Failure::PolicyMismatch { pcrs },
            other => Failure::Other {
                reason: other.to_string(),
            },
        }
    }

    fn into_error(self, tcti: &str, path: PathBuf) -> KeystoreError {
        let tcti = tcti.to_string();
        match self {
            Failure::TctiInvalid { reason } => KeystoreError::TctiInvalid { tcti, reason },
            Failure::Unusable { operation, reason } => KeystoreError::TpmUnusable {
                tcti,
                operation,
                reason,
            },
            Failure::Foreign { reason } => KeystoreError::SealedBlobForeign { path, reason },
            Failure::Corrupt { reason } => KeystoreError::SealedBlobCorrupt { path, reason },
            Failure::PolicyMismatch { pcrs } => KeystoreError::TpmPolicyMismatch { path, pcrs },
            Failure::Other { reason } => KeystoreError::TpmUnusable {
                tcti,
                operation: "helper".into(),
                reason,
            },
        }
    }
}

impl zeroize::Zeroize for Request {
    fn zeroize(&mut self) {
        if let Request::Seal { key, .. } = self {
            key.zeroize();
        }
    }
}

/// `coworkd-tpm`: reads one request on stdin, answers it on stdout, exits.
/// Exit status 0 when the answer was written (a TPM failure is an answer too),
/// 1 when it could not be.
pub fn helper_main() -> ExitCode {
    if let Err(e) = super::harden_process() {
        eprintln!("coworkd-tpm: {e}");
        return ExitCode::from(1);
    }
    let mut input = Zeroizing::new(Vec::new());
    let answer = match std::io::stdin()
        .lock()
        .take(MAX_MESSAGE + 1)
        .read_to_end(&mut input)
    {
        Err(e) => Answer::Failed(Failure::Other {
            reason: format!("reading the request: {e}"),
        }),
        Ok(_) if input.len() as u64 > MAX_MESSAGE => Answer::Failed(Failure::Other {
            reason: format!("the request exceeds {MAX_MESSAGE} bytes"),
        }),
        Ok(_) => match ciborium::from_reader::<Request, _>(input.as_slice()) {
            Err(e) => Answer::Failed(Failure::Other {
                reason: format!("the request does not decode: {e}"),
            }),
            Ok(request) => answer(Zeroizing::new(request)),
        },
    };
    let mut output = Zeroizing::new(Vec::new());
    if let Err(e) = ciborium::into_writer(&answer, &mut *output) {
        eprintln!("coworkd-tpm: cannot encode the answer: {e}");
        return ExitCode::from(1);
    }
    if let Answer::Unsealed(mut key) = answer {
        zeroize::Zeroize::zeroize(&mut key);
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&output).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coworkd-tpm: cannot write the answer: {e}");
            ExitCode::from(1)
        }
    }
}

fn answer(request: Zeroizing<Request>) -> Answer {
    use super::tpm2::Tpm;
    let result = match &*request {
        Request::Probe { tcti } => Tpm::open(tcti).map(|_| Answer::Usable),
        Request::Seal { tcti, key, pcrs } => match MasterKey::from_slice(key) {
            None => Err(KeystoreError::TpmUnusable {
                tcti: tcti.clone(),
                operation: "seal".into(),
                reason: format!("a master key has 32 bytes, not {}", key.len()),
            }),
            Some(key) => Tpm::open(tcti)
                .and_then(|mut tpm| tpm.seal(&key, pcrs))
                .map(Answer::Sealed),
        },
        Request::Unseal { tcti, path, blob } => Tpm::open(tcti)
            .and_then(|mut tpm| tpm.unseal(path, blob))
            .map(|key| Answer::Unsealed(key.bytes().to_vec())),
    };
    result.unwrap_or_else(|e| Answer::Failed(Failure::from_error(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_round_trip_with_their_path() {
        let path = PathBuf::from("/state/keystore/master.tpm2");
        let cases = [
            Failure::TctiInvalid { reason: "x".into() },
            Failure::Unusable {
                operation: "TPM2_Startup".into(),
                reason: "y".into(),
            },
            Failure::Foreign { reason: "z".into() },
            Failure::Corrupt { reason: "w".into() },
            Failure::PolicyMismatch { pcrs: vec![0, 7] },
        ];
        for f in cases {
            let mut bytes = Vec::new();
            ciborium::into_writer(&Answer::Failed(f), &mut bytes).unwrap();
            let Answer::Failed(back) = ciborium::from_reader(bytes.as_slice()).unwrap() else {
                panic!("not a failure");
            };
            let e = back.into_error("device:/dev/tpmrm0", path.clone());
            let again = Failure::from_error(e);
            assert!(!matches!(again, Failure::Other { .. }), "{again:?}");
        }
        let e = Failure::PolicyMismatch { pcrs: vec![7] }.into_error("t", path.clone());
        assert!(
            matches!(&e, KeystoreError::TpmPolicyMismatch { path: p, .. } if *p == path),
            "{e}"
        );
    }

    #[test]
    fn a_missing_helper_is_a_clear_error() {
        let helper = TpmHelper::new("/nonexistent/coworkd-tpm");
        let e = helper.probe("swtpm:host=127.0.0.1,port=1").unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot start /nonexistent/coworkd-tpm"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_device_node_needs_no_helper() {
        let helper = TpmHelper::new("/nonexistent/coworkd-tpm");
        let e = helper.probe("device:/nonexistent/tpmrm0").unwrap_err();
        assert!(e.to_string().contains("no TPM device node"), "{e}");
    }
}
