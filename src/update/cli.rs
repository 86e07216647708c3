//! The offline update commands: `coworkd update verify` (on the box or a build
//! machine) and `coworkctl update pack` (release builds). Neither needs the
//! daemon.

use std::path::{Path, PathBuf};

use super::{DeviceIdentity, PackOptions, TrustStore, UpdateSettings, pack, read_floor, verify};

/// `coworkd update verify`: exit 0 valid, 1 refused (the reason on stderr).
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Trusted public keys (`*.pub`).
    #[arg(long, default_value = "/usr/lib/cowork/update-keys")]
    pub keys: PathBuf,
    /// Update state (revoked keys, version floor); missing means none.
    #[arg(long, default_value = "/var/lib/cowork/update")]
    pub state: PathBuf,
    /// The running version (default: /usr/lib/cowork/image-version, else 0).
    #[arg(long)]
    pub current_version: Option<u64>,
    pub bundle: PathBuf,
}

/// `coworkctl update pack`.
#[derive(Debug, Clone, clap::Args)]
pub struct PackArgs {
    /// The root file system image for a slot.
    #[arg(long)]
    pub payload: PathBuf,
    /// The slot's kernel and initrd (copied to the ESP when applied).
    #[arg(long)]
    pub kernel: PathBuf,
    #[arg(long)]
    pub initrd: PathBuf,
    /// The image version (monotonic).
    #[arg(long)]
    pub version: u64,
    /// Human-readable version label (e.g. 2026.11.1).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Ed25519 PKCS#8 private key (as `openssl genpkey -algorithm ed25519` writes it).
    #[arg(long)]
    pub key: PathBuf,
    /// Key ids (hex) this update revokes.
    #[arg(long)]
    pub revoke: Vec<String>,
    #[arg(long)]
    pub out: PathBuf,
}

/// `coworkctl update publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The directory a static web server serves: `feed.json` and the bundles.
    #[arg(long)]
    pub out: PathBuf,
    /// Ed25519 PKCS#8 private key of a key the appliances trust (the update
    /// key, or a feed key shipped beside it).
    #[arg(long)]
    pub key: PathBuf,
    /// Days until the feed expires (1 to 366): publish again before then, or
    /// the appliances refuse it as stale.
    #[arg(long, default_value_t = 14)]
    pub expires_days: u64,
    /// The bundles to offer (`update pack` output).
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
}

/// `coworkctl update publish`: exit 0 written, 1 refused (the reason on stderr).
pub fn publish_cli(args: &PublishArgs) -> i32 {
    let key = match super::load_signing_key(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("coworkctl update publish: {e}");
            return 1;
        }
    };
    let now = super::state::now_unix();
    match super::feed::publish(&args.out, &key, &args.bundles, args.expires_days, now) {
        Ok(p) => {
            println!(
                "{}: feed version {}, {} bundle(s) (newest version {}), expires {}",
                p.feed_path.display(),
                p.feed.feed_version,
                p.feed.bundles.len(),
                p.feed.bundles.iter().map(|b| b.version).max().unwrap_or(0),
                super::feed::rfc3339(p.feed.expires_at)
            );
            0
        }
        Err(e) => {
            eprintln!("coworkctl update publish: {e}");
            1
        }
    }
}

pub fn verify_cli(args: &VerifyArgs) -> i32 {
    let settings = UpdateSettings::default();
    let state = if args.state.is_dir() {
        args.state.clone()
    } else {
        // No state yet: no revocations, no floor.
        std::env::temp_dir()
    };
    let current = args
        .current_version
        .unwrap_or_else(|| super::read_image_version(&settings.image_version_file).unwrap_or(0));
    let result = TrustStore::load(&args.keys, &state).and_then(|trust| {
        let floor = if args.state.is_dir() {
            read_floor(&args.state)?
        } else {
            0
        };
        verify(
            &args.bundle,
            &trust,
            &DeviceIdentity {
                product: settings.product.clone(),
                hardware: settings.hardware.clone(),
            },
            current,
            floor,
        )
    });
    match result {
        Ok(vm) => {
            println!(
                "{}: valid: version {} ({}), signed by key {}",
                args.bundle.display(),
                vm.version(),
                vm.manifest.version_label,
                vm.key_id
            );
            0
        }
        Err(e) => {
            eprintln!("{}: refused ({}): {e}", args.bundle.display(), e.reason());
            1
        }
    }
}

pub fn pack_cli(args: &PackArgs) -> i32 {
    let mut opts = PackOptions::new(args.kernel.clone(), args.initrd.clone());
    opts.version_label = args.label.clone();
    opts.revoked_keys = args.revoke.clone();
    match pack(&args.payload, args.version, &args.key, &args.out, &opts) {
        Ok(p) => {
            println!(
                "{}: version {}, {} bytes, signed by key {}",
                args.out.display(),
                p.manifest.version,
                p.bundle_len,
                p.key_id
            );
            0
        }
        Err(e) => {
            eprintln!("coworkctl update pack: {e}");
            1
        }
    }
}

/// An absolute path for the supervisor (which runs in `/`).
pub fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}
