//! `coworkd-tpm`: the one program that links the TPM stack (libtss2, libcrypto).
//! The supervisor runs it for each probe, seal or unseal: one request on stdin,
//! one answer on stdout (see `cowork::keystore::TpmHelper`). Not for use by hand.

fn main() -> std::process::ExitCode {
    cowork::keystore::tpm_helper_main()
}
