#!/bin/bash
# `systemd-analyze security --offline=yes` for every unit we ship, against a
# ceiling per unit: the supervisor at 2.0 (its duties: root to switch users,
# the network for the gateway and admin page, the TPM); helpers with no network
# at 1.0; the sandbox at what building namespaces as an unprivileged user costs
# (user/mount namespaces, @mount, a delegated cgroup; see its unit). Lowering a
# score is welcome, raising a ceiling needs a reason in the commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A ceiling=(
    [systemd/coworkd.service]=2.0
    [systemd/cowork-sandbox.service]=2.6
    [systemd/cowork-update@.service]=1.0
    [systemd/cowork-trial-failed.service]=1.0
    [systemd/cowork-boot-ok.service]=1.0
    [systemd/cowork-console.service]=1.0
    [systemd/cowork-update-check.service]=1.0
)
failed=0
for unit in systemd/*.service; do
    [ -n "${ceiling[$unit]:-}" ] || { echo "security: $unit has no ceiling here"; failed=1; }
done
for unit in "${!ceiling[@]}"; do
    score=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || { echo "security: could not score $unit"; failed=1; continue; }
    if awk -v s="$score" -v c="${ceiling[$unit]}" 'BEGIN { exit !(s <= c) }'; then
        echo "security: $unit exposure $score (ceiling ${ceiling[$unit]}) ok"
    else
        echo "security: $unit exposure $score exceeds ceiling ${ceiling[$unit]}"
        failed=1
    fi
done
exit $failed
