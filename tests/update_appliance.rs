//! Signed updates through the running appliance, on file-backed slots named in
//! `[update]`: `coworkctl update pack` signs a bundle with the test key;
//! `coworkd update verify` checks it offline (exit 0 / 1 with the reason);
//! `coworkctl update apply` writes slot B and its `cowork-b+3.conf` entry
//! through the supervisor while slot A stays byte-for-byte the same;
//! `coworkctl update status` reports it; a tampered bundle, a downgrade and a
//! bundle owned by someone else are refused; every step is in the audit trail.

#![allow(clippy::unwrap_used)]

mod common;
mod update_common;

use std::process::Command;
use std::time::Duration;

use common::{COWORKCTL, COWORKD, DEV_CONFIG, Instance};
use update_common::{SLOT_A_ENTRY, data, pattern};

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn update_through_the_appliance() {
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    let slots = d.join("slots");
    std::fs::create_dir_all(slots.join("esp/loader/entries")).unwrap();
    std::fs::create_dir_all(slots.join("esp/cowork-a")).unwrap();
    std::fs::create_dir_all(slots.join("state")).unwrap();
    std::fs::create_dir_all(slots.join("keys")).unwrap();
    let slot_a = pattern(256 * 1024, 1);
    std::fs::write(slots.join("slot-a.img"), &slot_a).unwrap();
    std::fs::write(slots.join("slot-b.img"), b"old").unwrap();
    std::fs::write(slots.join("esp/loader/entries/cowork-a.conf"), SLOT_A_ENTRY).unwrap();
    std::fs::write(slots.join("cmdline"), "root=PARTLABEL=root-a ro quiet\n").unwrap();
    std::fs::write(slots.join("image-version"), "5\n").unwrap();
    std::fs::copy(data("test-signing-key.pub"), slots.join("keys/test.pub")).unwrap();
    let s = |p: &str| slots.join(p).display().to_string();
    let config = format!(
        "{DEV_CONFIG}[update]\nkeys_dir = \"{}\"\nstate_dir = \"{}\"\nesp = \"{}\"\nroot_a = \"{}\"\nroot_b = \"{}\"\ncmdline_path = \"{}\"\nimage_version_file = \"{}\"\n",
        s("keys"),
        s("state"),
        s("esp"),
        s("slot-a.img"),
        s("slot-b.img"),
        s("cmdline"),
        s("image-version"),
    );

    // Pack (offline) with the test key.
    let work = d.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("root.img"), pattern(300 * 1024, 6)).unwrap();
    std::fs::write(work.join("vmlinuz"), b"kernel 6").unwrap();
    std::fs::write(work.join("initrd"), b"initrd 6").unwrap();
    let pack = |version: &str, out: &str| {
        run(Command::new(COWORKCTL).args([
            "update",
            "pack",
            "--payload",
            &work.join("root.img").display().to_string(),
            "--kernel",
            &work.join("vmlinuz").display().to_string(),
            "--initrd",
            &work.join("initrd").display().to_string(),
            "--version",
            version,
            "--label",
            "test",
            "--key",
            &data("test-signing-key.pem").display().to_string(),
            "--out",
            &work.join(out).display().to_string(),
        ]))
    };
    let (rc, out, err) = pack("6", "v6.bundle");
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, _, _) = pack("4", "v4.bundle");
    assert_eq!(rc, 0);
    let bundle = work.join("v6.bundle");

    // Offline verification: valid; a flipped byte is refused with a reason.
    let verify = |b: &std::path::Path| {
        run(Command::new(COWORKD).args([
            "update",
            "verify",
            "--keys",
            &s("keys"),
            "--state",
            &s("state"),
            "--current-version",
            "5",
            &b.display().to_string(),
        ]))
    };
    let (rc, out, err) = verify(&bundle);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("valid: version 6"), "{out}");
    let tampered = work.join("tampered.bundle");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x40;
    std::fs::write(&tampered, bytes).unwrap();
    let (rc, _, err) = verify(&tampered);
    assert_eq!(rc, 1);
    assert!(err.contains("refused"), "{err}");

    // Through the daemon.
    std::fs::write(Instance::config_path(d), config).unwrap();
    let mut i = Instance::start_in(dir, &[], &[]);
    i.wait_notification("READY=1", Duration::from_secs(15));
    let status = |i: &Instance| -> serde_json::Value {
        let out = i.ctl(&["update", "status", "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let st = status(&i);
    assert_eq!(st["running"], "a", "{st}");
    assert_eq!(st["running_version"], 5, "{st}");

    for (b, why) in [(&tampered, "tampered"), (&work.join("v4.bundle"), "older")] {
        let out = i.ctl(&["update", "apply", &b.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{why}: {out:?}");
        assert!(
            !slots.join("esp/loader/entries/cowork-b+3.conf").exists(),
            "{why}: slot B made bootable"
        );
    }
    let out = i.ctl(&["update", "apply", &bundle.display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("slot") && text.contains("cowork-b+3.conf"),
        "{text}"
    );
    assert!(slots.join("esp/loader/entries/cowork-b+3.conf").exists());
    assert_eq!(std::fs::read(slots.join("slot-a.img")).unwrap(), slot_a);
    assert_eq!(
        std::fs::read_to_string(slots.join("esp/loader/entries/cowork-a.conf")).unwrap(),
        SLOT_A_ENTRY
    );
    let st = status(&i);
    assert_eq!(st["other"], "b", "{st}");
    assert!(
        st["other_entry"]
            .to_string()
            .to_lowercase()
            .contains("pending"),
        "{st}"
    );

    // A relative path is made absolute by coworkctl; a missing one is refused.
    let out = i.ctl(&["update", "apply", "/nonexistent/bundle"]);
    assert_eq!(out.status.code(), Some(1));

    let trail = String::from_utf8_lossy(&i.ctl(&["audit", "tail", "-n", "100", "--json"]).stdout)
        .into_owned();
    for kind in [
        "update.verify_started",
        "update.refused",
        "update.applying",
        "update.applied",
    ] {
        assert!(trail.contains(kind), "{kind} not in the trail");
    }
    i.stop();
}
