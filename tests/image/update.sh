# Sourced by tests/image/run.sh after the first boot passed: signed A/B updates
# across a real schema migration, on a fresh copy of the image (its own
# firmware variables and TPM), so the owner's state is made by the old code.
#
#   test copy: the test signing key and a test driver unit are written into
#              the copy's slot A (debugfs): the built image has neither. Slot A
#              gets a coworkd built with the feature state-db-before-newest:
#              the image before the newest state.db step (one schema back);
#   bundles:   slot A's file system with the shipped coworkd (state.db's
#              newest schema: its newest step is a real migration) as image-version 2, whose
#              boot assessment fails on purpose (a drop-in: the appliance
#              comes up, so the gateway migrates, then the trial fails); the
#              same as version 3 without the drop-in (good); and a version-1
#              downgrade; each packed and signed with `coworkctl update pack`,
#              handed to the guest on a second disk (label CWTEST);
#   boots:     A v1 (schema N-1) makes state and applies v2 -> B v2 migrates
#              state.db N-1 -> N and fails its trial three times (cowork-trial-
#              failed reboots each time) -> systemd-boot falls back to A v1,
#              which opens the migrated file, still serves the paired user and
#              says why in `update status`, and applies v3 -> B v3 (blessed)
#              reads it all and refuses the downgrade -> power off.
#              Each boot is its own QEMU (a reboot ends it; see "boots" below).
#   feed:      the host publishes v3 with `coworkctl update publish` and
#              serves the directory over HTTPS (openssl s_server, the test CA)
#              at 10.0.2.2; slot A v1, back after the rollback, runs
#              `coworkctl update check` ([update] feed_url in a drop-in) and
#              finds version 3 installable. It then applies v3 from the test
#              disk: the image's /var (512 MiB as built) cannot hold the
#              600 MiB bundle a download needs (tests/update_feed.rs installs
#              from the feed on a dev daemon).
#   command:   before it applies v2, slot A v1 runs one command the whole way
#              under the shipped units: a local chat message -> the agent (a fake
#              OpenAI-compatible server on the host, tests/systemd/fake-llm.py,
#              over TLS with its own CA, reached from the guest at 10.0.2.2) ->
#              run_command -> the guard asks -> `coworkctl approvals approve` ->
#              the sandbox (its own unit, full isolation) -> the audit trail ->
#              the reply with the command's real output.
# Expects from run.sh: work, image, ovmf_code, ovmf_vars, accel, cpu, pids,
# check, ok, bad, part_extract, part_offset.

bin=${COWORK_BIN_DIR:-${CARGO_TARGET_DIR:-$top/target}/release}
key=$top/tests/data/update/test-signing-key.pem
pub=$top/tests/data/update/test-signing-key.pub
echo "test-image: updates: preparing the test copy and three bundles"

# Writes FILE (host) to PATH (in the ext4 image IMG), replacing it.
e2put() { # IMG HOST_FILE PATH
    debugfs -w -R "rm $3" "$1" >/dev/null 2>&1 || true
    debugfs -w -R "write $2 $3" "$1" >/dev/null 2>&1
    debugfs -R "stat $3" "$1" 2>/dev/null | grep -q Inode || { echo "test-image: cannot write $3"; return 1; }
}
part_write() { # NAME FILE: put a partition back into the disk copy
    local start size
    start=$(jq -r --arg n "$1" '.partitiontable.partitions[] | select(.name == $n) | .start' "$work/table.json")
    size=$(jq -r --arg n "$1" '.partitiontable.partitions[] | select(.name == $n) | .size' "$work/table.json")
    # The partition becomes a hole first: dd's sparse skips runs of zeros, and
    # a skipped run must read as zeros, not as what the partition held before
    # (a stale half of an extent block corrupted slot A's coworkd once).
    fallocate --punch-hole --offset $((start * 512)) --length $((size * 512)) "$disk"
    dd if="$2" of="$disk" bs=512 seek="$start" conv=notrunc,sparse status=none
}

# --- the fake LLM on the host (TLS, its own CA) ------------------------------------
upd=$work/update
mkdir -p "$upd/files" "$upd/medium" "$upd/llm"
llm_key=image-test-llm-key
(
    cd "$upd/llm"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=cowork-image-test-ca -keyout ca.key -out ca.pem \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=10.0.2.2 \
        -keyout server.key -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:10.0.2.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem >/dev/null 2>&1
)
# Guest connections to 10.0.2.2 reach the host's 127.0.0.1 (QEMU user networking).
python3 "$top/tests/systemd/fake-llm.py" --port-file "$upd/llm/port" --log "$upd/llm/requests.log" \
    --key "$llm_key" --command 'echo sandboxed-$((6*7)) > proof.txt && cat proof.txt' \
    --cert "$upd/llm/server.pem" --cert-key "$upd/llm/server.key" >"$upd/llm/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$upd/llm/port" ] && break; sleep 0.1; done
llm_port=$(cat "$upd/llm/port" 2>/dev/null || true)
check "fake LLM serving TLS on 127.0.0.1:${llm_port:-?} for the guest" [ -n "$llm_port" ]
chmod 0644 "$upd/llm/ca.pem"
cat > "$upd/files/60-test-agent.toml" <<CONF
# make test-image only: the agent talks to the host's fake LLM.
[agent]
provider = "openai"
model = "fake-local"
base_url = "https://10.0.2.2:$llm_port"
ca_file = "/etc/cowork/test-llm-ca.pem"
secret_name = "llm_key"
[agent.prices.fake-local]
input_usd_per_mtok = 0.0
output_usd_per_mtok = 0.0
CONF
chmod 0644 "$upd/files/60-test-agent.toml"
# The update feed, served from the host once v3 is packed (below).
feed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$upd/files/61-test-feed.toml" <<CONF
# make test-image only: the signed update feed on the host.
[update]
feed_url = "https://10.0.2.2:$feed_port/feed.json"
ca_file = "/etc/cowork/test-llm-ca.pem"
CONF
chmod 0644 "$upd/files/61-test-feed.toml"

# --- the old code: the image before the newest state.db step ---------------------
echo "test-image: updates: building coworkd with the feature state-db-before-newest"
prev=$upd/coworkd-before-newest
(cd "$top" && cargo build --release --quiet --bin coworkd --features state-db-before-newest) \
    && cp "$bin/coworkd" "$prev" || true
# Puts the shipped binary back in place (both builds are cached: a copy, no compile).
(cd "$top" && cargo build --release --quiet --bin coworkd) || true
check "a coworkd that knows state.db one step less ($("$prev" --version 2>&1))" \
    sh -c "'$prev' --version | grep -q 'test build'"
check "the shipped coworkd is back in $bin ($("$bin/coworkd" --version 2>&1))" \
    sh -c "'$bin/coworkd' --version && ! '$bin/coworkd' --version | grep -q 'test build'"

# --- the test copy of the image ---------------------------------------------------
disk=$work/update.raw
cp --sparse=always "$image" "$disk"
cp "$ovmf_vars" "$work/vars-update.fd"
mkdir -p "$work/tpm-update"
part_extract root-a "$upd/root.ext4" "$disk"
cat > "$upd/files/test-driver" <<'EOF'
#!/bin/sh
# make test-image only: runs /run/cwtest/step.sh from the CWTEST disk.
dev=/dev/disk/by-label/CWTEST
[ -e "$dev" ] || exit 0
mkdir -p /run/cwtest
mount -o ro "$dev" /run/cwtest || exit 0
exec sh /run/cwtest/step.sh
EOF
cat > "$upd/files/cowork-test-driver.service" <<'EOF'
[Unit]
Description=CoWork OS image test driver (make test-image only)
Requires=boot-complete.target
# An update is refused until the running slot is blessed.
After=boot-complete.target systemd-bless-boot.service cowork-console.service
[Service]
Type=oneshot
ExecStart=/bin/sh /usr/lib/cowork/test-driver
StandardOutput=journal+console
StandardError=journal+console
EOF
chmod 0755 "$upd/files/test-driver"
e2put "$upd/root.ext4" "$upd/files/test-driver" /usr/lib/cowork/test-driver
e2put "$upd/root.ext4" "$upd/files/cowork-test-driver.service" /usr/lib/systemd/system/cowork-test-driver.service
e2put "$upd/root.ext4" "$pub" /usr/lib/cowork/update-keys/test.pub
e2put "$upd/root.ext4" "$upd/llm/ca.pem" /etc/cowork/test-llm-ca.pem
e2put "$upd/root.ext4" "$upd/files/60-test-agent.toml" /etc/cowork/coworkd.toml.d/60-test-agent.toml
e2put "$upd/root.ext4" "$upd/files/61-test-feed.toml" /etc/cowork/coworkd.toml.d/61-test-feed.toml
debugfs -w -R "symlink /etc/systemd/system/multi-user.target.wants/cowork-test-driver.service /usr/lib/systemd/system/cowork-test-driver.service" \
    "$upd/root.ext4" >/dev/null 2>&1

# --- payloads and bundles -----------------------------------------------------------
esp_at="$disk@@$(part_offset esp)"
MTOOLS_SKIP_CHECK=1 mcopy -n -i "$esp_at" ::/cowork-a/vmlinuz "$upd/vmlinuz"
MTOOLS_SKIP_CHECK=1 mcopy -n -i "$esp_at" ::/cowork-a/initrd.img "$upd/initrd.img"
shrink() { # the payload is the file system only, not the empty rest of the slot
    e2fsck -fy "$1" >/dev/null 2>&1 || true
    resize2fs -M "$1" >/dev/null 2>&1
    local blocks bsize
    blocks=$(dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Block count: *//p')
    bsize=$(dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Block size: *//p')
    truncate -s $((blocks * bsize)) "$1"
}
pack() { # VERSION PAYLOAD OUT
    "$bin/coworkctl" update pack --payload "$2" --kernel "$upd/vmlinuz" --initrd "$upd/initrd.img" \
        --version "$1" --label "test-$1" --key "$key" --out "$3" >/dev/null
}
payload() { # VERSION [DIR...] [-- FILE PATH...]: slot A's file system (the
    # shipped coworkd) as image VERSION, with the directories made and the files put
    local v=$1 f=$upd/root-$1.ext4
    shift
    cp --sparse=always "$upd/root.ext4" "$f"
    echo "$v" > "$upd/version"
    e2put "$f" "$upd/version" /usr/lib/cowork/image-version
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        debugfs -w -R "mkdir $1" "$f" >/dev/null 2>&1
        shift
    done
    [ $# -gt 0 ] && shift
    while [ $# -ge 2 ]; do e2put "$f" "$1" "$2"; shift 2; done
    shrink "$f"
    pack "$v" "$f" "$upd/medium/v$v.bundle"
    rm -f "$f"
}
# v2: the appliance comes up (the gateway migrates state.db), then its boot
# assessment fails, so the trial fails after the migration.
cat > "$upd/files/90-test-fail.conf" <<'EOF'
# make test-image only: this version fails its boot assessment on purpose.
[Service]
ExecStart=
ExecStart=/bin/sh -c 'echo "cowork-test: v2 assessment fails on purpose"; exit 1'
EOF
chmod 0644 "$upd/files/90-test-fail.conf"
payload 2 /usr/lib/systemd/system/cowork-boot-ok.service.d \
    -- "$upd/files/90-test-fail.conf" /usr/lib/systemd/system/cowork-boot-ok.service.d/90-test-fail.conf
payload 3
# Slot A runs the old code; the bundles above carry the shipped one.
e2put "$upd/root.ext4" "$prev" /usr/bin/coworkd
part_write root-a "$upd/root.ext4"
rm -f "$upd/root.ext4"
head -c 65536 /dev/urandom > "$upd/small.img"
pack 1 "$upd/small.img" "$upd/medium/v1.bundle"
check "three bundles packed and signed with the test key ($(cd "$upd/medium" && du -h -- *.bundle | tr '\t\n' ': '))" \
    sh -c "[ -s '$upd/medium/v1.bundle' ] && [ -s '$upd/medium/v2.bundle' ] && [ -s '$upd/medium/v3.bundle' ]"
# v3 goes through the feed: published beside its feed.json, served over HTTPS.
published=$("$bin/coworkctl" update publish --out "$upd/site" --key "$key" --expires-days 2 "$upd/medium/v3.bundle" 2>&1)
(cd "$upd/site" && exec openssl s_server -quiet -WWW -accept "127.0.0.1:$feed_port" \
    -cert "$upd/llm/server.pem" -key "$upd/llm/server.key") >"$upd/feed-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -sf --cacert "$upd/llm/ca.pem" --resolve "10.0.2.2:$feed_port:127.0.0.1" \
        "https://10.0.2.2:$feed_port/feed.json" -o /dev/null && break
    sleep 0.1
done
check "v3 published in a signed feed and served over HTTPS for the guest ($published)" \
    curl -sf --cacert "$upd/llm/ca.pem" --resolve "10.0.2.2:$feed_port:127.0.0.1" \
        "https://10.0.2.2:$feed_port/feed.json" -o /dev/null

# The guest's side: one step per boot, chosen by its version and a step file
# on the data partition.
cat > "$upd/medium/step.sh" <<'EOF'
say() { echo "cowork-test: $*" | tr '\n' ' '; echo; }
v=$(cat /usr/lib/cowork/image-version)
mkdir -p /var/lib/cowork-test
step=$(cat /var/lib/cowork-test/step 2>/dev/null || echo 0)
status() { say "status-$1 $(coworkctl update status --json 2>&1 | tr -d '\n')"; }
# What the owner's state looks like to this image: state.db's schema and the
# health, users, tasks, secrets, and the trail's store.migrated entries.
state() {
    out=$(coworkctl status 2>&1); rc=$?
    say "state-$1-health rc=$rc $(echo "$out" | grep -E 'store state.db|DEGRADED' | tr '\n' ' ')"
    say "state-$1-users $(coworkctl users list 2>&1 | tr '\n' ' ')"
    say "state-$1-tasks $(coworkctl tasks list 2>&1 | tr '\n' ' ')"
    say "state-$1-secrets $(coworkctl secret list 2>&1 | tr '\n' ' ')"
    say "state-$1-migrated $(coworkctl audit tail --kind store.migrated -n 20 --json 2>&1 | tr -d ' \n')"
}
apply() { out=$(coworkctl update apply "/run/cwtest/$1.bundle" 2>&1); say "apply-$1 rc=$? $out"; }
# One command through gateway -> guard -> approval -> sandbox -> audit.
command_path() {
    printf '%s' image-test-llm-key | coworkctl secret set llm_key >/dev/null 2>&1
    code=$(coworkctl pair new --channel local --json | sed -n 's/.*"code": *"\([^"]*\)".*/\1/p')
    say "command-pair $(coworkctl chat "/pair $code" 2>&1)"
    asked=$(timeout 120 coworkctl chat "please write the proof file" 2>&1)
    say "command-asked $asked"
    id=$(echo "$asked" | grep -o 'a-[0-9a-f]\{12\}' | head -n 1)
    say "command-approve $(coworkctl approvals approve "$id" 2>&1)"
    n=0
    while [ $n -lt 120 ]; do
        inbox=$(coworkctl chat --inbox 2>&1)
        case "$inbox" in *"The command printed"*) break ;; esac
        n=$((n + 1)); sleep 1
    done
    say "command-inbox $inbox"
    say "command-audit $(coworkctl audit tail -n 200 --json | grep -o '"kind": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' | tr '\n' ' ')"
    coworkctl audit verify >/dev/null 2>&1; say "command-verify rc=$?"
}
case "$v:$step" in
1:0) command_path; state 1; status 1; apply v2; echo 1 > /var/lib/cowork-test/step; say reboot; systemctl reboot ;;
1:1)
    state back; status back
    say "back-files $(ls /var/lib/cowork/gateway/ 2>&1 | tr '\n' ' ')"
    say "back-served $(timeout 120 coworkctl chat "please write the proof file again" 2>&1 | tr '\n' ' ')"
    found=$(coworkctl update check --json 2>&1); say "check-feed rc=$? $(echo "$found" | tr -d ' \n')"
    apply v3; echo 2 > /var/lib/cowork-test/step; say reboot; systemctl reboot ;;
3:2) state 3; status 3; apply v1; echo 3 > /var/lib/cowork-test/step; say poweroff; systemctl poweroff ;;
*) say "unexpected version $v at step $step"; systemctl poweroff ;;
esac
EOF
mkfs.ext4 -q -L CWTEST -d "$upd/medium" "$upd/medium.ext4" "$(( $(du -sm "$upd/medium" | cut -f1) + 64 ))M"
rm -rf "$upd/medium"

# --- boots --------------------------------------------------------------------------
# One QEMU per boot, started with -no-reboot: when the guest reboots (the test
# step, cowork-trial-failed, or a watchdog reset), QEMU exits and the next boot
# is a fresh QEMU on the same disk, firmware variables and TPM state, like a
# power cycle. (QEMU's own reset under TCG sometimes left OVMF spinning for
# minutes, or for good: that hung CI at stop 13.) The guest's reboot or
# power-off is read from the kernel's last "reboot: " line.
serial_log=$work/serial-update.log
: > "$serial_log"
start_update=$(date +%s)
echo "test-image: updates: booting (one QEMU per boot; serial log $serial_log)"
seen=0
progress() { # the milestones that reached the serial log since the last call
    local total
    total=$(wc -l < "$serial_log")
    [ "$total" -gt "$seen" ] || return 0
    tr -d '\r' < "$serial_log" | sed -n "$((seen + 1)),${total}p" \
        | grep -aE 'cowork-test: |cowork: |console-report\[[0-9]+\]: (slot|boot|watchdog): |reboot: |BdsDxe: starting' \
        | sed 's/^.*\(cowork-test: \|cowork: \|console-report\[[0-9]*\]: \|reboot: \|BdsDxe: \)/\1/' \
        | cut -c1-150 | sed "s/^/    [$(( $(date +%s) - start_update ))s] /" || true
    seen=$total
}
# A stall (no console output for UPDATE_STALL seconds; even a hung reboot is
# reset by the guest's watchdog within 2 minutes) ends the run early.
utimeout=${UPDATE_TIMEOUT:-1800} ustall=${UPDATE_STALL:-600}
boots=0 outcome= panics=0 trial_panics=0
while [ "$boots" -lt 9 ]; do
    boots=$((boots + 1))
    # The TPM state of the first boot (the keystore is sealed to it); each
    # swtpm ends with its QEMU.
    rm -f "$work/swtpm-update.sock"
    swtpm socket --tpm2 --tpmstate dir="$work/tpm-update" --ctrl type=unixio,path="$work/swtpm-update.sock" \
        --log file="$work/swtpm-update.log" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -S "$work/swtpm-update.sock" ] && break; sleep 0.1; done
    qemu-system-x86_64 -machine q35 -accel "$accel" -cpu "$cpu" -smp 2 -m 1024 \
        -nodefaults -display none -no-reboot \
        -drive if=pflash,format=raw,readonly=on,file="$ovmf_code" \
        -drive if=pflash,format=raw,file="$work/vars-update.fd" \
        -drive if=virtio,format=raw,file="$disk" \
        -drive if=virtio,format=raw,file="$upd/medium.ext4",readonly=on \
        -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
        -chardev socket,id=chrtpm,path="$work/swtpm-update.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-tis,tpmdev=tpm0 \
        -chardev file,id=ser0,path="$serial_log",append=on -serial chardev:ser0 \
        >>"$work/qemu-update.log" 2>&1 &
    qemu=$!
    pids+=($qemu)
    last_size=$(stat -c %s "$serial_log") last_change=$(date +%s)
    while kill -0 "$qemu" 2>/dev/null; do
        now=$(date +%s)
        progress
        size=$(stat -c %s "$serial_log")
        if [ "$size" != "$last_size" ]; then last_size=$size last_change=$now; fi
        if [ $((now - start_update)) -gt "$utimeout" ]; then
            outcome="the update boots did not finish within ${utimeout}s"
        elif [ $((now - last_change)) -gt "$ustall" ]; then
            last_line=$(tr -d '\r' < "$serial_log" | grep -av '^[[:space:]]*$' | tail -n 1 || true)
            outcome="the guest hung: no console output for ${ustall}s (last: ${last_line:0:120})"
        fi
        if [ -n "$outcome" ]; then kill "$qemu"; break; fi
        sleep 5
    done
    wait "$qemu" 2>/dev/null || true
    progress
    [ -n "$outcome" ] && break
    this_boot=$(tr -d '\r' < "$serial_log" \
        | awk '/^cowork-image-test: boot [0-9]+ ended/ { buf = ""; next } { buf = buf $0 "\n" } END { printf "%s", buf }')
    last_reboot=$(printf '%s' "$this_boot" | awk '/reboot: / { r = $0 } END { print r }' \
        | grep -ao 'reboot: [A-Za-z ]*' || true)
    # The image boots with panic=10: a panicked kernel restarts by itself
    # (no "reboot: " line), as the appliance would in the field. Its trace is
    # shown, whatever the outcome, for whoever reads the run.
    if printf '%s' "$this_boot" | grep -aq 'Kernel panic - not syncing'; then
        panics=$((panics + 1))
        # A panic after v2 was applied and before slot A came back is a boot
        # of v2 on trial: systemd-boot counted the try before the kernel ran,
        # as it would in the field.
        tr -d '\r' < "$serial_log" | grep -q 'cowork-test: apply-v2 rc=0' \
            && ! tr -d '\r' < "$serial_log" | grep -q 'cowork-test: state-back-' \
            && trial_panics=$((trial_panics + 1))
        echo "    [$(( $(date +%s) - start_update ))s] the guest kernel panicked in boot $boots; panic=10 restarted it. The trace:"
        printf '%s' "$this_boot" \
            | sed -n '/BUG: \|Oops\|general protection\|cut here\|Kernel panic/,/end Kernel panic/p' \
            | head -n 80 | cut -c1-200 | sed 's/^/    | /'
        [ -z "$last_reboot" ] && last_reboot="reboot: Restarting system"
    fi
    case "$last_reboot" in
    "reboot: Power down") outcome=done; break ;;
    "reboot: Restarting system") ;;
    *) outcome="QEMU ended without the guest rebooting or powering off (boot $boots)"; break ;;
    esac
    # Each boot's reboot line is read once: mark it as seen.
    echo "cowork-image-test: boot $boots ended" >> "$serial_log"
done
[ -n "$outcome" ] || outcome="more than 9 boots"
if [ "$outcome" = done ]; then
    ok "the update boots ended in a power-off ($boots boots)"
else
    bad "$outcome"
fi
echo "test-image: updates: $boots boots in $(( $(date +%s) - start_update ))s ($panics kernel panics)"
said() { tr -d '\r' < "$serial_log" | sed -n "s/^.*cowork-test: $1 //p" | head -n 1; }
contains() { printf '%s' "$1" | grep -q -- "$2"; } # TEXT PATTERN
asked=$(said command-asked) reply=$(said command-inbox) audit_kinds=" $(said command-audit) "
echo "    v1: command: ${asked:0:200}"
echo "    v1: approve: $(said command-approve)"
echo "    v1: reply: $reply"
check "v1: the guard asked for the owner's approval" contains "$asked" "needs the owner's approval"
check "v1: the approved command ran in the sandbox and its output reached the chat" contains "$reply" "sandboxed-42"
for k in approval.requested approval.approved command.started command.finished task.completed; do
    check "v1: $k in the audit trail" contains "$audit_kinds" " $k "
done
check "v1: the audit trail verifies after the command ($(said command-verify))" [ "$(said command-verify)" = "rc=0" ]
check "v1: the fake LLM got requests, each with the stored key ($(grep -c . "$upd/llm/requests.log" 2>/dev/null || echo 0))" \
    sh -c "grep -q '\"authorized\": true' '$upd/llm/requests.log' && ! grep -q '\"authorized\": false' '$upd/llm/requests.log'"
# The owner's state across the migration and the rollback.
for st in 1 back 3; do
    echo "    state ($st): $(said "state-$st-health")"
    echo "      users: $(said "state-$st-users" | cut -c1-200)"
    echo "      tasks: $(said "state-$st-tasks" | cut -c1-200)"
    echo "      secrets: $(said "state-$st-secrets" | cut -c1-200)"
done
migrated=$(said state-back-migrated)
echo "    store.migrated entries seen by v1 after the rollback: ${migrated:0:600}"
echo "    v1 after the rollback, the gateway's files: $(said back-files)"
echo "    v1 after the rollback, the paired user writes: $(said back-served | cut -c1-200)"
# state.db's newest schema (its steps in src/gateway/state_db.rs) and the one
# before it, which slot A's test build makes.
newest=$(awk '/^const STEPS/,/^];/' "$top/src/gateway/state_db.rs" | grep -c 'Step {')
old=$((newest - 1))
check "v1 made state.db at schema $old (the image before its newest step)" \
    contains "$(said state-1-health)" "store state.db: schema $old"
check "v1: the paired local user is listed" contains "$(said state-1-users)" "paired"
check "v1: the secret is listed" contains "$(said state-1-secrets)" "llm_key"
state_steps=$(printf '%s' "$migrated" \
    | jq -c 'select(.payload.store == "state.db") | "\(.payload.from)->\(.payload.to) by \(.component)"' 2>/dev/null | tr -d '"' | tr '\n' ' ')
check "v2 migrated state.db $old -> $newest during its trial (store.migrated of state.db: $state_steps)" \
    contains "$state_steps" "$old->$newest by gateway"
check "v2 took a pre-migration copy (store.migrated names state.db.pre-v$old)" contains "$migrated" "state.db.pre-v$old"
check "v1 after the rollback opens the migrated file and is healthy ($(said state-back-health))" \
    sh -c "echo '$(said state-back-health)' | grep -q '^rc=0 .*store state.db: schema $newest'"
for what in users tasks secrets; do
    check "v1 after the rollback: the same $what as before the update" \
        [ "$(said "state-back-$what")" = "$(said "state-1-$what")" ]
done
check "v1 after the rollback still serves the paired user (the agent asks for approval again)" \
    contains "$(said back-served)" "needs the owner's approval"
check "v3 (the shipped code) reads the migrated file (schema $newest, healthy)" \
    sh -c "echo '$(said state-3-health)' | grep -q '^rc=0 .*store state.db: schema $newest'"
check "v3: the paired user still listed" contains "$(said state-3-users)" "paired"
check "v3: the secret still listed" contains "$(said state-3-secrets)" "llm_key"

st1=$(said status-1) stb=$(said status-back) st3=$(said status-3)
a2=$(said apply-v2) a3=$(said apply-v3) a1=$(said apply-v1)
echo "    v1: status $st1"
echo "    v1: apply v2: $a2"
echo "    v1 again: status $stb"
echo "    v1 again: apply v3: $a3"
echo "    v3: status $st3"
echo "    v3: apply v1: $a1"
check "slot A (v1) wrote v2 to slot B" sh -c "echo '$a2' | grep -q '^rc=0 .*slot'"
jqs() { echo "$1" | jq -r "$2" 2>/dev/null; }
fails=$(tr -d '\r' < "$serial_log" | grep -c 'failed: the boot was not assessed good.*; rebooting to count the try' || true)
# A try may end in a guest kernel panic instead (TCG; panic=10 restarts it):
# it is spent all the same.
check "v2 spent its 3 tries ($fails failed their assessment, $trial_panics ended in a kernel panic)" \
    [ "$((fails + trial_panics))" = 3 ]
check "back on slot A, version 1, after the tries ($(jqs "$stb" '"\(.running) v\(.running_version)"'))" \
    [ "$(jqs "$stb" '"\(.running) \(.running_version)"')" = "a 1" ]
check "update status says why ($(jqs "$stb" .fallback))" \
    sh -c "echo '$(jqs "$stb" .fallback)' | grep -q 'ran out of boot tries'"
feed_check=$(said check-feed)
echo "    v1 again: update check: $feed_check"
check "slot A (v1) checked the host's feed: version 3 offered (exit 1)" \
    sh -c "echo '$feed_check' | grep -q '^rc=1 ' && echo '$feed_check' | grep -q '\"newest_version\":3,' \
        && echo '$feed_check' | grep -q '\"installable\":true'"
check "slot A (v1) wrote v3 to slot B" sh -c "echo '$a3' | grep -q '^rc=0 .*slot'"
check "rebooted into slot B, version 3 ($(jqs "$st3" '"\(.running) v\(.running_version)"'))" \
    [ "$(jqs "$st3" '"\(.running) \(.running_version)"')" = "b 3" ]
check "the floor is 3 ($(jqs "$st3" .floor))" [ "$(jqs "$st3" .floor)" = 3 ]
check "the downgrade to v1 is refused ($a1)" sh -c "echo '$a1' | grep -q '^rc=1 .*\(older\|version\|floor\)'"
esp_at="$disk@@$(part_offset esp)"
entries=$(MTOOLS_SKIP_CHECK=1 mdir -b -i "$esp_at" ::/loader/entries 2>/dev/null | sed 's|.*/||' | sort | tr '\n' ' ')
check "entries: A and B blessed ($entries)" [ "$entries" = "cowork-a.conf cowork-b.conf " ]

# For whoever reads a failed run: the console's last lines, QEMU's own
# messages, and the last boot as the image's persisted journal has it.
if [ "$failed" != 0 ]; then
    echo "test-image: updates: the serial console's last lines:"
    tr -d '\r' < "$serial_log" | tail -n 40 | cut -c1-200 | sed 's/^/    | /'
    [ -s "$work/qemu-update.log" ] && sed 's/^/    qemu: /' "$work/qemu-update.log"
    part_extract data "$work/data-update.ext4" "$disk"
    mid=$(debugfs -R 'cat /lib/cowork-machine-id' "$work/data-update.ext4" 2>/dev/null | tr -d '\n')
    jdir=$work/journal-update
    mkdir -p "$jdir"
    debugfs -R "rdump /log/journal/$mid $jdir" "$work/data-update.ext4" >/dev/null 2>&1 || true
    echo "test-image: updates: boots in the image's journal:"
    journalctl -D "$jdir/$mid" --list-boots --no-pager 2>&1 | sed 's/^/    /'
    last_boot=$(journalctl -D "$jdir/$mid" --list-boots --no-pager 2>/dev/null | tail -n 1 | awk '{print $2}')
    echo "test-image: updates: the last boot's notices and worse:"
    journalctl -D "$jdir/$mid" "_BOOT_ID=$last_boot" -p notice -o short-monotonic --no-pager 2>&1 \
        | tail -n 40 | cut -c1-200 | sed 's/^/    /'
fi
