#!/bin/bash
# `systemd-analyze security --offline=yes` for every unit we ship, against a
# ceiling per unit. The supervisor's ceiling is what its duties allow (see the
# comment in systemd/coworkd.service); lowering a score is welcome, raising the
# ceiling needs a reason in the commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A ceiling=(
    [systemd/coworkd.service]=3.7
    [systemd/cowork-boot-ok.service]=1.0
    [systemd/cowork-console.service]=1.0
)
failed=0
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
