//! Shared fixture of the update tests: file-backed slots (slot-a.img,
//! slot-b.img, esp/loader/entries, state/), a trusted key directory, and
//! bundles packed with the test keys in tests/data/update/.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cowork::update::{
    MemoryAudit, PackOptions, Slot, Slots, UpdateError, UpdateSettings, Updater, pack,
};

pub const SLOT_A_ENTRY: &str = "title      CoWork OS (slot A)\nversion    0.1.0\nlinux      /cowork-a/vmlinuz\ninitrd     /cowork-a/initrd.img\noptions    root=PARTLABEL=root-a ro\n";

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/update")
        .join(name)
}

/// File-backed slots for a running daemon under `slots`: slot A holds
/// `slot_a` and boots (its entry, `root=PARTLABEL=root-a` on the command
/// line), slot B holds "old", the running image is `version`, the test key is
/// trusted. Returns the `[update]` lines that point at them.
pub fn daemon_slots(slots: &Path, slot_a: &[u8], version: u64) -> String {
    for d in ["esp/loader/entries", "esp/cowork-a", "state", "keys"] {
        std::fs::create_dir_all(slots.join(d)).unwrap();
    }
    std::fs::write(slots.join("slot-a.img"), slot_a).unwrap();
    std::fs::write(slots.join("slot-b.img"), b"old").unwrap();
    std::fs::write(slots.join("esp/loader/entries/cowork-a.conf"), SLOT_A_ENTRY).unwrap();
    std::fs::write(slots.join("cmdline"), "root=PARTLABEL=root-a ro quiet\n").unwrap();
    std::fs::write(slots.join("image-version"), format!("{version}\n")).unwrap();
    std::fs::copy(data("test-signing-key.pub"), slots.join("keys/test.pub")).unwrap();
    let s = |p: &str| slots.join(p).display().to_string();
    format!(
        "keys_dir = \"{}\"\nstate_dir = \"{}\"\nesp = \"{}\"\nroot_a = \"{}\"\nroot_b = \"{}\"\ncmdline_path = \"{}\"\nimage_version_file = \"{}\"\n",
        s("keys"),
        s("state"),
        s("esp"),
        s("slot-a.img"),
        s("slot-b.img"),
        s("cmdline"),
        s("image-version"),
    )
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub settings: UpdateSettings,
}

/// Deterministic bytes (xorshift) so a payload is not all zeros.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl Fixture {
    /// Slot A is the built image (blessed entry `cowork-a.conf`), slot B holds
    /// old bytes and has no entry. Trusted: the test key and the second key.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("slot-a.img"), pattern(256 * 1024, 1)).unwrap();
        std::fs::write(root.join("slot-b.img"), b"old slot b").unwrap();
        let entries = root.join("esp/loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::create_dir_all(root.join("esp/cowork-a")).unwrap();
        std::fs::write(root.join("esp/cowork-a/vmlinuz"), b"kernel a").unwrap();
        std::fs::write(entries.join("cowork-a.conf"), SLOT_A_ENTRY).unwrap();
        std::fs::write(root.join("esp/loader/loader.conf"), "default cowork-*\n").unwrap();
        let keys = root.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::copy(data("test-signing-key.pub"), keys.join("test.pub")).unwrap();
        std::fs::copy(data("second-signing-key.hex.pub"), keys.join("second.pub")).unwrap();
        std::fs::create_dir_all(root.join("work")).unwrap();
        std::fs::create_dir_all(root.join("state")).unwrap();
        let settings = UpdateSettings {
            keys_dir: keys,
            ..UpdateSettings::default()
        };
        Fixture { dir, settings }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn slots(&self, running: Slot) -> Slots {
        Slots::file_backed(self.root(), running).unwrap()
    }

    pub fn updater<'a>(&self, running: Slot, current: u64, audit: &'a MemoryAudit) -> Updater<'a> {
        Updater::new(self.slots(running), &self.settings, current, audit)
    }

    pub fn entries(&self) -> PathBuf {
        self.root().join("esp/loader/entries")
    }

    /// File names in the entries directory, sorted.
    pub fn entry_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.entries())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Packs `payload` as `version` with `key` ("test-signing-key" etc.).
    pub fn bundle_with(
        &self,
        name: &str,
        payload: &[u8],
        version: u64,
        key: &str,
        tweak: impl FnOnce(&mut PackOptions),
    ) -> PathBuf {
        let work = self.root().join("work");
        let payload_path = work.join(format!("{name}.img"));
        std::fs::write(&payload_path, payload).unwrap();
        let vmlinuz = work.join(format!("{name}.vmlinuz"));
        let initrd = work.join(format!("{name}.initrd"));
        std::fs::write(&vmlinuz, format!("kernel of {name}")).unwrap();
        std::fs::write(&initrd, format!("initrd of {name}")).unwrap();
        let mut opts = PackOptions::new(vmlinuz, initrd);
        opts.chunk_size = Some(64 * 1024);
        tweak(&mut opts);
        let out = work.join(format!("{name}.cwupdate"));
        pack(
            &payload_path,
            version,
            &data(&format!("{key}.pem")),
            &out,
            &opts,
        )
        .unwrap();
        out
    }

    pub fn bundle(&self, name: &str, version: u64) -> PathBuf {
        self.bundle_with(
            name,
            &pattern(300 * 1024, version),
            version,
            "test-signing-key",
            |_| {},
        )
    }
}

/// Asserts that slot B has no entry at all (not bootable) and slot A's entry
/// is untouched.
pub fn assert_b_not_bootable(fx: &Fixture) {
    let files = fx.entry_files();
    assert!(
        !files.iter().any(|f| f.starts_with("cowork-b")),
        "slot B has an entry: {files:?}"
    );
    assert_eq!(
        std::fs::read_to_string(fx.entries().join("cowork-a.conf")).unwrap(),
        SLOT_A_ENTRY
    );
}

pub fn refused_reason(audit: &MemoryAudit) -> Option<String> {
    audit.events().iter().find_map(|e| match e {
        cowork::update::UpdateEvent::Refused { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

pub fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

pub fn expect_err<T: std::fmt::Debug>(r: Result<T, UpdateError>) -> UpdateError {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e,
    }
}
