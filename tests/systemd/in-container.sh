#!/bin/bash
# Runs inside the nspawn container as cowork-test.service (see run.sh). Asserts:
# the unit starts and is active (Type=notify: start returns after READY=1), the
# status text and coworkctl show all four components up under their own users,
# journald holds the structured fields, the sandbox runs in cowork-sandbox.service
# and the supervisor keeps only setuid/setgid, a SIGKILLed component is healed
# (the sandbox by its own unit), a SIGKILLed supervisor is restarted by systemd,
# and `systemctl stop` is clean and takes the sandbox's unit with it.
# One command goes the whole way under the shipped units: a local chat message
# -> the agent (a fake OpenAI-compatible server on loopback, fake-llm.py) ->
# run_command -> the guard asks -> `coworkctl approvals approve` -> the sandbox
# (its own unit) runs it -> the audit trail has command.started/finished -> the
# reply with the command's real output reaches the chat.
# The owner's settings (coworkctl settings) apply under the same units.
exec >/results/log 2>&1
set -u

fail() {
    echo "FAIL: $*"
    systemctl status coworkd.service cowork-sandbox.service --no-pager -l || true
    journalctl -u cowork-sandbox.service --no-pager -n 30 || true
    ls -la /run/cowork /run/cowork/* || true
    for p in $(pgrep -f /usr/local/bin/coworkd); do grep -H "^Groups\|^Uid\|^Cap" /proc/$p/status; done
    journalctl -u coworkd.service -o json --no-pager -n 80 \
        | jq -c 'with_entries(select(.key | test("^(_|__|SYSLOG|CODE_|PRIORITY|TARGET|INVOCATION|MESSAGE_ID)") | not))' || true
    echo FAIL >/results/verdict
    systemctl poweroff --no-block
    exit 1
}
pass() { echo "ok: $*"; }

# Wait up to $1 seconds for a command to succeed.
wait_for() {
    local secs=$1; shift
    for _ in $(seq 1 $((secs * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

component_pid() { coworkctl status --json | jq -r ".components[] | select(.component==\"$1\") | .pid"; }
component_state() { coworkctl status --json | jq -r ".components[] | select(.component==\"$1\") | .state"; }

getent passwd cowork-audit >/dev/null || fail "sysusers did not create cowork-audit"
pass "sysusers created the component users"

for unit in coworkd.service cowork-sandbox.service; do
    verify=$(systemd-analyze verify /etc/systemd/system/$unit 2>&1)
    [ -z "$verify" ] || fail "systemd-analyze verify $unit: $verify"
done
pass "systemd-analyze verify is clean"

# The fake LLM, and the agent's drop-in naming it, before coworkd starts.
LLM_KEY=nspawn-test-llm-key
PROOF_COMMAND='echo sandboxed-$((6*7)) > proof.txt && cat proof.txt'
python3 /cowork-test/fake-llm.py --port-file /run/fake-llm.port --log /run/fake-llm.log \
    --key "$LLM_KEY" --command "$PROOF_COMMAND" &
wait_for 10 test -s /run/fake-llm.port || fail "the fake LLM did not start"
cat > /etc/cowork/coworkd.toml.d/60-nspawn-agent.toml <<CONF
[agent]
provider = "openai"
model = "fake-local"
base_url = "http://127.0.0.1:$(cat /run/fake-llm.port)"
secret_name = "llm_key"
[agent.prices.fake-local]
input_usd_per_mtok = 0.0
output_usd_per_mtok = 0.0
CONF
pass "fake LLM on 127.0.0.1:$(cat /run/fake-llm.port), agent configured"

[ "$(systemctl is-active coworkd.service)" = inactive ] || fail "coworkd.service started before the test started it"
systemctl start --no-block coworkd.service
wait_for 15 bash -c '[ "$(systemctl is-active coworkd.service)" = active ]' || fail "coworkd.service did not become active"
[ "$(systemctl is-active coworkd.service)" = active ] || fail "unit not active"
pass "unit active (READY=1 reached)"

status_text=$(systemctl show -p StatusText --value coworkd.service)
echo "StatusText: $status_text"
[[ "$status_text" == 4/4\ components\ up* ]] || fail "status text: $status_text"
pass "STATUS= reports all components"

coworkctl status || fail "coworkctl status not healthy"
for c in audit sandbox gateway admin; do
    [ "$(component_state $c)" = up ] || fail "$c not up"
    pid=$(component_pid $c)
    user=$(ps -o user= -p "$pid" | tr -d ' ')
    [ "$user" = "cowork-$c" ] || fail "$c runs as $user, not cowork-$c"
    caps=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/"$pid"/status)
    [ "$caps" = 0000000000000000 ] || fail "$c has capabilities $caps"
    grep -q 'libtss2' /proc/"$pid"/maps && fail "$c maps the TPM libraries"
    [ "$(readlink /proc/"$pid"/exe)" = /usr/local/bin/coworkd ] \
        || fail "$c runs $(readlink /proc/"$pid"/exe), not coworkd"
done
pass "every component up under its own user with no capabilities and no TPM libraries"
supervisor=$(systemctl show -p MainPID --value coworkd.service)
grep -q 'libtss2' /proc/"$supervisor"/maps && fail "the supervisor maps the TPM libraries (only coworkd-tpm may)"
[ "$(readlink /proc/"$supervisor"/exe)" = "$(readlink /proc/"$(component_pid gateway)"/exe)" ] \
    || fail "the supervisor and the components run different binaries"
pass "the supervisor runs the components' binary and maps no TPM libraries"

# The sandbox is not the supervisor's child: its own unit runs it, in its cgroup.
sandbox=$(component_pid sandbox)
[ "$(systemctl is-active cowork-sandbox.service)" = active ] || fail "cowork-sandbox.service not active"
[ "$(systemctl show -p MainPID --value cowork-sandbox.service)" = "$sandbox" ] \
    || fail "the sandbox the supervisor sees ($sandbox) is not cowork-sandbox.service's main process"
grep -q 'cowork-sandbox.service' /proc/"$sandbox"/cgroup || fail "sandbox cgroup: $(cat /proc/"$sandbox"/cgroup)"
[ "$(readlink /run/cowork/sandbox)" = /run/cowork-sandbox/sandbox ] || fail "no link to the sandbox's socket directory"
pass "sandbox runs in cowork-sandbox.service, watched by the supervisor"

# The supervisor keeps only CAP_SETUID and CAP_SETGID (no CAP_KILL, no CAP_CHOWN).
main=$(systemctl show -p MainPID --value coworkd.service)
capbnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/"$main"/status)
[ "$capbnd" = 00000000000000c0 ] || fail "supervisor bounding set $capbnd, want 00000000000000c0 (setgid, setuid)"
pass "supervisor bounding set is CAP_SETGID and CAP_SETUID only"

isolation=$(coworkctl status --json | jq -r '.components[] | select(.component=="sandbox") | .summary')
echo "sandbox: $isolation"
# systemd-nspawn's own seccomp filter refuses landlock_create_ruleset and it
# gives no cgroup, so those two show as missing here; namespaces, the mount
# tree and seccomp must all work under the unit's own restrictions.
[[ "$isolation" == *"namespaces user,mount,pid,ipc,uts,cgroup,net;"*"seccomp on"* ]] \
    || fail "sandbox self-test under the unit's restrictions: $isolation"
pass "sandbox self-test ran under the unit's restrictions"

[ "$(stat -c %a /var/lib/cowork/audit)" = 700 ] || fail "audit state dir mode"
[ "$(stat -c %U /var/lib/cowork/audit)" = cowork-audit ] || fail "audit state dir owner"
pass "per-component state directories owned by their users"

# The checklist under the real units: the state the units lay out passes the
# permission check, the production profile passes, and nothing fails.
doctor_json=$(coworkctl doctor --json); doctor_rc=$?
[ "$doctor_rc" != 2 ] || fail "coworkctl doctor reports a fail: $(coworkctl doctor)"
for id in files.permissions profile audit.verify channel.local.access; do
    [ "$(jq -r ".checks[] | select(.id==\"$id\") | .status" <<<"$doctor_json")" = ok ] \
        || fail "doctor check $id: $(jq -c ".checks[] | select(.id==\"$id\")" <<<"$doctor_json")"
done
pass "coworkctl doctor under the units: no fail ($(jq -r '[.checks[] | select(.status!="ok") | .id] | join(", ")' <<<"$doctor_json") to look at)"

journal_count() { journalctl -o json --no-pager _SYSTEMD_UNIT=coworkd.service | jq -c "select($1)" | grep -c . ; }
n=$(journal_count '.COMPONENT=="audit" and .SYSLOG_IDENTIFIER=="coworkd"')
echo "journal entries with COMPONENT=audit: $n"
[ "$n" -gt 0 ] || fail "journald has no COMPONENT=audit entries"
n=$(journal_count '.COMPONENT=="supervisor" and .CHILD=="audit" and (.MESSAGE | test("component up"))')
[ "$n" -gt 0 ] || fail "journald has no structured supervisor entries"
pass "journald holds structured fields"

# --- one command through gateway -> guard -> approval -> sandbox -> audit ---
printf '%s' "$LLM_KEY" | coworkctl secret set llm_key >/dev/null || fail "secret set llm_key"
code=$(coworkctl pair new --channel local --json | jq -r .code)
paired=$(coworkctl chat "/pair $code" 2>&1)
[[ "$paired" == *Paired* ]] || fail "pairing the local user: $paired"
asked=$(timeout 60 coworkctl chat "please write the proof file" 2>&1)
echo "chat: $asked"
[[ "$asked" == *"needs the owner's approval"* ]] || fail "the guard did not ask for approval: $asked"
approval=$(coworkctl approvals list --json | jq -r '.[0].id')
[ -n "$approval" ] && [ "$approval" != null ] || fail "no pending approval: $(coworkctl approvals list 2>&1)"
coworkctl approvals approve "$approval" || fail "approving $approval"
wait_for 60 bash -c 'coworkctl chat --inbox > /run/inbox.txt 2>&1; grep -q "The command printed" /run/inbox.txt' \
    || fail "no answer after the approval: $(cat /run/inbox.txt); $(journalctl -u cowork-sandbox.service --no-pager -n 20)"
echo "inbox: $(cat /run/inbox.txt)"
grep -q 'sandboxed-42' /run/inbox.txt || fail "the command's output did not reach the chat: $(cat /run/inbox.txt)"
kinds=$(coworkctl audit tail -n 200 --json | jq -r .kind | tr '\n' ' ')
for k in approval.requested approval.approved command.started command.finished task.completed; do
    [[ " $kinds" == *" $k "* ]] || fail "no $k in the audit trail: $kinds"
done
coworkctl audit verify >/dev/null || fail "audit verify after the command"
grep -q '"authorized": false' /run/fake-llm.log && fail "the LLM saw a request without the stored key"
pass "a command ran through gateway -> guard -> approval -> sandbox -> audit under the shipped units"

# --- the owner's settings under the shipped units ---------------------------
# Written by the supervisor (UMask=0077) into /var/lib/cowork/settings, read by
# every component under its own user; a channel added is usable at once, a
# [limits] change restarts the sandbox through its own unit; both survive a
# restart of coworkd.
sb=$(component_pid sandbox)
out=$(coworkctl settings set channels.extra.enabled true 2>&1) || fail "settings set: $out"
[[ "$out" == *"restarted: gateway"* ]] || fail "settings set did not restart the gateway: $out"
coworkctl pair new --channel extra >/dev/null || fail "the new channel is not usable: $(coworkctl pair new --channel extra 2>&1)"
[ "$(stat -c %a /var/lib/cowork/settings/owner.toml)" = 644 ] || fail "owner.toml mode $(stat -c %a /var/lib/cowork/settings/owner.toml)"
out=$(coworkctl settings set limits.max_iterations 40 2>&1) || fail "settings set limits: $out"
[[ "$out" == *"sandbox"* ]] || fail "a [limits] change did not restart the sandbox: $out"
[ "$(component_pid sandbox)" != "$sb" ] || fail "the sandbox kept its pid after a [limits] change"
journalctl -u cowork-sandbox.service --no-pager | grep -q "owner's settings are not applied" && fail "the sandbox could not read the owner's settings"
coworkctl settings show limits | grep -q "limits.max_iterations = 40 *# /var/lib/cowork/settings/owner.toml" \
    || fail "settings show: $(coworkctl settings show limits)"
out=$(coworkctl settings set profile development 2>&1) && fail "the owner's settings left production: $out"
coworkctl audit tail -n 100 --json | jq -r .kind | grep -q settings.changed || fail "no settings.changed in the trail"
systemctl restart coworkd.service || fail "restart for the settings"
wait_for 30 coworkctl status || fail "not healthy after restart with the owner's settings"
coworkctl pair new --channel extra >/dev/null || fail "the owner's channel did not survive a restart"
pass "the owner's settings apply under the shipped units and survive a restart"

old=$(component_pid gateway)
kill -KILL "$old"
wait_for 3 bash -c "[ \"\$(coworkctl status --json | jq -r '.components[] | select(.component==\"gateway\") | \"\(.state) \(.pid)\"')\" != 'up $old' ] && [ \"\$(coworkctl status --json | jq -r '.components[] | select(.component==\"gateway\") | .state')\" = up ]" \
    || fail "SIGKILLed gateway not healed"
pass "SIGKILLed component healed by the supervisor"

old=$(component_pid sandbox)
kill -KILL "$old"
wait_for 15 bash -c "[ \"\$(coworkctl status --json | jq -r '.components[] | select(.component==\"sandbox\") | \"\(.state) \(.pid)\"')\" != 'up $old' ] && [ \"\$(coworkctl status --json | jq -r '.components[] | select(.component==\"sandbox\") | .state')\" = up ]" \
    || fail "SIGKILLed sandbox not restarted by its unit and seen by the supervisor"
pass "SIGKILLed sandbox restarted by systemd and watched again"

systemctl reload coworkd.service || fail "systemctl reload"
pass "systemctl reload"

main=$(systemctl show -p MainPID --value coworkd.service)
systemctl kill -s KILL --kill-whom=main coworkd.service
wait_for 20 bash -c "[ \"\$(systemctl show -p MainPID --value coworkd.service)\" != $main ] && [ \"\$(systemctl is-active coworkd.service)\" = active ]" \
    || fail "systemd did not restart a SIGKILLed supervisor"
wait_for 5 coworkctl status || fail "not healthy after supervisor restart"
pass "SIGKILLed supervisor restarted by systemd, components back"

systemctl stop coworkd.service || fail "systemctl stop"
result=$(systemctl show -p Result --value coworkd.service)
[ "$result" = success ] || fail "stop result: $result"
pgrep -u cowork-audit,cowork-gateway,cowork-sandbox,cowork-admin >/dev/null && fail "component processes left behind"
[ "$(systemctl is-active cowork-sandbox.service)" = inactive ] || fail "cowork-sandbox.service still $(systemctl is-active cowork-sandbox.service) after stopping coworkd"
journalctl -u coworkd.service --no-pager | grep -q "did not stop in time" && fail "a component had to be killed on stop"
pass "systemctl stop is clean"

echo PASS >/results/verdict
systemctl poweroff --no-block
