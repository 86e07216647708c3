# Sourced by tests/image/run.sh: the owner sets the booted image up from the
# admin page alone, over the forwarded HTTPS port, with no shell in the guest
# (issue 15's end-to-end check).
#
#   page_setup (first boot, before its power-off): owner setup with the
#       console's token -> Credentials: the provider key and a bot token ->
#       Agent: a fake OpenAI-compatible server on the host (tests/systemd/
#       fake-llm.py) and its private CA -> Channels: a Telegram channel whose
#       Bot API is a fake on the host (tests/image/fake-telegram.py) and its CA
#       -> Pairing: a code issued on the page; the fake platform delivers
#       `/pair CODE`, then a message -> the agent proposes a command -> the
#       approval shows on the page and is approved there -> the sandbox runs
#       it -> the reply reaches the fake platform -> the audit page shows the
#       chain. Both fakes listen on the host's loopback; the guest reaches them
#       as 10.0.2.2 (QEMU user networking), over TLS with the test's own CA.
#   page_after_reboot (a second boot of the same disk): the settings, the
#       secrets and the paired user are still there; then the agent and the
#       channel are put back (reset on the page) so the update boots that
#       follow run with the image's own settings.
# Expects from run.sh: top, work, disk, ovmf_code, accel, cpu, pids, check, ok,
# bad, field, port.

pg=$work/page
mkdir -p "$pg/tg"
page_llm_key=image-test-llm-key
page_tg_token=123456:image-test-bot-token
page_password="correct horse battery staple"
(
    cd "$pg"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=cowork-page-test-ca -keyout ca.key -out ca.pem \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=10.0.2.2 \
        -keyout server.key -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:10.0.2.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem >/dev/null 2>&1
)
python3 "$top/tests/systemd/fake-llm.py" --port-file "$pg/llm.port" --log "$pg/llm.log" \
    --key "$page_llm_key" --command 'echo sandboxed-$((6*7)) > proof.txt && cat proof.txt' \
    --cert "$pg/server.pem" --cert-key "$pg/server.key" >"$pg/llm.out" 2>&1 &
pids+=($!)
python3 "$top/tests/image/fake-telegram.py" --port-file "$pg/tg.port" --dir "$pg/tg" \
    --token "$page_tg_token" --cert "$pg/server.pem" --cert-key "$pg/server.key" >"$pg/tg.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$pg/llm.port" ] && [ -s "$pg/tg.port" ] && break; sleep 0.1; done

# --- a browser's worth of curl -------------------------------------------------------
web() { curl -sk --max-time 150 -b "$pg/jar" -c "$pg/jar" "$@"; }
page_get() { web "https://127.0.0.1:$port$1"; }
# POST PATH FIELD=VALUE...: the status; the body in $pg/last.html.
page_post() {
    local path=$1; shift
    local args=()
    for f in "$@"; do args+=(--data-urlencode "$f"); done
    web -o "$pg/last.html" -w '%{http_code}' "${args[@]}" "https://127.0.0.1:$port$path"
}
csrf_in() { sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' | head -n 1; }
version_in() { sed -n 's/.*name="version" value="\([0-9a-f]*\)".*/\1/p' | head -n 1; }
# A settings form: PATH, then fields; the page's csrf and version are added.
form_post() {
    local path=$1; shift
    local html csrf version
    html=$(page_get "$path")
    csrf=$(echo "$html" | csrf_in) version=$(echo "$html" | version_in)
    page_post "${POST_TO:-$path}" "csrf=$csrf" "version=$version" "$@"
}
login() {
    local csrf
    csrf=$(page_get /login | csrf_in)
    page_post /login "csrf=$csrf" "password=$page_password"
}
# Wait up to $1 seconds for a command to succeed.
page_wait() { local n=$1; shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 1; done; return 1; }
tg_send() { # FROM TEXT: a user's message arrives at the fake platform
    python3 -c 'import json,sys; print(json.dumps({"from": int(sys.argv[1]), "chat": int(sys.argv[1]), "text": sys.argv[2]}))' "$1" "$2" >> "$pg/tg/inbox.jsonl"
}
tg_sent() { grep -q -- "$1" "$pg/tg/sent.jsonl" 2>/dev/null; }

page_setup() {
    echo "test-image: the owner sets the appliance up from the admin page (fake LLM on :$(cat "$pg/llm.port"), fake Telegram on :$(cat "$pg/tg.port"))"
    local token csrf code s approval
    # The console line is "TOKEN (one time: ...)".
    token=$(field admin-setup-token | awk '{print $1}')
    csrf=$(page_get /setup | csrf_in)
    s=$(page_post /setup "csrf=$csrf" "token=$token" "password=$page_password" "password2=$page_password")
    check "page: owner set up with the console's token (HTTP $s)" sh -c "[ '$s' = 303 ] || [ '$s' = 200 ]"
    s=$(login)
    check "page: owner logged in (HTTP $s)" [ "$s" = 303 ]

    s=$(POST_TO=/settings/credentials/set form_post /settings/credentials "name=llm_key" "value=$page_llm_key")
    check "page: provider key stored in the vault (HTTP $s)" [ "$s" = 303 ]
    s=$(POST_TO=/settings/credentials/set form_post /settings/credentials "name=telegram_bot_token" "value=$page_tg_token")
    check "page: bot token stored (HTTP $s)" [ "$s" = 303 ]
    check "page: credentials listed, values never shown" sh -c \
        "page=\$(curl -sk -b '$pg/jar' https://127.0.0.1:$port/settings/credentials); echo \"\$page\" | grep -q telegram_bot_token && ! echo \"\$page\" | grep -q '$page_tg_token'"

    s=$(form_post /settings/agent "v:agent.provider=openai" "v:agent.model=fake-local" \
        "v:agent.base_url=https://10.0.2.2:$(cat "$pg/llm.port")/v1" "v:agent.secret_name=llm_key" \
        "other_key=agent.prices.fake-local" "other_value={ input_usd_per_mtok = 0.0, output_usd_per_mtok = 0.0 }")
    check "page: agent configured (HTTP $s)" [ "$s" = 303 ]
    s=$(POST_TO=/settings/ca form_post /settings/agent "section=agent" "key=agent.ca_file" "pem@$pg/ca.pem")
    check "page: the LAN model server's CA stored and used (HTTP $s)" [ "$s" = 303 ]
    s=$(POST_TO=/settings/agent/test form_post /settings/agent)
    check "page: test connection reaches the model (HTTP $s)" \
        sh -c "[ '$s' = 200 ] && grep -q 'id=\"provider-test-result\">Connected: openai-compatible answered' '$pg/last.html'"

    s=$(POST_TO=/settings/channels/add form_post /settings/channels "name=telegram" "kind=telegram-polling")
    check "page: Telegram channel added (HTTP $s)" [ "$s" = 303 ]
    s=$(form_post /settings/channels/telegram "v:channels.telegram.transport.api_base=https://10.0.2.2:$(cat "$pg/tg.port")" \
        "v:channels.telegram.transport.token_secret=telegram_bot_token")
    check "page: its Bot API and token named (HTTP $s)" [ "$s" = 303 ]
    s=$(POST_TO=/settings/ca form_post /settings/channels/telegram "section=channels.telegram" \
        "key=channels.telegram.transport.ca_file" "pem@$pg/ca.pem")
    check "page: the platform's CA stored and used (HTTP $s)" [ "$s" = 303 ]
    check "page: the channel runs (its transport polls the fake platform)" \
        page_wait 90 sh -c "curl -sk -b '$pg/jar' https://127.0.0.1:$port/settings/channels | grep -q 'channel-state running'"

    csrf=$(page_get /pairing | csrf_in)
    page_post /pairing/issue "csrf=$csrf" "channel=telegram" "ttl=600" >/dev/null
    code=$(sed -n 's/.*id="pairing-code">\([A-Z0-9]*\)<.*/\1/p' "$pg/last.html" | head -n 1)
    check "page: pairing code issued ($code)" sh -c "[ -n '$code' ]"
    tg_send 111 "/pair $code"
    check "page: the fake platform's user paired (the bot said so)" page_wait 120 tg_sent "Paired"
    tg_send 111 "please write the proof file"
    approval=
    for _ in $(seq 180); do
        approval=$(page_get /approvals | sed -n 's/.*action="\/approvals\/decide"><input type="hidden" name="csrf" value="[0-9a-f]*"><input type="hidden" name="id" value="\([0-9]*\)".*/\1/p' | head -n 1)
        [ -n "$approval" ] && break
        sleep 1
    done
    check "page: the agent's command waits for approval on the page (#$approval)" sh -c "[ -n '$approval' ]"
    csrf=$(page_get /approvals | csrf_in)
    s=$(page_post /approvals/decide "csrf=$csrf" "id=$approval" "decision=approve")
    check "page: approved on the page (HTTP $s)" [ "$s" = 303 ]
    check "page: the command ran in the sandbox and its output reached the platform" page_wait 180 tg_sent "sandboxed-42"
    for k in settings.changed secret.stored approval.requested approval.approved command.started command.finished task.completed; do
        page_get "/audit?kind=$k" > "$pg/audit-$k.html"
        check "page: $k on the audit page" grep -q "<code>$k</code>" "$pg/audit-$k.html"
    done
    page_get /audit > "$pg/audit.html"
    check "page: no secret value on the audit page" sh -c \
        "! cat '$pg'/audit*.html | grep -q -e '$page_llm_key' -e '$page_tg_token'"
    check "page: the fake LLM only saw the stored key" sh -c \
        "grep -q '\"authorized\": true' '$pg/llm.log' && ! grep -q '\"authorized\": false' '$pg/llm.log'"
    echo "    sent by the bot: $(tr '\n' ' ' < "$pg/tg/sent.jsonl" | cut -c1-400)"
}

# A boot of the same disk, firmware variables and TPM, with the admin port
# forwarded; returns when the console report is out (or fails).
page_boot() {
    rm -f "$work/swtpm-page.sock"
    swtpm socket --tpm2 --tpmstate dir="$work/tpm" --ctrl type=unixio,path="$work/swtpm-page.sock" \
        --log file="$work/swtpm-page.log" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -S "$work/swtpm-page.sock" ] && break; sleep 0.1; done
    : > "$work/serial-page.log"
    qemu-system-x86_64 -machine q35 -accel "$accel" -cpu "$cpu" -smp 2 -m 1024 \
        -nodefaults -display none -no-reboot \
        -drive if=pflash,format=raw,readonly=on,file="$ovmf_code" \
        -drive if=pflash,format=raw,file="$work/vars.fd" \
        -drive if=virtio,format=raw,file="$disk" \
        -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8443 -device virtio-net-pci,netdev=n0 \
        -chardev socket,id=chrtpm,path="$work/swtpm-page.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-tis,tpmdev=tpm0 \
        -serial file:"$work/serial-page.log" \
        -monitor unix:"$work/monitor-page.sock",server,nowait \
        >"$work/qemu-page.log" 2>&1 &
    page_qemu=$!
    pids+=($page_qemu)
    local t0
    t0=$(date +%s)
    until tr -d '\r' < "$work/serial-page.log" | grep -q 'end of CoWork OS report'; do
        kill -0 "$page_qemu" 2>/dev/null || return 1
        [ $(( $(date +%s) - t0 )) -gt "${BOOT_TIMEOUT:-900}" ] && return 1
        sleep 2
    done
}

page_after_reboot() {
    echo "test-image: a second boot: is the owner's setup still there?"
    if ! page_boot; then
        bad "page: the second boot reached its console report"
        tail -n 40 "$work/serial-page.log"
        return
    fi
    ok "page: the second boot reached its console report"
    rm -f "$pg/jar"
    local s
    page_wait 120 sh -c "curl -sk -o /dev/null https://127.0.0.1:$port/login" || true
    s=$(login)
    check "page: the owner's password still logs in (HTTP $s)" [ "$s" = 303 ]
    page_get /settings/channels/telegram > "$pg/after-channel.html"
    check "page: the channel's settings survived the reboot" sh -c \
        "grep -q 'telegram_bot_token' '$pg/after-channel.html' && grep -q 'you (this page)' '$pg/after-channel.html'"
    page_get /settings/credentials > "$pg/after-credentials.html"
    check "page: the secrets survived" sh -c \
        "grep -q llm_key '$pg/after-credentials.html' && grep -q telegram_bot_token '$pg/after-credentials.html'"
    page_get /users > "$pg/after-users.html"
    check "page: the paired user survived" grep -q '111' "$pg/after-users.html"
    # Back to the image's own agent and no Telegram: the update boots use their
    # own drop-in and fake LLM.
    s=$(form_post /settings/agent "r:agent.provider=1" "r:agent.model=1" "r:agent.base_url=1" \
        "r:agent.secret_name=1" "r:agent.ca_file=1" "r:agent.prices.fake-local.input_usd_per_mtok=1" \
        "r:agent.prices.fake-local.output_usd_per_mtok=1")
    check "page: the agent's settings reset (HTTP $s)" [ "$s" = 303 ]
    s=$(form_post /settings/channels/telegram "v:channels.telegram.enabled=false")
    check "page: the channel disabled (HTTP $s)" [ "$s" = 303 ]
    monitor "$work/monitor-page.sock" system_powerdown
    for _ in $(seq 180); do kill -0 "$page_qemu" 2>/dev/null || break; sleep 1; done
    if kill -0 "$page_qemu" 2>/dev/null; then bad "page: clean power-off of the second boot"; kill "$page_qemu"; fi
    wait "$page_qemu" 2>/dev/null || true
}
