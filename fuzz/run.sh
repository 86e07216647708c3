#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, nightly) and runs each one, then prints
# per target the executions, executions per second and the result.
#
#   fuzz/run.sh [TARGET...]          each target FUZZ_SECS seconds (default 60)
#   fuzz/run.sh --smoke [TARGET...]  CI: replay the committed corpus, then
#                                    FUZZ_SMOKE_SECS more seconds (default 5)
#
# New inputs go to $CARGO_TARGET_DIR/fuzz/work/corpus/TARGET (the committed
# seeds in fuzz/corpus/ are only read); crashes to .../work/artifacts/TARGET/.
# Without a nightly toolchain it prints SKIPPED (and fails when CI=true).
set -euo pipefail

cd "$(dirname "$0")/.."
smoke=0
if [ "${1:-}" = "--smoke" ]; then
    smoke=1
    shift
fi
secs=${FUZZ_SECS:-60}
[ "$smoke" = 1 ] && secs=${FUZZ_SMOKE_SECS:-5}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIPPED: fuzzing needs a nightly toolchain (rustup toolchain install nightly)"
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

target_dir=${CARGO_TARGET_DIR:-$PWD/target}/fuzz
# A smoke run builds unoptimised (FUZZ_BUILD=dev): building this crate with
# optimisations takes most of the time otherwise, and replaying a corpus
# needs no speed.
build=${FUZZ_BUILD:-release}
[ "$smoke" = 1 ] && build=${FUZZ_BUILD:-dev}
started=$(date +%s)
# No sanitizer: the targets' code is safe Rust (a panic is the finding) and
# the bundled SQLite is not instrumented either way; ASan would halve the speed.
if [ "$build" = dev ]; then
    cargo +nightly fuzz build --dev --sanitizer none --target-dir "$target_dir"
    bin_dir=$target_dir/x86_64-unknown-linux-gnu/debug
else
    cargo +nightly fuzz build --sanitizer none --target-dir "$target_dir"
    bin_dir=$target_dir/x86_64-unknown-linux-gnu/release
fi
built=$(date +%s)
echo "fuzz: built ($build) in $((built - started)) s"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

work=$target_dir/work
failed=()
summary=()
for t in "${targets[@]}"; do
    corpus=$work/corpus/$t
    # A smoke run replays the committed seeds only, the same every time.
    [ "$smoke" = 1 ] && corpus=$work/smoke/$t && rm -rf "$corpus"
    artifacts=$work/artifacts/$t/
    mkdir -p "$corpus" "$artifacts"
    log=$work/$t.log
    echo "fuzz: $t for ${secs} s"
    set +e
    "$bin_dir/$t" "$corpus" "fuzz/corpus/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    if [ -z "$execs" ] && [ -n "$done_line" ]; then
        execs=$(echo "$done_line" | awk '{print $2}')
    fi
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc; log $log; artifacts $artifacts)"
        failed+=("$t")
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 || true
    fi
    summary+=("$(printf '%-26s %12s execs %8s execs/s  %s' "$t" "${execs:-?}" "${rate:-?}" "$result")")
done

echo
echo "fuzz: ${#targets[@]} targets, ${secs} s each (build $((built - started)) s, total $(($(date +%s) - started)) s)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
