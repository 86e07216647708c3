//! Configuration: the TOML model with drop-ins and the owner's settings, and
//! the owner-settings editor (`coworkctl settings set`, the admin page). The
//! input is NUL-separated parts (TOML text never holds a NUL): the main file,
//! up to three drop-ins (the first byte says how many), the owner's file, then
//! key/value pairs of edits. Loaded as coworkd does (`load`, `load_layers`,
//! `check_owner`). Asserts: never a panic; an edit that succeeds gives a file
//! that parses and holds the edited key with the new value (or no longer holds
//! a removed one).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use cowork::config::{self, owner};
use libfuzzer_sys::fuzz_target;

struct Dir {
    _dir: tempfile::TempDir,
    main: PathBuf,
    dropins: PathBuf,
    owner: PathBuf,
}

fn dir() -> &'static Dir {
    static D: OnceLock<Dir> = OnceLock::new();
    D.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("coworkd.toml");
        let dropins = dir.path().join("coworkd.toml.d");
        std::fs::create_dir_all(&dropins).expect("drop-in dir");
        let owner = dir.path().join("owner-settings.toml");
        Dir {
            main,
            dropins,
            owner,
            _dir: dir,
        }
    })
}

/// The value at a dotted key of a parsed file.
fn lookup<'a>(table: &'a toml::Table, key: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = key.split_last()?;
    let mut t = table;
    for p in parents {
        t = t.get(p)?.as_table()?;
    }
    t.get(last)
}

fn check_edit(owner_text: &str, key: &str, value: &str) {
    let value = (!value.is_empty()).then_some(value).filter(|v| *v != "-");
    let Ok(change) = owner::Change::parse(key, value) else {
        return;
    };
    let Ok(out) = owner::edit(owner_text, std::slice::from_ref(&change)) else {
        return;
    };
    let table: toml::Table = out
        .parse()
        .unwrap_or_else(|e| panic!("an edit wrote a file that does not parse: {e}\n{out}"));
    let found = lookup(&table, &change.key);
    match &change.value {
        Some(v) if !format!("{v:?}").contains("nan") => {
            assert_eq!(
                found,
                Some(v),
                "{} not set by the edit:\n{out}",
                change.dotted()
            )
        }
        Some(_) => {}
        None => assert!(found.is_none(), "{} not removed:\n{out}", change.dotted()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0');
    let main = parts.next().unwrap_or("");
    let d = dir();
    let _ = config::load_str(&d.main, main);
    std::fs::write(&d.main, main).expect("write main");
    for e in std::fs::read_dir(&d.dropins).expect("drop-in dir") {
        std::fs::remove_file(e.expect("entry").path()).expect("remove drop-in");
    }
    for i in 0..(n % 4) {
        let part = parts.next().unwrap_or("");
        std::fs::write(d.dropins.join(format!("{i:02}.toml")), part).expect("write drop-in");
    }
    let owner_text = parts.next().unwrap_or("");
    std::fs::write(&d.owner, owner_text).expect("write owner");
    let _ = config::load(&d.main);
    let _ = config::load_layers(&d.main, &d.owner);
    let _ = config::check_owner(&d.main, &d.owner, owner_text);
    let _ = owner::parse_value(owner_text);
    while let (Some(key), Some(value)) = (parts.next(), parts.next()) {
        check_edit(owner_text, key, value);
    }
});
