#!/bin/bash
# make test-systemd: boot a real systemd as PID 1 with systemd-nspawn over this
# machine's root (volatile: nothing on the host changes), with the built binaries,
# the shipped unit, sysusers file and default config bound in, and run
# tests/systemd/in-container.sh inside it as a oneshot unit. The verdict comes
# back through a bound results directory.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${COWORK_BIN_DIR:-${CARGO_TARGET_DIR:-$top/target}/debug}
for b in coworkd coworkctl coworkd-tpm coworkd-sandbox-init; do
    [ -x "$bin/$b" ] || { echo "test-systemd: $bin/$b is missing (cargo build first)"; exit 1; }
done
command -v systemd-nspawn >/dev/null || { echo "test-systemd: systemd-nspawn missing (apt-get install systemd-container)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "test-systemd: must run as root (systemd-nspawn)"; exit 1; }

work=$(mktemp -d /tmp/cowork-nspawn.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/results" "$work/units/coworkd.service.d" "$work/units/cowork-sandbox.service.d"
cp "$bin/coworkd" "$bin/coworkctl" "$bin/coworkd-tpm" "$bin/coworkd-sandbox-init" "$work/bin/"
cp "$top/systemd/coworkd.service" "$top/systemd/cowork-sandbox.service" "$work/units/"
# The image installs to /usr/bin; the host's /usr is read-only here, so the test
# points the unchanged units at /usr/local/bin with drop-ins (same arguments).
exec_of() { sed -n "s|^$2=/usr/bin/|$2=/usr/local/bin/|p" "$top/systemd/$1"; }
cat > "$work/units/coworkd.service.d/test-paths.conf" <<CONF
[Service]
ExecStartPre=
$(exec_of coworkd.service ExecStartPre)
ExecStart=
$(exec_of coworkd.service ExecStart)
ExecReload=
$(exec_of coworkd.service ExecReload)
TimeoutStartSec=20s
CONF
cat > "$work/units/cowork-sandbox.service.d/test-paths.conf" <<CONF
[Service]
ExecStart=
$(exec_of cowork-sandbox.service ExecStart)
CONF
grep -q '^ExecStart=/usr/local/bin/coworkd --external-sandbox' "$work/units/coworkd.service.d/test-paths.conf" \
    || { echo "test-systemd: could not derive the test drop-in"; cat "$work/units/coworkd.service.d/test-paths.conf"; exit 1; }
# systemd-nspawn gives the container no cgroup to delegate, so the sandbox cannot
# have its memory/pids/cpu cgroup here; accept rlimits for this test so the
# self-test still proves namespaces, landlock and seccomp work under the unit.
# (Writable: in-container.sh adds the agent's drop-in pointing at its fake LLM.)
mkdir -p "$work/config.d"
cat > "$work/config.d/50-nspawn-test.toml" <<'CONF'
[sandbox]
require_full_isolation = false
CONF
# A volatile /etc is a first boot, where systemd applies presets ("enable *"):
# coworkd.service would start before the test driver. The driver starts it.
printf 'disable coworkd.service\n' > "$work/units/00-cowork-test.preset"
cat > "$work/units/cowork-test.service" <<'UNIT'
[Unit]
Description=CoWork systemd integration test driver
After=multi-user.target systemd-sysusers.service systemd-journald.service
[Service]
Type=oneshot
ExecStart=/bin/bash /cowork-test/in-container.sh
StandardOutput=journal+console
UNIT

echo "test-systemd: booting systemd in a container (log: $work/nspawn.log)"
set +e
timeout 300 systemd-nspawn -D / --volatile=yes --register=no --keep-unit --quiet \
    --machine="cowork-test-$$" \
    --bind-ro="$work/bin:/usr/local/bin" \
    --bind-ro="$work/units/coworkd.service:/etc/systemd/system/coworkd.service" \
    --bind-ro="$work/units/coworkd.service.d:/etc/systemd/system/coworkd.service.d" \
    --bind-ro="$work/units/cowork-sandbox.service:/etc/systemd/system/cowork-sandbox.service" \
    --bind-ro="$work/units/cowork-sandbox.service.d:/etc/systemd/system/cowork-sandbox.service.d" \
    --bind-ro="$top/systemd/tmpfiles.d/cowork.conf:/etc/tmpfiles.d/cowork.conf" \
    --bind-ro="$work/units/cowork-test.service:/etc/systemd/system/cowork-test.service" \
    --bind-ro="$work/units/00-cowork-test.preset:/etc/systemd/system-preset/00-cowork-test.preset" \
    --bind-ro="$top/systemd/sysusers.d/cowork.conf:/etc/sysusers.d/cowork.conf" \
    --bind-ro="$top/config/coworkd.toml:/etc/cowork/coworkd.toml" \
    --bind="$work/config.d:/etc/cowork/coworkd.toml.d" \
    --bind-ro="$top/tests/systemd:/cowork-test" \
    --bind="$work/results:/results" \
    -b systemd.firstboot=off systemd.wants=cowork-test.service \
    >"$work/nspawn.log" 2>&1 </dev/null
rc=$?
set -e
verdict=$(cat "$work/results/verdict" 2>/dev/null || echo "NONE")
echo "---- in-container log ----"
cat "$work/results/log" 2>/dev/null || true
if [ "$verdict" != PASS ]; then
    echo "---- nspawn console (last 80 lines) ----"
    tail -n 80 "$work/nspawn.log"
    echo "test-systemd: FAILED (verdict: $verdict, nspawn exit $rc)"
    exit 1
fi
echo "test-systemd: 1 passed, 0 failed"
