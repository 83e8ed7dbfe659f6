#!/usr/bin/env bash
# Fuzz smoke run for CI: every cargo-fuzz target in fuzz/fuzz_targets/ for a
# bounded time on the STABLE toolchain (RUSTC_BOOTSTRAP=1 lets stable rustc
# take the -Z flags cargo-fuzz passes: -Zsanitizer=address and friends).
#
#   fuzz/smoke.sh                          # 60 s per target
#   FUZZ_SECONDS=10 fuzz/smoke.sh          # shorter
#   FUZZ_MAX_LEN=4096 fuzz/smoke.sh        # one -max_len for every target
#   FUZZ_TARGETS="amf0 rtmp_chunk" fuzz/smoke.sh
#   FUZZ_JOBS=2 fuzz/smoke.sh              # two targets at a time (2 cores)
#   FUZZ_KEEP_CORPUS=1 fuzz/smoke.sh       # keep the grown corpora (path printed)
#   FUZZ_EXTRA_ARGS="-rss_limit_mb=1024" fuzz/smoke.sh   # more libFuzzer flags
#
# Builds every target once (`cargo fuzz build -O`), then runs each binary on a
# fresh temp copy of seeds/<target> (libFuzzer writes new inputs into its
# first corpus dir, so seeds/ itself is never handed to it). Prints
# `PASS fuzz/<target>` or `FAIL fuzz/<target>: …` per target and a table of
# executions and coverage; exits 1 if any target crashed, leaked, timed out or
# ran out of memory, with the artifact path and how to turn it into a
# regression test. Never uses a nightly toolchain, even when one is installed.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
# Longest input (-max_len). Unset: per target (max_len_for), long enough
# to pass the limits its code enforces; set: the same for every target.
FUZZ_MAX_LEN="${FUZZ_MAX_LEN:-}"
# A single input slower than this (seconds) is reported as a hang.
FUZZ_UNIT_TIMEOUT="${FUZZ_UNIT_TIMEOUT:-30}"
# Targets fuzzed at once (1 per core at most).
FUZZ_JOBS="${FUZZ_JOBS:-1}"
# Extra libFuzzer flags, e.g. FUZZ_EXTRA_ARGS="-rss_limit_mb=1024".
read -r -a FUZZ_EXTRA <<<"${FUZZ_EXTRA_ARGS:-}"

# max_len_for T: -max_len for target T. Small-input parsers keep 4 KiB
# (fast); the stream followers get past their 16 KiB head/command and
# 64 KiB pre-connect/HTTP-buffer limits; the re-chunker past its 256 KiB
# watch limit.
max_len_for() {
    if [[ -n "$FUZZ_MAX_LEN" ]]; then
        echo "$FUZZ_MAX_LEN"
        return
    fi
    case "$1" in
    rtmp_rechunk) echo 300000 ;;
    rtmp_chunk | rtmp_follow | rtmpt_framing) echo 70000 ;;
    *) echo 4096 ;;
    esac
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- toolchain: stable only ------------------------------------------------
# With rustup, pin every cargo/rustc that cargo-fuzz spawns to stable (an
# installed nightly, or a default toolchain set to nightly, is never used).
if command -v rustup >/dev/null 2>&1; then
    export RUSTUP_TOOLCHAIN=stable
fi
export RUSTC_BOOTSTRAP=1
rustc_version="$(rustc --version)"
case "$rustc_version" in
*nightly* | *beta* | *-dev*)
    printf 'FAIL fuzz: rustc is not a stable release: %s\n' "$rustc_version"
    exit 1
    ;;
esac
log "toolchain: $rustc_version (RUSTC_BOOTSTRAP=1)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz missing: cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked >&2 || {
        printf 'FAIL fuzz: cargo install cargo-fuzz --locked failed\n'
        exit 1
    }
fi
log "$(cargo fuzz --version)"

# --- targets -----------------------------------------------------------------
targets=()
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    for f in fuzz_targets/*.rs; do
        t="$(basename "$f" .rs)"
        targets+=("$t")
    done
fi
((${#targets[@]} > 0)) || { printf 'FAIL fuzz: no targets in fuzz/fuzz_targets/\n'; exit 1; }

t0=$(date +%s)
log "building ${#targets[@]} targets: cargo fuzz build -O"
if ! cargo fuzz build -O >&2; then
    printf 'FAIL fuzz/build: cargo fuzz build -O failed on %s\n' "$rustc_version"
    exit 1
fi
t_build=$(($(date +%s) - t0))
log "build took ${t_build}s"
# Where `cargo fuzz build -O` put the binaries (honours CARGO_TARGET_DIR).
host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN_DIR="$target_dir/$host/release"
for t in "${targets[@]}"; do
    [[ -x "$BIN_DIR/$t" ]] || { printf 'FAIL fuzz/%s: no binary at %s after the build\n' "$t" "$BIN_DIR/$t"; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rtmpgate-fuzz-smoke.XXXXXX")"
cleanup() {
    local rc=$?
    if [[ "${FUZZ_KEEP_CORPUS:-0}" == 1 || $rc -ne 0 ]]; then
        log "kept $WORK (corpora and logs)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT

# run_target T: one libFuzzer run of T on a temp copy of its seeds; log in
# $WORK/T.log, exit status in $WORK/T.rc, seconds in $WORK/T.secs.
run_target() {
    local t="$1" corpus="$WORK/corpus/$1" runlog="$WORK/$1.log" ts rc=0
    mkdir -p "$corpus"
    if [[ -d "seeds/$t" ]]; then
        cp -R "seeds/$t/." "$corpus/"
    else
        log "$t: no seeds/$t, starting from an empty corpus"
    fi
    log "fuzzing $t for ${FUZZ_SECONDS}s, -max_len=$(max_len_for "$t") ($(find "$corpus" -type f | wc -l) seed inputs)"
    ts=$(date +%s)
    # The binary built above, run directly (`cargo fuzz run` would rebuild,
    # and every target must run the code that was built once). The
    # wall-clock bound is a backstop; -max_total_time ends a healthy run.
    mkdir -p "$FUZZ_DIR/artifacts/$t" "$WORK/tmp"
    # TMPDIR: config_toml's temp file goes with the rest of $WORK.
    TMPDIR="$WORK/tmp" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" \
        timeout -s TERM -k 10 $((FUZZ_SECONDS + 120)) \
        "$BIN_DIR/$t" -artifact_prefix="$FUZZ_DIR/artifacts/$t/" "$corpus" \
        -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len_for "$t")" \
        -timeout="$FUZZ_UNIT_TIMEOUT" -print_final_stats=1 ${FUZZ_EXTRA[@]+"${FUZZ_EXTRA[@]}"} \
        >"$runlog" 2>&1 </dev/null || rc=$?
    echo "$rc" >"$WORK/$t.rc"
    echo $(($(date +%s) - ts)) >"$WORK/$t.secs"
}

# FUZZ_JOBS targets at a time (each libFuzzer process uses one core).
running=0
for t in "${targets[@]}"; do
    if ((running >= FUZZ_JOBS)); then
        wait -n || true
        running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
done
wait || true

declare -A EXECS COV FT CORPUS STATUS SECS
failed=0
for t in "${targets[@]}"; do
    runlog="$WORK/$t.log"
    rc=$(cat "$WORK/$t.rc" 2>/dev/null || echo "?")
    SECS[$t]=$(cat "$WORK/$t.secs" 2>/dev/null || echo "?")
    EXECS[$t]=$(awk '/^stat::number_of_executed_units:/ { n = $2 } END { print n + 0 }' "$runlog")
    # Coverage from the final DONE line (else the last status line).
    line=$(grep -a -E '^#[0-9]+[[:space:]]+DONE' "$runlog" | tail -n 1 || true)
    [[ -n "$line" ]] || line=$(grep -a -E '^#[0-9]+[[:space:]].* cov: ' "$runlog" | tail -n 1 || true)
    COV[$t]=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")
    FT[$t]=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")
    CORPUS[$t]=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$line")
    artifact=$(grep -a -o 'Test unit written to .*' "$runlog" | tail -n 1 | sed 's/^Test unit written to //' || true)
    if [[ $rc == 0 && -z "$artifact" ]] && grep -a -q '^stat::number_of_executed_units:' "$runlog"; then
        STATUS[$t]=ok
        printf 'PASS fuzz/%s: %s executions in %ss, cov %s\n' "$t" "${EXECS[$t]}" "${SECS[$t]}" "${COV[$t]:-?}"
    else
        failed=$((failed + 1))
        STATUS[$t]=FAIL
        kind=$(grep -a -o -E 'ERROR: (libFuzzer|AddressSanitizer): [a-zA-Z -]+|deadly signal|panicked at [^ ]*' "$runlog" | head -n 1 || true)
        printf 'FAIL fuzz/%s: exit status %s%s\n' "$t" "$rc" "${kind:+ ($kind)}"
        if [[ -n "$artifact" ]]; then
            printf '  artifact: %s\n' "$artifact"
            printf '  show it:  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo +stable fuzz fmt %s %s)\n' "$t" "$artifact"
            printf '  replay:   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo +stable fuzz run -O %s %s)\n' "$t" "$artifact"
            printf '  then fix it and add the input as a regression unit test next to the code in src/\n'
            printf '  (and to fuzz/seeds/%s/ so tests/fuzz_seeds.rs replays it on stable).\n' "$t"
        else
            printf '  no artifact written; libFuzzer log: %s\n' "$runlog"
        fi
        # From the first error line (the panic message, the sanitizer report),
        # else the end of the log.
        first=$(grep -a -n -m 1 -E 'panicked at|==[0-9]+==ERROR|ERROR: libFuzzer' "$runlog" | cut -d: -f1 || true)
        printf -- '----- %s -----\n' "$runlog"
        if [[ -n "$first" ]]; then
            tail -n "+$first" "$runlog" | grep -a -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' | head -n 50
        else
            grep -a -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$runlog" | tail -n 40
        fi
    fi
done
total=$(($(date +%s) - t0))

printf '\nfuzz smoke summary (%s, %ss per target, %s at a time)\n' "$rustc_version" "$FUZZ_SECONDS" "$FUZZ_JOBS"
printf '%-16s %-6s %8s %14s %8s %8s %14s %6s\n' target status max_len executions cov ft corpus secs
for t in "${targets[@]}"; do
    printf '%-16s %-6s %8s %14s %8s %8s %14s %6s\n' "$t" "${STATUS[$t]}" "$(max_len_for "$t")" "${EXECS[$t]}" \
        "${COV[$t]:--}" "${FT[$t]:--}" "${CORPUS[$t]:--}" "${SECS[$t]}"
done
printf 'build %ss, total wall time %ss\n' "$t_build" "$total"
printf 'fuzz-smoke: %d passed, %d failed\n' "$((${#targets[@]} - failed))" "$failed"
((failed == 0))
