//! The owner account: a one-time setup token while no owner exists, then an
//! argon2id password hash (PHC string) in `admin-owner.phc` (0600).
//! There is no default password: until setup, only the token holder can act.

use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::AdminError;
use super::fsutil;

pub const OWNER_FILE: &str = "admin-owner.phc";
pub const SETUP_TOKEN_FILE: &str = "admin-setup-token";
/// Minimum owner password length in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Maximum accepted password length in bytes (bounds hashing work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The newest owner file schema this image reads and writes. Version 1 is
/// the bare PHC string (what every image so far writes); a later version
/// starts with a line `schema N`, so this image can tell it is newer and
/// refuse it instead of misreading it.
pub const OWNER_SCHEMA: u32 = 1;

/// The schema of an owner file's text: `schema N` on its first line, or 1.
/// `None` inside when the line is there but not a number.
fn owner_schema(text: &str) -> Option<u32> {
    match text.lines().next().and_then(|l| l.strip_prefix("schema ")) {
        Some(n) => n.trim().parse().ok().or(Some(u32::MAX)),
        None => Some(1),
    }
}

/// The owner file's schema version, when there is one (for `coworkctl status`).
pub fn owner_file_schema(state_dir: &Path) -> Option<u32> {
    let bytes = std::fs::read(owner_path(state_dir)).ok()?;
    owner_schema(&String::from_utf8_lossy(&bytes))
}

fn owner_path(dir: &Path) -> PathBuf {
    dir.join(OWNER_FILE)
}

fn token_path(dir: &Path) -> PathBuf {
    dir.join(SETUP_TOKEN_FILE)
}

/// Has the owner been set up?
pub fn owner_exists(state_dir: &Path) -> bool {
    owner_path(state_dir).exists()
}

/// The one-time setup token while no owner exists (created on first call,
/// 128 random bits as 8 groups of 4 hex digits, kept in a 0600 file so the
/// caller can log it and the server can check it); `None` once the owner is set.
pub fn setup_token(state_dir: &Path) -> Result<Option<String>, AdminError> {
    if owner_exists(state_dir) {
        fsutil::remove_if_present(&token_path(state_dir))?;
        return Ok(None);
    }
    let path = token_path(state_dir);
    if let Some(bytes) = fsutil::read_optional(&path)? {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if normalize_token(&text).len() == 32 {
            return Ok(Some(text));
        }
    }
    let mut raw = Zeroizing::new([0u8; 16]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    let hex = Zeroizing::new(hex::encode(raw.as_ref()));
    let token = hex
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    fsutil::write_private(&path, token.as_bytes())?;
    Ok(Some(token))
}

fn normalize_token(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Constant-time check of a presented setup token against the stored one.
pub(crate) fn check_setup_token(state_dir: &Path, presented: &str) -> Result<bool, AdminError> {
    if owner_exists(state_dir) {
        return Ok(false);
    }
    let Some(bytes) = fsutil::read_optional(&token_path(state_dir))? else {
        return Ok(false);
    };
    let stored = Zeroizing::new(normalize_token(&String::from_utf8_lossy(&bytes)));
    if presented.len() > 128 || stored.len() != 32 {
        return Ok(false);
    }
    let presented = Zeroizing::new(normalize_token(presented));
    Ok(stored.as_bytes().ct_eq(presented.as_bytes()).into())
}

/// Why a new password is not acceptable, as a sentence for the form.
pub(crate) fn password_problem(password: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Some(format!(
            "The password must be at least {MIN_PASSWORD_CHARS} characters long."
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Some(format!(
            "The password must be at most {MAX_PASSWORD_BYTES} bytes long."
        ));
    }
    if password.chars().any(char::is_control) {
        return Some("The password must not contain control characters.".into());
    }
    None
}

/// Why a new password typed twice (`again`) is not acceptable: the rules of
/// [`password_problem`], then the two must match (compared in constant time).
pub(crate) fn new_password_problem(password: &str, again: &str) -> Option<String> {
    password_problem(password).or_else(|| {
        (!bool::from(password.as_bytes().ct_eq(again.as_bytes())))
            .then(|| "The two passwords differ.".to_string())
    })
}

/// Hash and store the owner password, then remove the setup token.
pub(crate) fn set_owner_password(state_dir: &Path, password: &str) -> Result<(), AdminError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let phc = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AdminError::HashPassword(e.to_string()))?
        .to_string();
    fsutil::write_private(&owner_path(state_dir), phc.as_bytes())?;
    fsutil::remove_if_present(&token_path(state_dir))
}

/// Verify a password against the stored hash (argon2's verify is constant-time).
pub(crate) fn verify_owner_password(state_dir: &Path, password: &str) -> Result<bool, AdminError> {
    let path = owner_path(state_dir);
    let Some(bytes) = fsutil::read_optional(&path)? else {
        return Ok(false);
    };
    let text = String::from_utf8(bytes).map_err(|_| AdminError::MalformedPasswordFile {
        path: path.clone(),
        detail: "not UTF-8".into(),
    })?;
    crate::schema::check_file_version(OWNER_FILE, owner_schema(&text), OWNER_SCHEMA).map_err(
        |source| AdminError::PasswordFileSchema {
            path: path.clone(),
            source,
        },
    )?;
    let hash = PasswordHash::new(text.trim()).map_err(|e| AdminError::MalformedPasswordFile {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_file_from_a_newer_image_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        set_owner_password(dir.path(), "correct horse battery").unwrap();
        assert_eq!(owner_file_schema(dir.path()), Some(1));
        let phc = std::fs::read_to_string(owner_path(dir.path())).unwrap();
        std::fs::write(owner_path(dir.path()), format!("schema 2\n{phc}")).unwrap();
        assert_eq!(owner_file_schema(dir.path()), Some(2));
        let e = verify_owner_password(dir.path(), "correct horse battery").unwrap_err();
        assert!(
            e.to_string().contains(
                "admin-owner.phc has schema 2; this image knows up to 1: the appliance was rolled back across an incompatible update"
            ),
            "{e}"
        );
        std::fs::write(owner_path(dir.path()), format!("schema x\n{phc}")).unwrap();
        assert!(verify_owner_password(dir.path(), "correct horse battery").is_err());
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_then_owner() {
        let dir = tempfile::tempdir().unwrap();
        let t = setup_token(dir.path()).unwrap().unwrap();
        assert_eq!(
            setup_token(dir.path()).unwrap().as_deref(),
            Some(t.as_str())
        );
        assert!(check_setup_token(dir.path(), &t).unwrap());
        assert!(check_setup_token(dir.path(), &t.to_uppercase().replace('-', " ")).unwrap());
        assert!(!check_setup_token(dir.path(), "0000-0000").unwrap());
        assert!(password_problem("short").is_some());
        assert!(password_problem("correct horse battery").is_none());
        set_owner_password(dir.path(), "correct horse battery").unwrap();
        let mode = std::fs::metadata(dir.path().join(OWNER_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            std::fs::read_to_string(dir.path().join(OWNER_FILE))
                .unwrap()
                .starts_with("$argon2id$")
        );
        assert!(!check_setup_token(dir.path(), &t).unwrap());
        assert_eq!(setup_token(dir.path()).unwrap(), None);
        assert!(verify_owner_password(dir.path(), "correct horse battery").unwrap());
        assert!(!verify_owner_password(dir.path(), "correct horse batterY").unwrap());
    }
}
