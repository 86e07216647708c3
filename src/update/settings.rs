//! `[update]` settings (embedded by the lead in the TOML config).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the update module finds its keys, slots, ESP and state, and what this
/// appliance is. Defaults are the production appliance's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateSettings {
    /// Product id a bundle must name.
    pub product: String,
    /// This appliance's hardware id; a bundle must list it.
    pub hardware: String,
    /// Trusted public keys (`*.pub`), shipped in the read-only root.
    pub keys_dir: PathBuf,
    /// Floor, revocations, last attempt (on the data partition).
    pub state_dir: PathBuf,
    /// ESP mount point.
    pub esp: PathBuf,
    pub root_a: PathBuf,
    pub root_b: PathBuf,
    /// Read for `root=PARTLABEL=root-X`.
    pub cmdline_path: PathBuf,
    /// The running image's version (one decimal u64), shipped in the root.
    pub image_version_file: PathBuf,
    /// Kernel options of a new entry, after `root=PARTLABEL=root-X`.
    pub kernel_options: String,
    /// Boot tries a new entry gets (`cowork-b+3.conf`).
    pub boot_tries: u32,
    /// The update writer's socket (`cowork-update.socket`): the supervisor asks
    /// it to write slots and the ESP. Unset: the supervisor does it itself
    /// (development, tests on file-backed slots).
    pub writer_socket: Option<PathBuf>,
    /// Largest bundle `update apply URL` downloads.
    pub max_bundle_bytes: u64,
    /// PEM roots trusted for `update apply https://...` besides the system's
    /// (a LAN mirror with its own CA).
    pub ca_file: Option<PathBuf>,
    /// The signed update feed (`.../feed.json`, written by `coworkctl update
    /// publish`): checked at boot, daily, and by `coworkctl update check`.
    /// https, or http on loopback. Unset: updates are only brought by hand.
    pub feed_url: Option<String>,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings {
            product: "cowork-os-appliance".into(),
            hardware: "x86_64-uefi".into(),
            keys_dir: "/usr/lib/cowork/update-keys".into(),
            state_dir: "/var/lib/cowork/update".into(),
            esp: "/efi".into(),
            root_a: "/dev/disk/by-partlabel/root-a".into(),
            root_b: "/dev/disk/by-partlabel/root-b".into(),
            cmdline_path: "/proc/cmdline".into(),
            image_version_file: "/usr/lib/cowork/image-version".into(),
            kernel_options: "ro console=tty1 console=ttyS0,115200 systemd.gpt_auto=0 \
                             systemd.show_status=auto loglevel=4 panic=10"
                .into(),
            boot_tries: 3,
            writer_socket: None,
            max_bundle_bytes: 4 << 30,
            ca_file: None,
            feed_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries an update writes boot with the options the image was built
    /// with: the two are written in two places and must not drift.
    #[test]
    fn default_kernel_options_are_the_images() {
        let build = include_str!("../../image/build.sh");
        let line = build
            .lines()
            .find_map(|l| l.strip_prefix("CMDLINE=\""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("image/build.sh sets CMDLINE=\"...\"");
        assert_eq!(UpdateSettings::default().kernel_options, line);
        assert!(
            line.split(' ').any(|o| o == "panic=10"),
            "a panicked kernel restarts"
        );
    }

    #[test]
    fn unknown_fields_refused_and_defaults_fill_in() {
        let s: UpdateSettings = toml::from_str("hardware = \"x\"").unwrap();
        assert_eq!(s.hardware, "x");
        assert_eq!(s.boot_tries, 3);
        assert!(toml::from_str::<UpdateSettings>("surprise = 1").is_err());
    }
}
