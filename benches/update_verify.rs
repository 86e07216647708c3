//! Verify throughput of a bundle with a 1 GiB payload (4 MiB chunk hashes),
//! beside `sha256sum` of the same bundle file in the same run. Files live in
//! /var/tmp and are deleted at the end. Goal: verify >= 80% of sha256sum's rate.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cowork::update::{DeviceIdentity, PackOptions, TrustStore, UpdateSettings, pack, verify};

const PAYLOAD: u64 = 1 << 30;

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("cowork-update-bench-")
        .tempdir_in("/var/tmp")
        .expect("temp dir in /var/tmp");
    let result = run(dir.path());
    drop(dir); // deletes the 2 GiB of files
    if let Err(e) = result {
        eprintln!("update_verify bench failed: {e}");
        std::process::exit(1);
    }
}

fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/update");
    let payload = dir.join("root.img");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&payload)?);
        let mut block = vec![0u8; 1 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..(PAYLOAD >> 20) {
            for b in block.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block)?;
        }
        f.flush()?;
    }
    std::fs::write(dir.join("vmlinuz"), b"kernel")?;
    std::fs::write(dir.join("initrd"), b"initrd")?;
    let opts = PackOptions::new(dir.join("vmlinuz"), dir.join("initrd"));
    let bundle = dir.join("bench.cwupdate");
    let t = Instant::now();
    let packed = pack(
        &payload,
        2,
        &data.join("test-signing-key.pem"),
        &bundle,
        &opts,
    )?;
    println!(
        "pack: {} MiB bundle in {:.2?}",
        packed.bundle_len >> 20,
        t.elapsed()
    );
    std::fs::remove_file(&payload)?;

    let keys = dir.join("keys");
    std::fs::create_dir(&keys)?;
    std::fs::copy(data.join("test-signing-key.pub"), keys.join("test.pub"))?;
    let state = dir.join("state");
    std::fs::create_dir(&state)?;
    let trust = TrustStore::load(&keys, &state)?;
    let s = UpdateSettings::default();
    let device = DeviceIdentity {
        product: s.product,
        hardware: s.hardware,
    };

    let len = std::fs::metadata(&bundle)?.len() as f64;
    let rate = |d: Duration| len / d.as_secs_f64() / (1024.0 * 1024.0);
    let (mut best_sum, mut best_verify) = (Duration::MAX, Duration::MAX);
    for round in 0..3 {
        let t = Instant::now();
        let out = Command::new("sha256sum").arg(&bundle).output()?;
        let d_sum = t.elapsed();
        if !out.status.success() {
            return Err("sha256sum failed".into());
        }
        let t = Instant::now();
        let vm = verify(&bundle, &trust, &device, 1, 0)?;
        let d_verify = t.elapsed();
        assert_eq!(vm.version(), 2);
        println!(
            "round {round}: sha256sum {:.0} MiB/s, verify {:.0} MiB/s",
            rate(d_sum),
            rate(d_verify)
        );
        best_sum = best_sum.min(d_sum);
        best_verify = best_verify.min(d_verify);
    }
    let (r_sum, r_verify) = (rate(best_sum), rate(best_verify));
    println!(
        "update_verify: 1 GiB payload, best of 3: sha256sum {r_sum:.0} MiB/s ({best_sum:.2?}), \
         verify {r_verify:.0} MiB/s ({best_verify:.2?}) = {:.0}% of sha256sum (goal >= 80%)",
        100.0 * r_verify / r_sum
    );
    Ok(())
}
