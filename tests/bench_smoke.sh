#!/usr/bin/env bash
# Smoke test of the proxy benchmark (bench/run.sh), after a check that the
# bench/rtmpt.sh verdicts can fail (bench/rtmpt_lag.py selftest): every workload against
# rtmpgate, HAProxy and stunnel with tiny sizes (one repetition), then checks
# that every table cell got a number and that every loadgen check passed;
# then the opt-in push workload (bench/bulk_push.sh driven by bench/run.sh,
# a 1 s FLV, next to a tiny bulk run so both views are tabled) and
# bench/auth.sh (stream authorization) with tiny sizes, the same way.
# No timing is asserted. Well under 2 minutes after the build.
#
#   bash tests/bench_smoke.sh
#   RTMPGATE_BIN=... LOADGEN_BIN=... bash tests/bench_smoke.sh   (skip the build)
#
# Peers (stunnel4, haproxy, iperf3, openssl) are installed with apt-get when
# missing; under CI=true a peer still missing fails the test (bench/run.sh
# exits 1), locally its column would say n/a and this test fails on that too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# bench/rtmpt.sh's verdicts must be able to fail (no peers needed).
python3 "$ROOT/bench/rtmpt_lag.py" selftest || { echo "FAIL bench_smoke: rtmpt_lag selftest"; exit 1; }
OUTDIR="$(mktemp -d "${TMPDIR:-/tmp}/bench-smoke.XXXXXX")"
trap 'rm -rf "$OUTDIR"' EXIT

# Build first (outside the timed part), unless binaries are given.
if [[ -z "${RTMPGATE_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
    (cd "$ROOT" && timeout -s TERM -k 5 1800 cargo build --release --bin rtmpgate --example loadgen) >&2
    export RTMPGATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/rtmpgate"
    export LOADGEN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/loadgen"
fi

start=$SECONDS
rc=0
REPS=1 BULK_BYTES=20000000 BULK_CONNS="1 2" HS_CONNS=4 HS_SECS=1 LAT_COUNT=100 \
    HOLD_COUNTS=50 STALL_COUNTS=20 HOLD_SECS=2 HOLD_RATE=500 HOLD_INTERVAL_MS=500 RTMPT_BYTES=5000000 \
    LIMIT_SECS=1 OUT="$OUTDIR/report.md" \
    timeout -s TERM -k 10 300 bash "$ROOT/bench/run.sh" >"$OUTDIR/out.txt" 2>"$OUTDIR/err.txt" || rc=$?
elapsed=$((SECONDS - start))

fail() {
    printf 'FAIL bench_smoke: %s\n' "$1"
    echo "----- bench/run.sh stdout (tail) -----"
    tail -n 60 "$OUTDIR/out.txt" || true
    echo "----- bench/run.sh stderr (tail) -----"
    tail -n 40 "$OUTDIR/err.txt" || true
    exit 1
}

((rc == 0)) || fail "bench/run.sh exited with status $rc"
[[ -s "$OUTDIR/report.md" ]] || fail "no report written"
grep -q '^loadgen checks: [0-9]* runs, 0 failed, 0 hold shortfalls$' "$OUTDIR/out.txt" ||
    fail "loadgen checks failed: $(grep '^loadgen checks' "$OUTDIR/out.txt" || echo 'no summary line')"

# Every table must exist and every cell be a number (or a dash for columns
# that do not apply, in the RTMPT table only).
for title in "Physical limits" "Bulk push" "Full handshakes" "Resumed handshakes" \
    "Latency" "Idle and stalled connections held" "RTMPT vs RTMP"; do
    grep -q "^### $title" "$OUTDIR/report.md" || fail "table '$title' missing"
done
if grep -n 'n/a\|nan\| ok)' "$OUTDIR/report.md"; then
    fail "some cells have no number (n/a) or failed runs (k/n ok)"
fi
for col in rtmpgate HAProxy stunnel; do
    grep -q "| workload | rtmpgate | HAProxy | stunnel |" "$OUTDIR/report.md" || fail "column $col missing"
done
rows=$(grep -c '^| TLS\|^| [0-9,]* conns' "$OUTDIR/report.md" || true)
((rows >= 20)) || fail "only $rows data rows in the proxy tables"
# Resumption must actually have happened against every proxy.
if grep '^| TLS .* resumed % |' "$OUTDIR/report.md" | grep -q '| 0.000 \|| 0 '; then
    fail "a proxy never resumed a session"
fi

# The opt-in push workload: ffmpeg -c copy of a 1 s FLV (~35 MB) over the
# six paths (the five of bench/bulk_push.sh plus its encoder_tls ceiling), once per TLS version, plus the Rust client's bulk rows for the
# side-by-side table (~15 s). Its extra peers (ffmpeg, nginx-rtmp, the ones
# bench/auth.sh needs below) are installed by bench/run.sh when missing.
push_start=$SECONDS
rc=0
REPS=1 BULK_BYTES=20000000 BULK_CONNS=1 PUSH_SECS=1 WORKLOADS="bulk push" OUT="$OUTDIR/push.md" \
    timeout -s TERM -k 10 300 bash "$ROOT/bench/run.sh" >"$OUTDIR/push.txt" 2>"$OUTDIR/push_err.txt" || rc=$?
push_elapsed=$((SECONDS - push_start))
push_fail() {
    printf 'FAIL bench_smoke: WORKLOADS="bulk push" bench/run.sh: %s\n' "$1"
    echo "----- stdout (tail) -----"
    tail -n 40 "$OUTDIR/push.txt" || true
    echo "----- stderr (tail) -----"
    tail -n 40 "$OUTDIR/push_err.txt" || true
    exit 1
}
((rc == 0)) || push_fail "exited with status $rc"
grep -q '^loadgen checks: [0-9]* runs, 0 failed, 0 hold shortfalls$' "$OUTDIR/push.txt" ||
    push_fail "checks failed: $(grep '^loadgen checks' "$OUTDIR/push.txt" || echo 'no summary line')"
for title in "ffmpeg-driven RTMPS push" "Both views"; do
    grep -q "^### $title" "$OUTDIR/push.md" || push_fail "table '$title' missing"
done
if grep -n 'n/a\|nan\| ok)' "$OUTDIR/push.md"; then push_fail "some cells have no number or failed runs"; fi
grep -q '^| workload | direct rtmp:// | ffmpeg tls:// → sink | rtmpgate rtmp:// | rtmpgate rtmps:// | HAProxy | stunnel | rtmpgate/HAProxy | rtmpgate/stunnel |$' \
    "$OUTDIR/push.md" || push_fail "push table columns"
push_rows=$(grep -c '^| TLS [0-9.]* \(MB/s\|ratio to direct\|proxy CPU\) ' "$OUTDIR/push.md" || true)
((push_rows == 4 * $(wc -w <<<"${TLS_VERSIONS:-1.3 1.2}"))) || push_fail "$push_rows push rows"
both_rows=$(grep -c '^| TLS [0-9.]* \(Rust client\|ffmpeg\) ' "$OUTDIR/push.md" || true)
((both_rows == push_rows)) || push_fail "$both_rows side-by-side rows"

# The stream authorization benchmark (bench/auth.sh), tiny: one latency run
# and one bulk round per gate, every figure must be a number. Its peers
# (ffmpeg, nginx-rtmp) are installed by it when missing, as in the interop
# suite.
auth_start=$SECONDS
rc=0
LAT_RUNS=1 ROUNDS=1 BENCH_SECS=1 \
    timeout -s TERM -k 10 300 bash "$ROOT/bench/auth.sh" >"$OUTDIR/auth.txt" 2>"$OUTDIR/auth_err.txt" || rc=$?
auth_elapsed=$((SECONDS - auth_start))
auth_fail() {
    printf 'FAIL bench_smoke: bench/auth.sh: %s\n' "$1"
    echo "----- bench/auth.sh stdout (tail) -----"
    tail -n 30 "$OUTDIR/auth.txt" || true
    echo "----- bench/auth.sh stderr (tail) -----"
    tail -n 40 "$OUTDIR/auth_err.txt" || true
    exit 1
}
((rc == 0)) || auth_fail "exited with status $rc"
grep -q '^auth bench: 4 runs, 0 failed$' "$OUTDIR/auth.txt" ||
    auth_fail "$(grep '^auth bench' "$OUTDIR/auth.txt" || echo 'no summary line')"
auth_rows=$(grep -c '^publish -> first frame\|^authorization round trip\|^webhook request\|^bulk rtmps push' "$OUTDIR/auth.txt" || true)
((auth_rows == 5)) || auth_fail "$auth_rows of the 5 result rows"
if grep -n 'nan' "$OUTDIR/auth.txt"; then auth_fail "a figure is not a number"; fi

echo "bench_smoke: passed ($rows rows, bench/run.sh took ${elapsed}s after the build; push ${push_elapsed}s; bench/auth.sh ${auth_elapsed}s)"
