#!/bin/bash
# make test-image: checks the appliance disk image built by `make image`.
#   offline: the A/B GPT layout (sfdisk -J), root locked and no sshd in slot A,
#            the ESP's boot entry on trial (cowork-a+3.conf);
#   booted:  a copy of the image under QEMU (OVMF, swtpm as TPM 2.0, user-mode
#            network with the admin port forwarded to 127.0.0.1): the console
#            report (cowork-console.service) on the serial console says slot A,
#            root read-only, the boot assessed good, /dev/tpmrm0 with the udev
#            rule's mode, `coworkctl status --json` answering; boot-complete.target
#            reached; then an ACPI power-off ends in a clean shutdown;
#   after:   the entry renamed cowork-a.conf (blessed), the journal persisted on
#            the data partition under the machine ID made at first boot;
#   page:    the owner sets it up from the admin page alone: credentials, agent,
#            a Telegram channel on a fake platform, pairing, a command approved
#            on the page; a second boot keeps it all (tests/image/page.sh;
#            SKIP_PAGE_TEST=1 skips it);
#   updates: signed A/B updates across a real state.db migration, a fallback
#            onto the migrated data and a refused downgrade, on a fresh copy
#            (tests/image/update.sh; SKIP_UPDATE_TEST=1 skips them).
# KEEP=1 keeps the work directory; COWORK_IMAGE picks the image.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
image=${COWORK_IMAGE:-$top/build/image/cowork.raw}
[ -s "$image" ] || { echo "test-image: $image is missing (make image)"; exit 1; }
for t in qemu-system-x86_64 swtpm sfdisk jq mdir debugfs python3; do
    command -v "$t" >/dev/null || { echo "test-image: $t missing (install image/APT-PACKAGES)"; exit 1; }
done
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -r "$ovmf_code" ] || { echo "test-image: $ovmf_code missing (apt-get install ovmf)"; exit 1; }

work=$(mktemp -d /tmp/cowork-image-test.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] && echo "test-image: kept $work" || rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
ok() { echo "  ok: $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL: $*"; failed=$((failed + 1)); }
check() { # DESCRIPTION COMMAND...
    local d=$1; shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}

# --- offline: layout -----------------------------------------------------------
echo "test-image: layout of $image"
sfdisk -J "$image" > "$work/table.json"
names=$(jq -r '[.partitiontable.partitions[].name] | join(" ")' "$work/table.json")
check "partitions are esp root-a root-b data (got: $names)" [ "$names" = "esp root-a root-b data" ]
types=$(jq -r '[.partitiontable.partitions[].type] | join(" ")' "$work/table.json")
check "partition types ESP, root-x86-64 twice, var" [ "${types^^}" = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 4D21B016-B534-45C2-A9FB-5C16E091FD2D" ]
sizes=$(jq -r '[.partitiontable.partitions[1:3][].size] | join(" ")' "$work/table.json")
check "root slots A and B are the same size" [ "${sizes% *}" = "${sizes#* }" ]
part_offset() { jq -r --arg n "$1" '.partitiontable.partitions[] | select(.name == $n) | .start * 512' "$work/table.json"; }
part_extract() { # NAME FILE: copy one partition out of DISK ($3, default: the image)
    local n=$1 f=$2 disk=${3:-$image}
    local start size
    start=$(jq -r --arg n "$n" '.partitiontable.partitions[] | select(.name == $n) | .start' "$work/table.json")
    size=$(jq -r --arg n "$n" '.partitiontable.partitions[] | select(.name == $n) | .size' "$work/table.json")
    dd if="$disk" of="$f" bs=512 skip="$start" count="$size" conv=sparse status=none
}
part_extract root-a "$work/root-a.ext4"
shadow_root=$(debugfs -R 'cat /etc/shadow' "$work/root-a.ext4" 2>/dev/null | grep '^root:' | cut -d: -f2)
check "root is locked (shadow field '$shadow_root')" [ "${shadow_root:0:1}" = '!' ]
check "no sshd in the image" sh -c "! debugfs -R 'stat /usr/sbin/sshd' '$work/root-a.ext4' 2>&1 | grep -q Inode"
check "nftables.service enabled" sh -c "debugfs -R 'ls /etc/systemd/system/sysinit.target.wants' '$work/root-a.ext4' 2>/dev/null | grep -q nftables.service"
check "cowork-boot-ok.service required by boot-complete.target" sh -c "debugfs -R 'ls /etc/systemd/system/boot-complete.target.requires' '$work/root-a.ext4' 2>/dev/null | grep -q cowork-boot-ok.service"
rm -f "$work/root-a.ext4"
esp_at="$image@@$(part_offset esp)"
check "ESP holds the entry cowork-a+3.conf (on trial)" sh -c "MTOOLS_SKIP_CHECK=1 mdir -b -i '$esp_at' ::/loader/entries | grep -q 'cowork-a+3.conf'"

# --- booted ----------------------------------------------------------------------
disk=$work/disk.raw
cp --sparse=always "$image" "$disk"
cp "$ovmf_vars" "$work/vars.fd"
mkdir -p "$work/tpm"
swtpm socket --tpm2 --tpmstate dir="$work/tpm" --ctrl type=unixio,path="$work/swtpm.sock" \
    --log file="$work/swtpm.log" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/swtpm.sock" ] && break; sleep 0.1; done
# KVM only where hardware virtualization is really there (a /dev/kvm of a
# paravirtual host cannot run firmware); otherwise TCG.
accel=tcg,thread=multi cpu=max
if [ -w /dev/kvm ] && grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo; then accel=kvm cpu=host; fi
port=$((20000 + $$ % 20000))
echo "test-image: booting a copy under QEMU (accel ${accel%%,*}, admin port on 127.0.0.1:$port, serial log $work/serial.log)"
start=$(date +%s)
qemu-system-x86_64 -machine q35 -accel "$accel" -cpu "$cpu" -smp 2 -m 1024 \
    -nodefaults -display none -no-reboot \
    -drive if=pflash,format=raw,readonly=on,file="$ovmf_code" \
    -drive if=pflash,format=raw,file="$work/vars.fd" \
    -drive if=virtio,format=raw,file="$disk" \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8443 -device virtio-net-pci,netdev=n0 \
    -chardev socket,id=chrtpm,path="$work/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-tis,tpmdev=tpm0 \
    -serial file:"$work/serial.log" \
    -monitor unix:"$work/monitor.sock",server,nowait \
    >"$work/qemu.log" 2>&1 &
: >> "$work/serial.log"
qemu=$!
pids+=($qemu)

# The serial console: the report arrives as the unit's console output (kernel
# time and "console-report[PID]: " in front) and again in the getty's issue.
serial() { tr -d '\r' < "$work/serial.log" 2>/dev/null | sed 's/^.*console-report\[[0-9]*\]: //'; }
timeout=${BOOT_TIMEOUT:-900}
until serial | grep -q '^==== end of CoWork OS report ====$'; do
    if ! kill -0 "$qemu" 2>/dev/null; then
        cat "$work/qemu.log"; tail -n 60 "$work/serial.log"; echo "test-image: QEMU exited early"; exit 1
    fi
    if [ $(( $(date +%s) - start )) -gt "$timeout" ]; then
        tail -n 80 "$work/serial.log"; echo "test-image: no console report within ${timeout}s"; exit 1
    fi
    sleep 2
done
boot_secs=$(( $(date +%s) - start ))
echo "test-image: console report after ${boot_secs}s:"
# (sed quits after the first report; the writer's SIGPIPE is not a failure)
report=$(serial | sed -n '/^==== CoWork OS appliance/,/^==== end of CoWork OS report/{p;/^==== end/q}') || true
echo "$report" | sed 's/^/    /'
field() { echo "$report" | sed -n "s/^$1: *//p" | head -n 1; }
check "booted slot A, root read-only ($(field slot))" sh -c "echo '$(field slot)' | grep -q '^A on .*(read-only)$'"
check "boot assessed good ($(field boot))" sh -c "echo '$(field boot)' | grep -q 'assessment good'"
check "boot-complete.target reached ($(field boot-complete.target))" [ "$(field boot-complete.target)" = active ]
check "/dev/tpmrm0 is crw------- root:root ($(field TPM))" [ "$(field TPM)" = "/dev/tpmrm0 crw------- root:root" ]
check "hardware watchdog armed by systemd ($(field watchdog))" sh -c "echo '$(field watchdog)' | grep -q '^/dev/watchdog0 (.*), 30 s, active$'"
field cowork-status-json > "$work/status.json"
[ -s "$work/status.json" ] || echo null > "$work/status.json"
check "coworkctl status --json answers (ready: $(jq -r .ready "$work/status.json" 2>/dev/null))" \
    sh -c "jq -e '.ready == true' '$work/status.json' >/dev/null"
check "keystore tier is the TPM ($(jq -r .keystore "$work/status.json" 2>/dev/null))" \
    sh -c "jq -e '.keystore | startswith(\"tpm2\")' '$work/status.json' >/dev/null"
check "coworkctl status exit 0 (healthy)" [ "$(field cowork-status-rc)" = 0 ]
sandbox=$(jq -r '.components[] | select(.component=="sandbox") | .summary' "$work/status.json" 2>/dev/null)
check "sandbox: full isolation with a memory+pids+cpu cgroup ($sandbox)" \
    sh -c "echo '$sandbox' | grep -q '^full isolation: .*cgroup v2 memory+pids+cpu'"
check "cgroups delegated to cowork-sandbox.service ($(jq -r .cgroups "$work/status.json" 2>/dev/null))" \
    sh -c "jq -e '.cgroups | endswith(\"(cowork-sandbox.service)\")' '$work/status.json' >/dev/null"
# The admin page, from the host through the forwarded port: the certificate it
# serves is the one whose fingerprint the console shows, and it answers.
console_fp=$(field admin-fingerprint)
served_fp=$(openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/^.*=//')
check "admin certificate fingerprint on the console ($console_fp)" sh -c "echo '$console_fp' | grep -qE '^([0-9A-F]{2}:){31}[0-9A-F]{2}$'"
check "admin page over TLS serves that certificate ($served_fp)" [ "$served_fp" = "$console_fp" ]
check "one-time setup token on the console" sh -c "[ -n '$(field admin-setup-token)' ]"
code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/" || true)
check "admin page answers over TLS (HTTP $code)" sh -c "[ '$code' = 200 ] || [ '$code' = 303 ]"
# The owner sets it up from the page alone (tests/image/page.sh).
if [ -z "${SKIP_PAGE_TEST:-}" ]; then
    . "$top/tests/image/page.sh"
    page_setup
fi

monitor() { # SOCKET COMMAND: one command to a QEMU's human monitor
    python3 - "$1" "$2" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.5)
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.5)
s.close()
EOF
}
echo "test-image: powering off (ACPI)"
monitor "$work/monitor.sock" system_powerdown
for _ in $(seq 180); do kill -0 "$qemu" 2>/dev/null || break; sleep 1; done
if kill -0 "$qemu" 2>/dev/null; then bad "clean power-off within 180 s"; kill "$qemu"; else
    check "clean power-off (reboot: Power down)" sh -c "tr -d '\r' < '$work/serial.log' | grep -q 'reboot: Power down'"
fi
wait "$qemu" 2>/dev/null || true

# --- after ----------------------------------------------------------------------
esp_at="$disk@@$(part_offset esp)"
entries=$(MTOOLS_SKIP_CHECK=1 mdir -b -i "$esp_at" ::/loader/entries 2>/dev/null | sed 's|.*/||' | tr '\n' ' ')
check "entry blessed: cowork-a.conf, no counter left (entries: $entries)" [ "$entries" = "cowork-a.conf " ]
part_extract data "$work/data.ext4" "$disk"
mid=$(debugfs -R 'cat /lib/cowork-machine-id' "$work/data.ext4" 2>/dev/null | tr -d '\n')
check "machine ID made at first boot on the data partition ($mid)" sh -c "echo '$mid' | grep -qE '^[0-9a-f]{32}$'"
check "journal persisted on the data partition" sh -c "debugfs -R 'ls -l /log/journal/$mid' '$work/data.ext4' 2>/dev/null | grep -q 'system.journal'"
check "coworkd state directory on the data partition" sh -c "debugfs -R 'stat /lib/cowork' '$work/data.ext4' 2>/dev/null | grep -q Inode"

# The supervisor's warnings and errors from the persisted journal, for whoever
# reads a failed run.
if [ "$failed" != 0 ]; then
    debugfs -R "dump /log/journal/$mid/system.journal $work/system.journal" "$work/data.ext4" >/dev/null 2>&1
    echo "test-image: coworkd warnings and errors from the image's journal:"
    journalctl --file "$work/system.journal" -u coworkd.service -p warning -o cat --no-pager 2>/dev/null \
        | tail -n 30 | sed 's/^/    /'
fi
# A second boot: the owner's setup survived (tests/image/page.sh).
if [ "$failed" = 0 ] && [ -z "${SKIP_PAGE_TEST:-}" ]; then page_after_reboot; fi
# --- updates (tests/image/update.sh) ---------------------------------------------------
if [ "$failed" = 0 ] && [ -z "${SKIP_UPDATE_TEST:-}" ]; then
    . "$top/tests/image/update.sh"
fi
echo "test-image: boot to report ${boot_secs}s (${accel%%,*}); total $(( $(date +%s) - start ))s"
echo "test-image: $passed passed, $failed failed"
[ "$failed" = 0 ]
