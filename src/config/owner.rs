//! The owner's settings: one TOML file on the data partition
//! (`$STATE/settings/owner.toml`), read after `/etc/cowork/coworkd.toml` and its
//! drop-ins, written only by the supervisor (for the admin page's settings
//! forms and `coworkctl settings`). The image's own files stay read-only; this
//! one survives reboots and A/B updates because the data partition does.
//!
//! An edit is a list of [`Change`]s to dotted keys. It is applied to the file's
//! text with `toml_edit` (a hand-edited file keeps its comments), the whole
//! configuration is validated with the result, and only then is the file
//! replaced: written beside, fsynced, renamed over, the directory fsynced, the
//! previous version kept as `owner.toml.prev`. A crash leaves the old or the
//! new file, never a mix. Each version is named by a hash of its text, so two
//! editors that read the same version cannot overwrite each other silently.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ipc::{SettingChange, SettingProblem, SettingValue};

use sha2::{Digest, Sha256};

/// The owner's settings file under `$STATE/settings/`.
pub const OWNER_FILE: &str = "owner.toml";

/// At most this many keys change in one edit; at most this much text is kept.
pub const MAX_CHANGES: usize = 256;
pub const MAX_OWNER_BYTES: usize = 256 * 1024;
const MAX_KEY_CHARS: usize = 256;
const MAX_KEY_PARTS: usize = 8;

/// One edit of one key: set to a TOML value, or removed from the owner's
/// file (the image's value or the default shows again).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: Vec<String>,
    pub value: Option<toml::Value>,
}

impl Change {
    /// `key` in TOML dotted form (`channels.telegram.dm`); `value` the text of a
    /// TOML value (`5`, `true`, `["a", "b"]`, `"text"`) or, when that does not
    /// parse as one, the text itself as a string (`anthropic`).
    pub fn parse(key: &str, value: Option<&str>) -> Result<Change, String> {
        Ok(Change {
            key: parse_key(key)?,
            value: value.map(parse_value).transpose()?,
        })
    }

    pub fn dotted(&self) -> String {
        self.key.join(".")
    }
}

/// Splits a dotted key; each part is a bare TOML key (a-z, A-Z, 0-9, - and _).
pub fn parse_key(key: &str) -> Result<Vec<String>, String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(format!("the key is longer than {MAX_KEY_CHARS} characters"));
    }
    let parts: Vec<String> = key.split('.').map(str::to_string).collect();
    if parts.len() > MAX_KEY_PARTS {
        return Err(format!("{key}: more than {MAX_KEY_PARTS} parts"));
    }
    for part in &parts {
        let bare = !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !bare {
            return Err(format!(
                "{}: each part of a key is letters, digits, - or _ (like channels.telegram.dm)",
                shown(key)
            ));
        }
    }
    Ok(parts)
}

/// A value as typed on a command line or sent by a form.
pub fn parse_value(text: &str) -> Result<toml::Value, String> {
    if text.len() > MAX_OWNER_BYTES {
        return Err(format!("the value is longer than {MAX_OWNER_BYTES} bytes"));
    }
    let probe = format!("v = {text}");
    match probe.parse::<toml::Table>() {
        Ok(mut t) if t.len() == 1 => t
            .remove("v")
            .ok_or_else(|| "the value did not parse".to_string()),
        // Not TOML: a bare word is meant as a string. Text that looks like an
        // attempt at structure is an error instead of a surprising string.
        _ if text.starts_with(['[', '{', '"', '\'']) => {
            Err(format!("{} is not a valid TOML value", shown(text)))
        }
        _ if text.contains('\n') => Err("a value without quotes is one line".to_string()),
        _ => Ok(toml::Value::String(text.to_string())),
    }
}

/// Names a version of the owner's file: a hash of its text ("" when absent).
pub fn version(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

/// The owner's file with `changes` applied.
pub fn edit(text: &str, changes: &[Change]) -> Result<String, String> {
    if changes.len() > MAX_CHANGES {
        return Err(format!("more than {MAX_CHANGES} changes at once"));
    }
    let mut doc = text
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| format!("the owner's settings file does not parse: {e}"))?;
    for change in changes {
        let (last, parents) = change
            .key
            .split_last()
            .ok_or_else(|| "the key is empty".to_string())?;
        match &change.value {
            Some(value) => {
                let mut table = doc.as_table_mut() as &mut dyn toml_edit::TableLike;
                for part in parents {
                    let entry = table.entry(part).or_insert_with(|| {
                        // `[channels.extra]` alone, not an empty `[channels]` too.
                        let mut t = toml_edit::Table::new();
                        t.set_implicit(true);
                        toml_edit::Item::Table(t)
                    });
                    table = entry.as_table_like_mut().ok_or_else(|| {
                        format!("{}: {part} is a value, not a table", change.dotted())
                    })?;
                }
                table.insert(last, toml_edit::Item::Value(to_edit_value(value)?));
            }
            None => {
                let mut table = Some(doc.as_table_mut() as &mut dyn toml_edit::TableLike);
                for part in parents {
                    table = table
                        .and_then(|t| t.get_mut(part))
                        .and_then(|i| i.as_table_like_mut());
                }
                if let Some(t) = table {
                    t.remove(last);
                }
            }
        }
    }
    prune_empty_tables(doc.as_table_mut());
    let out = doc.to_string();
    if out.len() > MAX_OWNER_BYTES {
        return Err(format!(
            "the owner's settings would exceed {MAX_OWNER_BYTES} bytes"
        ));
    }
    Ok(out)
}

/// Tables left empty by removals go too (they would still mean "this channel
/// exists"), inline ones as well (`prices.m = { ... }` with both keys reset).
fn prune_empty_tables(table: &mut dyn toml_edit::TableLike) {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_string()).collect();
    for key in keys {
        let empty = match table.get_mut(&key) {
            Some(toml_edit::Item::Table(t)) => {
                prune_empty_tables(t);
                t.is_empty()
            }
            Some(toml_edit::Item::Value(toml_edit::Value::InlineTable(t))) => {
                prune_empty_tables(t);
                t.is_empty()
            }
            _ => false,
        };
        if empty {
            table.remove(&key);
        }
    }
}

fn to_edit_value(v: &toml::Value) -> Result<toml_edit::Value, String> {
    // The toml crate's own rendering of one value, parsed back by toml_edit:
    // no hand-written TOML quoting.
    let text = toml::to_string(&BTreeMap::from([("v", v)]))
        .map_err(|e| format!("cannot write the value: {e}"))?;
    let doc = text
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| format!("cannot write the value: {e}"))?;
    match doc.get("v") {
        Some(toml_edit::Item::Value(v)) => {
            let mut v = v.clone();
            v.decor_mut().clear();
            Ok(v)
        }
        // A table value (`{ a = 1 }`) renders as a [v] section: write it inline.
        Some(toml_edit::Item::Table(t)) => {
            Ok(toml_edit::Value::InlineTable(t.clone().into_inline_table()))
        }
        _ => Err("cannot write the value".into()),
    }
}

/// Replaces `path` with `text`, atomically and durably, keeping the previous
/// version as `NAME.prev`.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the settings file has no directory"))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        // Components read what is here under their own users; the unit's
        // umask of 077 must not close the directory to them (the state
        // directory around it decides who gets in).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the settings file has no name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.new"));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        // Every component reads it under its own user; a umask of 077 (the
        // unit's) must not make it the supervisor's alone.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    if path.exists() {
        // A hard link keeps the old version as it was, whatever happens next.
        let prev = dir.join(format!("{name}.prev"));
        let _ = std::fs::remove_file(&prev);
        std::fs::hard_link(path, &prev)?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the owner's file: its text, or "" when there is none yet.
pub fn read(path: &Path) -> std::io::Result<String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() > MAX_OWNER_BYTES => Err(std::io::Error::other(format!(
            "{} is larger than {MAX_OWNER_BYTES} bytes",
            path.display()
        ))),
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| std::io::Error::other(format!("{} is not UTF-8 text", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Every leaf value of a configuration as dotted key → value (arrays are leaves).
pub fn flatten(value: &toml::Value) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    if let toml::Value::Table(t) = value {
        flatten_into(t, String::new(), &mut out);
    }
    out
}

fn flatten_into(t: &toml::Table, prefix: String, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => flatten_into(inner, key, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

/// One key whose effective value differs between two configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyChange {
    pub key: String,
    pub old: Option<toml::Value>,
    pub new: Option<toml::Value>,
}

/// What changed between two configurations, key by key.
pub fn diff(old: &super::Config, new: &super::Config) -> Vec<KeyChange> {
    let as_value = |c: &super::Config| toml::Value::try_from(c).map(|v| flatten(&v));
    let (Ok(old), Ok(new)) = (as_value(old), as_value(new)) else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| KeyChange {
            key: k.clone(),
            old: old.get(k).cloned(),
            new: new.get(k).cloned(),
        })
        .collect()
}

/// A change that validated: the owner's file as it would be, and the
/// configuration it makes.
#[derive(Debug)]
pub struct Plan {
    pub text: String,
    pub loaded: super::Loaded,
    /// The version the change was made against.
    pub version: String,
}

/// Why a change was refused (nothing was written), and the file's version.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub problems: Vec<SettingProblem>,
    pub current_version: String,
}

/// Reads the owner's file at `owner_file`, checks `expected_version`, applies
/// `changes` and validates the whole configuration with the result. Writes
/// nothing: the caller writes [`Plan::text`] with [`write`].
pub fn plan(
    config: &Path,
    owner_file: &Path,
    changes: &[SettingChange],
    expected_version: Option<String>,
) -> Result<Plan, Refusal> {
    let refuse = |problems: Vec<SettingProblem>, current_version: &str| Refusal {
        problems,
        current_version: current_version.to_string(),
    };
    let one = |message: String| vec![SettingProblem { key: None, message }];
    let current = read(owner_file).map_err(|e| {
        refuse(
            one(format!("cannot read {}: {e}", owner_file.display())),
            "",
        )
    })?;
    let version = version(&current);
    if expected_version.is_some_and(|expected| expected != version) {
        return Err(refuse(
            one("the settings changed since you opened them; reload them and make your change again".into()),
            &version,
        ));
    }
    if changes.is_empty() {
        return Err(refuse(one("no change was given".into()), &version));
    }
    if changes.len() > MAX_CHANGES {
        return Err(refuse(
            one(format!("more than {MAX_CHANGES} changes at once")),
            &version,
        ));
    }
    let mut parsed = Vec::with_capacity(changes.len());
    let mut bad = Vec::new();
    for c in changes {
        match Change::parse(&c.key, c.value.as_deref()) {
            Ok(p) => parsed.push(p),
            Err(message) => bad.push(SettingProblem {
                key: Some(c.key.clone()).filter(|k| parse_key(k).is_ok()),
                message: match parse_key(&c.key) {
                    Ok(_) => format!("{}: {message}", c.key),
                    Err(_) => message,
                },
            }),
        }
    }
    if !bad.is_empty() {
        return Err(refuse(bad, &version));
    }
    let text = edit(&current, &parsed).map_err(|m| refuse(one(m), &version))?;
    let loaded = super::check_owner(config, owner_file, &text)
        .map_err(|e| refuse(change_problems(&e, owner_file), &version))?;
    Ok(Plan {
        text,
        loaded,
        version,
    })
}

/// Every problem of a configuration, each at its key when known.
pub fn problems(e: &super::ConfigError) -> Vec<SettingProblem> {
    e.problems
        .iter()
        .map(|p| SettingProblem {
            key: p.key.clone(),
            message: p.to_string(),
        })
        .collect()
}

/// Problems of a change not yet written: a place in the candidate text means
/// nothing to the owner, the key does.
fn change_problems(e: &super::ConfigError, owner_file: &Path) -> Vec<SettingProblem> {
    e.problems
        .iter()
        .map(|p| SettingProblem {
            key: p.key.clone(),
            message: match &p.key {
                Some(key) if p.file == owner_file => {
                    let field = key.rsplit('.').next().unwrap_or(key);
                    let message = p
                        .message
                        .strip_prefix(&format!("{field}: "))
                        .unwrap_or(&p.message);
                    format!("{key}: {message}")
                }
                _ => p.to_string(),
            },
        })
        .collect()
}

/// Every running value with the file that set it ("default" when none did).
pub fn values(config: &super::Config, origins: &BTreeMap<String, PathBuf>) -> Vec<SettingValue> {
    toml::Value::try_from(config)
        .map(|v| flatten(&v))
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| SettingValue {
            origin: origins
                .get(&key)
                .map_or_else(|| "default".to_string(), |p| p.display().to_string()),
            key,
            value: value.to_string(),
        })
        .collect()
}

/// Largest CA file the owner may store.
pub const MAX_CA_BYTES: usize = 64 * 1024;

/// Checks `pem` (one or more X.509 CA certificates) and stores it for `key`
/// (a `...ca_file` key) under `dir`, named by key and content so a refused
/// change can remove it without touching the file the running settings use.
pub fn store_ca(dir: &Path, key: &str, pem: &str) -> Result<PathBuf, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let parts = parse_key(key)?;
    if parts.last().map(String::as_str) != Some("ca_file") {
        return Err(format!("{key} is not a ca_file setting"));
    }
    if pem.len() > MAX_CA_BYTES {
        return Err(format!("the CA file is larger than {MAX_CA_BYTES} bytes"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the CA file is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in the CA file is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA file holds no certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let path = dir.join(format!("{}-{}.pem", parts.join("-"), version(pem)));
    write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// A key or value as shown in an error: short, one line.
fn shown(text: &str) -> String {
    let one_line: String = text.chars().take(60).filter(|c| !c.is_control()).collect();
    format!("{one_line:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bare_dotted_parts() {
        assert_eq!(
            parse_key("limits.max_cost_usd").unwrap(),
            ["limits", "max_cost_usd"]
        );
        for bad in [
            "",
            ".",
            "a..b",
            "a.",
            "a b",
            "a.\"b\"",
            "a.b\n",
            "ä",
            "a.b.c.d.e.f.g.h.i",
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
        assert!(parse_key(&"a".repeat(300)).is_err());
    }

    #[test]
    fn values_are_toml_or_a_bare_string() {
        assert_eq!(parse_value("5").unwrap(), toml::Value::Integer(5));
        assert_eq!(parse_value("2.5").unwrap(), toml::Value::Float(2.5));
        assert_eq!(parse_value("true").unwrap(), toml::Value::Boolean(true));
        assert_eq!(
            parse_value("anthropic").unwrap(),
            toml::Value::String("anthropic".into())
        );
        assert_eq!(
            parse_value("\"with space\"").unwrap(),
            toml::Value::String("with space".into())
        );
        assert_eq!(
            parse_value("[\"1\", \"2\"]").unwrap(),
            toml::Value::Array(vec!["1".into(), "2".into()])
        );
        for bad in ["[1, ", "\"open", "{ a = }", "a\nb = 1"] {
            assert!(parse_value(bad).is_err(), "{bad:?}");
        }
        // Text that would inject a second key stays one string or is refused.
        match parse_value("1\nprofile = \"development\"") {
            Ok(v) => panic!("{v:?}"),
            Err(e) => assert!(e.contains("one line"), "{e}"),
        }
    }

    #[test]
    fn edits_set_and_unset_and_keep_comments() {
        let text = "# the owner's\n[limits]\nmax_iterations = 10 # fewer\n";
        let out = edit(
            text,
            &[
                Change::parse("limits.max_cost_usd", Some("2.5")).unwrap(),
                Change::parse("channels.telegram.allowlist", Some("[\"111\"]")).unwrap(),
                Change::parse("agent.provider", Some("anthropic")).unwrap(),
            ],
        )
        .unwrap();
        assert!(out.starts_with("# the owner's\n"), "{out}");
        assert!(out.contains("max_iterations = 10 # fewer"), "{out}");
        let t: toml::Table = out.parse().unwrap();
        assert_eq!(t["limits"]["max_cost_usd"].as_float(), Some(2.5));
        assert_eq!(
            t["channels"]["telegram"]["allowlist"][0].as_str(),
            Some("111")
        );
        assert_eq!(t["agent"]["provider"].as_str(), Some("anthropic"));

        let out = edit(
            &out,
            &[
                Change::parse("channels.telegram.allowlist", None).unwrap(),
                Change::parse("limits.nothing_here", None).unwrap(),
                Change::parse("nowhere.at.all", None).unwrap(),
            ],
        )
        .unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert!(!t.contains_key("channels"), "{out}");
        assert_eq!(t["limits"]["max_iterations"].as_integer(), Some(10));
        // A value where a table is needed is a clear error.
        let e = edit(
            "limits = 3\n",
            &[Change::parse("limits.x", Some("1")).unwrap()],
        );
        assert!(e.unwrap_err().contains("not a table"));
        let e = edit("[a\n", &[]).unwrap_err();
        assert!(e.contains("does not parse"), "{e}");
    }

    #[test]
    fn resetting_every_key_of_an_inline_table_removes_it() {
        // As the page's "other key" writes a price, then resets both its keys.
        let text = "[agent]\nprovider = \"openai-compatible\"\n\
                    prices.m = { input_usd_per_mtok = 0.0, output_usd_per_mtok = 0.0 }\n";
        let out = edit(
            text,
            &[
                Change::parse("agent.provider", None).unwrap(),
                Change::parse("agent.prices.m.input_usd_per_mtok", None).unwrap(),
                Change::parse("agent.prices.m.output_usd_per_mtok", None).unwrap(),
            ],
        )
        .unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert!(
            !t.contains_key("agent"),
            "nothing of the agent is left: {out:?}"
        );
    }

    #[test]
    fn ca_files_are_certificates_for_ca_file_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let pem = cert.cert.pem();
        // Under coworkd.service's UMask=0077 the CA directory and file must
        // still be readable by the components' users (the image test found it).
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let stored = store_ca(&dir.path().join("ca"), "agent.ca_file", &pem);
        nix::sys::stat::umask(old);
        let path = stored.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("ca")), 0o755);
        assert_eq!(mode(&path), 0o644);
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("agent-ca_file-")
        );
        for (key, text, says) in [
            ("agent.model", pem.as_str(), "not a ca_file"),
            ("agent.ca_file", "hello", "no certificate"),
            (
                "agent.ca_file",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not usable",
            ),
            ("../x.ca_file", pem.as_str(), "letters"),
        ] {
            let e = store_ca(dir.path(), key, text).unwrap_err();
            assert!(e.contains(says), "{key}: {e}");
        }
        let big = "x".repeat(MAX_CA_BYTES + 1);
        assert!(
            store_ca(dir.path(), "agent.ca_file", &big)
                .unwrap_err()
                .contains("larger")
        );
    }

    #[test]
    fn versions_differ_by_content() {
        assert_eq!(version(""), version(""));
        assert_ne!(version(""), version("[limits]\n"));
        assert_eq!(version("x").len(), 16);
    }

    #[test]
    fn writes_replace_and_keep_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings").join(OWNER_FILE);
        assert_eq!(read(&path).unwrap(), "");
        write(&path, "a = 1\n").unwrap();
        write(&path, "a = 2\n").unwrap();
        assert_eq!(read(&path).unwrap(), "a = 2\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "readable by every component's user");
        assert_eq!(
            std::fs::read_to_string(path.with_file_name("owner.toml.prev")).unwrap(),
            "a = 1\n"
        );
        std::fs::write(&path, vec![b'#'; MAX_OWNER_BYTES + 1]).unwrap();
        assert!(read(&path).is_err());
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read(&path).is_err());
    }
}
