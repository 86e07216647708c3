//! A fresh machine's first `make run` (issue 18.4): with a build dependency
//! missing and no root, make stops before compiling and prints the command
//! that installs it.

use std::process::Command;

#[test]
fn make_build_without_its_packages_names_the_command_to_run() {
    let mut make = if nix::unistd::geteuid().is_root() {
        // As the owner would be: not root (root would install them).
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "make"]);
        c
    } else {
        Command::new("make")
    };
    let out = make
        .args([
            "-s",
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "build",
            "BUILD_PACKAGES=pkg-config cowork-no-such-package",
            // Reaching the compiler would be the bug: say so plainly.
            "CARGO=echo COMPILER-REACHED",
        ])
        .env("HOME", "/tmp")
        .output()
        .expect("run make");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "make build succeeded:\n{text}");
    assert!(
        !text.contains("COMPILER-REACHED"),
        "compiled anyway:\n{text}"
    );
    assert!(
        text.contains("    sudo apt-get install -y cowork-no-such-package\n"),
        "names the exact command:\n{text}"
    );
}
