#!/bin/bash
# image/build.sh: builds the CoWork OS appliance disk image (see image/README.md).
#
#   1. base:     mmdebstrap (minbase + image/packages) from Debian's archive as
#                configured in this machine's apt sources -> $OUT/base.tar.
#                Cached: rebuilt only when image/packages or this stage changes.
#   2. root:     the base plus our binaries, units, udev rule, sysusers, config and
#                image/rootfs/; users created, root locked, units enabled, the
#                initramfs regenerated with our hook. /var is split off.
#   3. fs:       root.ext4 (slot A), data.ext4 (/var), esp.vfat (systemd-boot,
#                kernel + initrd of slot A, entry cowork-a+3.conf), made as
#                files: no loop devices, no mounts.
#   4. disk:     systemd-repart lays out the GPT (image/repart.d) and copies
#                the file systems in -> $OUT/cowork.raw (cowork.qcow2 if QCOW2=1).
#
# Environment: COWORK_BIN_DIR (release binaries; default $CARGO_TARGET_DIR or
# ./target, /release), IMAGE_OUT (default build/image), QCOW2=1,
# IMAGE_APT_SOURCES (apt sources for bookworm; default: this machine's),
# SOURCE_DATE_EPOCH (default: the last commit's time).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
img=$top/image
out=${IMAGE_OUT:-$top/build/image}
bin=${COWORK_BIN_DIR:-${CARGO_TARGET_DIR:-$top/target}/release}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}
# Fixed identifiers so the same inputs give the same partition table and file
# system UUIDs (systemd-repart derives every UUID from the seed).
REPART_SEED=9c3f2a51-6d0e-4b8a-9f57-2f1c0a7e4d11
ROOT_A_FS_UUID=3d1a8b0e-5f6c-4e2a-9b7d-1c0e2f3a4b5c
DATA_FS_UUID=7e4b2c19-0a8d-4f3e-b6c5-d2e1f0a9b8c7
ESP_VOLID=C0C0FEED
ROOT_SIZE_MB=1024   # each root slot (partition and file system)
DATA_SIZE_MB=512    # the data partition as built (grow it on the target later)
ESP_SIZE_MB=256
TRIES=3             # boot counting: tries before slot A is marked bad
CMDLINE="ro console=tty1 console=ttyS0,115200 systemd.gpt_auto=0 systemd.show_status=auto loglevel=4 panic=10"

say() { printf 'image: %s\n' "$*"; }
die() { printf 'image: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap and chroot)"
for b in coworkd coworkctl coworkd-tpm coworkd-sandbox-init; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing (cargo build --release first)"
done
# A build for the update test (tests/image/update.sh) never goes into an image.
"$bin/coworkd" --version | grep -q 'test build' \
    && die "$bin/coworkd is a test build ($("$bin/coworkd" --version)); run cargo build --release --bins"
for t in mmdebstrap systemd-repart mkfs.ext4 mkfs.vfat mcopy sfdisk; do
    command -v "$t" >/dev/null || die "$t is missing (install image/APT-PACKAGES)"
done
mkdir -p "$out"
[ -e "$top/build/.gitignore" ] || echo '*' > "$top/build/.gitignore"

# --- 1. base ---------------------------------------------------------------
sources=${IMAGE_APT_SOURCES:-}
if [ -z "$sources" ]; then
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [ -s "$f" ] && grep -q bookworm "$f"; then sources=$f; break; fi
    done
fi
[ -n "$sources" ] || die "no apt sources for bookworm found; set IMAGE_APT_SOURCES"
packages=$(grep -v '^#' "$img/packages" | grep -v '^$' | paste -sd, -)
mmdebstrap_args=(
    --variant=minbase --include="$packages"
    --aptopt='Acquire::Languages "none"'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
)
# The kernel comes from bookworm-backports (Debian's archive): Landlock ABI 6
# (6.12) is what the sandbox requires for full isolation; bookworm's 6.1 has ABI 2.
backports=${IMAGE_BACKPORTS:-"deb http://deb.debian.org/debian bookworm-backports main"}
base_key=$( { echo "${mmdebstrap_args[*]}"; cat "$sources"; echo "$backports"; } | sha256sum | cut -d' ' -f1)
if [ -s "$out/base.tar" ] && [ "$(cat "$out/base.key" 2>/dev/null)" = "$base_key" ]; then
    say "base: cached ($out/base.tar)"
else
    say "base: mmdebstrap bookworm (log: $out/mmdebstrap.log)"
    rm -f "$out/base.tar" "$out/base.key"
    mmdebstrap "${mmdebstrap_args[@]}" bookworm "$out/base.tmp.tar" "$sources" "$backports" >"$out/mmdebstrap.log" 2>&1 \
        || { tail -20 "$out/mmdebstrap.log"; die "mmdebstrap failed"; }
    mv "$out/base.tmp.tar" "$out/base.tar"
    echo "$base_key" > "$out/base.key"
fi

# --- 2. root ---------------------------------------------------------------
root=$out/root
say "root: customizing $root"
rm -rf "$root" "$out/var"
mkdir -p "$root"
tar -xf "$out/base.tar" -C "$root"

install -m 0755 "$bin/coworkd" "$bin/coworkctl" "$bin/coworkd-tpm" "$bin/coworkd-sandbox-init" "$root/usr/bin/"
install -m 0644 "$top"/systemd/*.service "$top"/systemd/*.socket "$top"/systemd/*.timer "$root/usr/lib/systemd/system/"
install -D -m 0644 "$top/systemd/sysusers.d/cowork.conf" "$root/usr/lib/sysusers.d/cowork.conf"
install -D -m 0644 "$top/systemd/tmpfiles.d/cowork.conf" "$root/usr/lib/tmpfiles.d/cowork.conf"
install -D -m 0644 "$top"/udev/*.rules -t "$root/usr/lib/udev/rules.d/"
install -D -m 0644 "$top/config/coworkd.toml" "$root/etc/cowork/coworkd.toml"
install -d -m 0755 "$root/etc/cowork/coworkd.toml.d"
install -D -m 0644 "$top/README.md" "$root/usr/share/doc/cowork/README.md"
install -D -m 0644 "$top/docs/update-format.md" "$root/usr/share/doc/cowork/update-format.md"
# The image's version (monotonic, one decimal number: updates must go above
# it) and the keys its updates must be signed with.
version=${COWORK_IMAGE_VERSION:-$(cat "$img/VERSION")}
case $version in ''|*[!0-9]*) die "image version must be a decimal number, not '$version'" ;; esac
install -d -m 0755 "$root/usr/lib/cowork/update-keys"
echo "$version" > "$root/usr/lib/cowork/image-version"
for k in "$img"/update-keys/*.pub; do
    if [ -e "$k" ]; then install -m 0644 "$k" "$root/usr/lib/cowork/update-keys/"; fi
done
cp -a --no-preserve=ownership "$img/rootfs/." "$root/"
# /efi: the ESP's mount point; / is read-only on the target, so it exists here.
install -d -m 0700 "$root/efi"
# The machine ID comes from the data partition (initramfs hook); the root slot
# ships an empty file to bind it over.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"

# Users and groups of the appliance, created now: /etc is read-only on the target.
systemd-sysusers --root="$root" >/dev/null
# No password login for anyone: root is locked (and there is no other login user).
sed -i 's/^root:[^:]*:/root:!*:/' "$root/etc/shadow"

chroot_run() { # runs a command in the root with /proc, /sys and /dev, in a private mount namespace
    unshare --mount --propagation private -- /bin/sh -ec '
        r=$1; shift
        mount -t proc proc "$r/proc"; mount --rbind /sys "$r/sys"; mount --rbind /dev "$r/dev"
        chroot "$r" "$@"' sh "$root" "$@"
}
systemctl --root="$root" enable coworkd.service cowork-boot-ok.service cowork-console.service cowork-update.socket \
    cowork-trial-deadline.timer cowork-update-check.timer \
    nftables.service systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    >"$out/enable.log" 2>&1 || die "systemctl --root enable: $(cat "$out/enable.log")"
# Every unit we ship, checked against the image's own files (binaries, scripts).
for u in $(cd "$top/systemd" && ls -- *.service *.socket *.timer); do
    problems=$(systemd-analyze verify --root="$root" "/usr/lib/systemd/system/$u" 2>&1) \
        && [ -z "$problems" ] || die "systemd-analyze verify $u: $problems"
done
say "root: systemd-analyze verify clean for our units"
# Nothing installs or upgrades packages on a read-only root: images replace it.
systemctl --root="$root" mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    e2scrub_reap.service >/dev/null 2>&1
# DNS through systemd-resolved's stub (the /run file is made by resolved).
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
say "root: regenerating the initramfs (with the data partition hook)"
chroot_run update-initramfs -u -k all >"$out/initramfs.log" 2>&1 \
    || { tail -20 "$out/initramfs.log"; die "update-initramfs failed"; }
# Package caches and lists are of no use on the appliance.
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
    "$root"/var/cache/debconf/*-old "$root"/etc/*- "$root"/initrd.img.old "$root"/vmlinuz.old

# /var goes to the data partition; the root slot keeps an empty mount point.
mv "$root/var" "$out/var"
install -d -m 0755 "$root/var"

# --- 3. file systems ---------------------------------------------------------
kver=$(ls "$root/usr/lib/modules" | sort -V | tail -1)
say "fs: root-a.ext4 (kernel $kver), data.ext4, esp.vfat"
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
rm -f "$out/root-a.ext4" "$out/data.ext4" "$out/esp.vfat"
mkfs.ext4 -q -F -L root-a -U "$ROOT_A_FS_UUID" -E "hash_seed=$ROOT_A_FS_UUID,root_owner=0:0" \
    -d "$root" "$out/root-a.ext4" "${ROOT_SIZE_MB}M"
mkfs.ext4 -q -F -L data -U "$DATA_FS_UUID" -E "hash_seed=$DATA_FS_UUID,root_owner=0:0" \
    -d "$out/var" "$out/data.ext4" "${DATA_SIZE_MB}M"

esp=$out/esp
rm -rf "$esp"
mkdir -p "$esp/EFI/BOOT" "$esp/EFI/systemd" "$esp/loader/entries" "$esp/cowork-a"
sdboot=$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi
cp "$sdboot" "$esp/EFI/BOOT/BOOTX64.EFI"
cp "$sdboot" "$esp/EFI/systemd/systemd-bootx64.efi"
cp "$root/boot/vmlinuz-$kver" "$esp/cowork-a/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$esp/cowork-a/initrd.img"
cat > "$esp/loader/loader.conf" <<EOF
# CoWork OS appliance. No menu wait; no editing the kernel command line at the
# boot menu (it would allow init=/bin/sh); the newest good slot boots.
timeout 0
editor no
auto-entries no
auto-firmware no
default cowork-*
EOF
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/Cargo.toml" | head -1)
cat > "$esp/loader/entries/cowork-a+$TRIES.conf" <<EOF
title      CoWork OS (slot A)
version    $version
linux      /cowork-a/vmlinuz
initrd     /cowork-a/initrd.img
options    root=PARTLABEL=root-a $CMDLINE
EOF
mkfs.vfat -C -n ESP -i "$ESP_VOLID" --invariant "$out/esp.vfat" $((ESP_SIZE_MB * 1024)) >/dev/null
find "$esp" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$esp" && MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$out/esp.vfat" EFI loader cowork-a ::/)

# --- 4. disk ---------------------------------------------------------------
raw=$out/cowork.raw
say "disk: systemd-repart -> $raw"
rm -f "$raw" "$out/cowork.qcow2"
parts=$out/parts
rm -rf "$parts"; mkdir -p "$parts"
ln "$out/esp.vfat" "$parts/esp.vfat"; ln "$out/root-a.ext4" "$parts/root-a.ext4"; ln "$out/data.ext4" "$parts/data.ext4"
defs=$out/repart.d
rm -rf "$defs"; mkdir -p "$defs"
for f in "$img"/repart.d/*.conf; do
    sed -e "s|@PARTS@|$parts|g" -e "s|@ROOT_SIZE@|${ROOT_SIZE_MB}M|g" \
        -e "s|@DATA_SIZE@|${DATA_SIZE_MB}M|g" -e "s|@ESP_SIZE@|${ESP_SIZE_MB}M|g" "$f" > "$defs/$(basename "$f")"
done
systemd-repart --empty=create --size=auto --dry-run=no --pretty=no --seed="$REPART_SEED" \
    --definitions="$defs" "$raw" >"$out/repart.log" 2>&1 \
    || { cat "$out/repart.log"; die "systemd-repart failed"; }
rm -rf "$parts" "$esp"
if [ "${QCOW2:-0}" = 1 ]; then
    say "disk: qemu-img convert -> $out/cowork.qcow2"
    qemu-img convert -f raw -O qcow2 "$raw" "$out/cowork.qcow2"
fi
sfdisk -l "$raw" | sed 's/^/image: /'
say "done: $raw ($(du -h --apparent-size "$raw" | cut -f1) apparent, $(du -h "$raw" | cut -f1) used)"
