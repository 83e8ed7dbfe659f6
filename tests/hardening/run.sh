#!/usr/bin/env bash
# Hardening suite: slow-client attacks (slowhttptest, and a slow reader of
# real RTMPT sessions, slow_reader.py) against rtmpgate's
# RTMPT listener, hyper's header-read timeout, and a TLS scan (testssl.sh) of
# its RTMPS listener. Loopback only; every process is bounded (timeout) and
# tracked by PID (tests/interop/lib.sh); the EXIT trap stops only those PIDs.
#
#   tests/hardening/run.sh                     # builds target/release/rtmpgate
#   RTMPGATE_BIN=/path/rtmpgate tests/hardening/run.sh
#   HARDENING_CASES="slowloris tls_scan" tests/hardening/run.sh   # a subset
#   KEEP_WORK=1 tests/hardening/run.sh         # keep the temp dir (always kept on failure)
#
# Peers (slowhttptest, testssl from testssl.sh, curl, python3, openssl) are
# installed with apt-get when missing; a peer still missing is a failure,
# never a skip (CI=true or not), as in tests/interop/run.sh. Prints
# `PASS name` / `FAIL name: why` per case and ends with
# `hardening: N passed, N failed`; exits 1 if any failed.
#
# Setup: one rtmpgate with an rtmpt:// listener (the attack target), an
# rtmps:// listener (ECDSA P-256 certificate from certs/make-dev-cert.sh, the
# TLS scan target) and --admin (/metrics), relaying to a Python TCP echo
# upstream (echo_upstream.py), so a legitimate RTMPT session can check a
# round trip. --max-connections-per-client and
# --rtmpt-max-sessions-per-client are 1000, above the attack's connection
# and session counts plus probes, and --rtmpt-open-rate is 0 (the slow
# reader opens 100 sessions a second), so the attack reaches rtmpgate's
# timeouts instead of being cut short by the per-client limits (it is one
# address).
#
# Cases:
#   header_timeout  raw socket: `POST /open/1 HTTP/1.1\r\n`, then nothing;
#                   rtmpgate must close it within the RTMPT header-read timeout
#                   (hyper's header_read_timeout, 30 s in src/rtmpt/mod.rs)
#                   + 5 s, and not before it - 5 s. Runs alongside slowloris.
#   slowloris       slowhttptest -H: 200 connections trickling header lines.
#   slow_body       slowhttptest -B: 200 POST /open/1 with Content-Length 64
#                   (the /open body limit) trickling the body.
#   slow_read       slow_reader.py: 200 connections, each with a 4 KiB
#                   receive buffer, opening a real RTMPT session (POST
#                   /open/1), sending 192 KiB that the echo upstream returns,
#                   then 4 pipelined POST /idle whose replies carry it; the
#                   first reply must be a 200 of >= 16 KiB (a large reply,
#                   not a 405), then the client reads 1 byte/s. (slowhttptest
#                   -X only GETs a URL: rtmpgate answers 405 at once, so it
#                   never read slowly from a real reply.) Once all are set
#                   up the reader holds them ATTACK_SECS more. Asserts (a)
#                   and (c) below (timed from that moment), that >= 90% of
#                   the connections got a large reply, and that rtmpgate's
#                   sockets held >= 16 KiB of unsent replies (ss Send-Q)
#                   meanwhile: the reader really was slow. Closed means
#                   closed by rtmpgate (its metrics): the reader itself sees
#                   the FIN only after the bytes queued before it.
#   tls_scan        testssl --protocols --cipher-per-proto on the rtmps://
#                   listener: only TLS 1.2 and 1.3, no weak suite.
# Each attack runs for ATTACK_SECS (45 s, longer than the 30 s timeout) and
# asserts: (a) a legitimate RTMPT session (open, idle, send, echo back,
# close: curl, each request on a new connection) succeeds on the same port
# every 8 s while the attack runs; (b) slowhttptest's CSV and stdout never
# report the service unavailable, and the attack did reach its connection
# count; (c) rtmpgate's /metrics show the attack connections closed by
# rtmpgate while the attacker still held them (active connections back near
# the baseline HEADER_TIMEOUT + 8 s into the attack), none left over once the
# attacker is gone, and its peak RSS (VmHWM) stays under RSS_MAX_MB.
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../interop" && pwd)/lib.sh"
HARDENING_DIR="$REPO_ROOT/tests/hardening"

ALL_CASES=(slowloris slow_body slow_read tls_scan)

ATTACK_SECS="${ATTACK_SECS:-45}"
ATTACK_CONNS="${ATTACK_CONNS:-200}"
ATTACK_RATE="${ATTACK_RATE:-100}"
# rtmpgate's RTMPT header-read timeout (not a flag: RtmptSettings::default).
HEADER_TIMEOUT="${HEADER_TIMEOUT:-30}"
RSS_MAX_MB="${RSS_MAX_MB:-150}"
PER_CLIENT_CAP=1000

PASSED=0
FAILED=0
CASE_LOGS=()
CASE_PIDS=()
SUMMARY=()

fail() {
    local name="$1" why="$2"
    shift 2
    FAILED=$((FAILED + 1))
    printf 'FAIL %s: %s\n' "$name" "$why"
    show_logs "$@" ${CASE_LOGS[@]+"${CASE_LOGS[@]}"} "$RTMPGATE_LOG"
}

# ---------------------------------------------------------------- peers ----

ensure_hardening_peers() {
    local cmds=(slowhttptest testssl curl python3 openssl timeout ps ss)
    local missing=() cmd
    for cmd in "${cmds[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
    ((${#missing[@]} == 0)) && return 0
    log "missing peers: ${missing[*]}; installing with apt-get"
    local sudo=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); fi
    if command -v apt-get >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update || log "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y \
            slowhttptest testssl.sh curl python3 openssl coreutils procps iproute2 || log "apt-get install failed"
    else
        log "apt-get not available"
    fi
    missing=()
    for cmd in "${cmds[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
    if ((${#missing[@]} > 0)); then
        printf 'FAIL peers: still missing after install: %s (CI=%s)\n' "${missing[*]}" "${CI:-}" >&2
        exit 1
    fi
}

# ------------------------------------------------------------- helpers -----

# metric NAME_REGEX: sum of the samples of the matching series.
metric() {
    curl -s --max-time 3 "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk -v re="$1" '$1 ~ re { s += $2 } END { printf "%d", s }'
}
active_conns() { metric '^rtmpgate_connections_active\{listener="rtmpt"\}$'; }
closed_conns() { metric '^rtmpgate_connections_closed_total\{protocol="rtmpt",'; }

# proc_kb FIELD: VmRSS / VmHWM of the rtmpgate process, in kB.
proc_kb() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$GATE_REAL_PID/status" 2>/dev/null || echo 0; }

rtmpt_post() { # PATH BODY_FILE OUT_FILE: prints the HTTP status
    curl -s -o "$3" -w '%{http_code}' --max-time 5 -X POST \
        -H 'Content-Type: application/x-fcs' --data-binary "@$2" \
        "http://127.0.0.1:$RTMPT_PORT$1" || true
}

# legit_session TAG: a whole RTMPT session, each request on a new
# connection: open, idle/0, send/1 "TAG", idle until the echo comes back,
# close. Prints "ok MS" or "fail WHY".
legit_session() {
    local tag="$1" d="$WORK/legit.$1" id st i seq got t0
    mkdir -p "$d"
    printf '\0' >"$d/zero"
    printf 'rtmpgate-hardening-%s' "$tag" >"$d/payload"
    t0=$(date +%s%N)
    st=$(rtmpt_post /open/1 "$d/zero" "$d/open")
    id=$(tr -d '\n' <"$d/open" 2>/dev/null || true)
    [[ $st == 200 && $id =~ ^[0-9a-f]{32}$ ]] || { echo "fail open: HTTP $st ($(head -c 80 "$d/open" 2>/dev/null))"; return; }
    st=$(rtmpt_post "/idle/$id/0" "$d/zero" "$d/idle0")
    [[ $st == 200 ]] || { echo "fail idle/0: HTTP $st"; return; }
    st=$(rtmpt_post "/send/$id/1" "$d/payload" "$d/send1")
    [[ $st == 200 ]] || { echo "fail send/1: HTTP $st"; return; }
    # Replies are a delay byte plus server bytes: the echo may come in the
    # send's reply or a later idle's.
    got=$(tail -c +2 "$d/send1")
    seq=2
    for ((i = 0; i < 10; i++)); do
        [[ $got == *"rtmpgate-hardening-$tag"* ]] && break
        st=$(rtmpt_post "/idle/$id/$seq" "$d/zero" "$d/idle$seq")
        [[ $st == 200 ]] || { echo "fail idle/$seq: HTTP $st"; return; }
        got+=$(tail -c +2 "$d/idle$seq")
        seq=$((seq + 1))
    done
    [[ $got == *"rtmpgate-hardening-$tag"* ]] || { echo "fail: no echo after $seq requests"; return; }
    st=$(rtmpt_post "/close/$id/$seq" "$d/zero" "$d/close")
    [[ $st == 200 ]] || { echo "fail close/$seq: HTTP $st"; return; }
    echo "ok $((($(date +%s%N) - t0) / 1000000))"
}

# header_probe OUT: raw socket, a request line and nothing else; writes
# "closed SECS", "data SECS", or "open SECS" to OUT.
spawn_header_probe() {
    local __var="$1" out="$2"
    spawn "$__var" $((HEADER_TIMEOUT + 30)) "$out" \
        python3 "$HARDENING_DIR/header_probe.py" "$RTMPT_PORT" $((HEADER_TIMEOUT + 15))
}

# ------------------------------------------------------------- attacks -----

# attack NAME SLOWHTTPTEST_ARGS...: runs one slowhttptest attack and checks
# (a), (b), (c) above.
attack() {
    local name="$1"
    shift
    local out="$WORK/$name" st_pid="" probe_pid="" base_active base_closed
    CASE_LOGS+=("$out.stdout")
    base_active=$(active_conns)
    base_closed=$(closed_conns)
    local rss0 hwm0
    rss0=$(proc_kb VmRSS)
    if [[ $name == slowloris && " ${cases[*]} " == *" header_timeout "* ]]; then
        spawn_header_probe probe_pid "$WORK/header_probe.out"
        CASE_PIDS+=("$probe_pid")
    fi
    log "$name: slowhttptest $* (baseline: $base_active active, RSS $((rss0 / 1024)) MiB)"
    spawn st_pid $((ATTACK_SECS + 60)) "$out.stdout" \
        slowhttptest "$@" -c "$ATTACK_CONNS" -r "$ATTACK_RATE" -l "$ATTACK_SECS" -p 3 \
        -u "http://127.0.0.1:$RTMPT_PORT/open/1" -g -o "$out"
    CASE_PIDS+=("$st_pid")
    local t0 el check_at=$((HEADER_TIMEOUT + 8)) peak_active=0 a at_check="" legit_ok=0 legit_fail=() r
    # The first legitimate session once all attack connections are open
    # (ATTACK_CONNS / ATTACK_RATE = 2 s), then every 8 s.
    local next_legit=3
    t0=$(date +%s)
    while alive "$st_pid"; do
        el=$(($(date +%s) - t0))
        a=$(active_conns)
        ((a > peak_active)) && peak_active=$a
        if [[ -z $at_check ]] && ((el >= check_at)); then at_check=$a; fi
        if ((el >= next_legit && el < ATTACK_SECS - 2)); then
            r=$(legit_session "$name.$el")
            if [[ $r == ok* ]]; then
                legit_ok=$((legit_ok + 1))
                log "$name: t=${el}s legit RTMPT session ok (${r#ok } ms), $a rtmpt connections active"
            else
                legit_fail+=("t=${el}s: ${r#fail }")
                log "$name: t=${el}s legit RTMPT session FAILED: ${r#fail }"
            fi
            next_legit=$((next_legit + 8))
        fi
        sleep 1
        ((el < ATTACK_SECS + 50)) || break
    done
    local st_rc
    st_rc=$(exit_code "$st_pid")
    el=$(($(date +%s) - t0))
    # The attacker is gone: whatever is still active was left behind.
    local after_active=0 i
    for ((i = 0; i < 50; i++)); do
        after_active=$(active_conns)
        ((after_active <= base_active)) && break
        sleep 0.1
    done
    [[ -n $at_check ]] || at_check=$after_active
    local closed_delta=$(($(closed_conns) - base_closed))
    local rss1 hwm1
    rss1=$(proc_kb VmRSS)
    hwm1=$(proc_kb VmHWM)

    # slowhttptest's own view: CSV "Seconds,Closed,Pending,Connected,Service Available"
    local csv="$out.csv" stats
    stats=$(awk -F, 'NR > 1 {
            if ($4 > maxc) maxc = $4
            if ($2 > 0 && first == "") first = $1
            if ($5 + 0 == 0) unavail++
            last_closed = $2; rows++ }
        END { printf "%d %s %d %d %d", maxc, (first == "" ? "-" : first), last_closed, unavail, rows }' "$csv" 2>/dev/null || echo "0 - 0 0 0")
    local max_conn first_close last_closed unavail rows
    read -r max_conn first_close last_closed unavail rows <<<"$stats"
    local plain no_lines exit_status
    plain=$(sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' "$out.stdout")
    no_lines=$(grep -c -E 'service available:[[:space:]]*NO' <<<"$plain" || true)
    exit_status=$(grep -o 'Exit status: .*' <<<"$plain" | tail -n 1 | sed 's/^Exit status: //')
    local line
    line=$(printf '%-10s slowhttptest: %s/%s connected, first closed by the server at %ss, %s closed, ended "%s" after %ss; rtmpgate (over a baseline of %s): peak %s, %s still open at %ss, %s left after the attacker exited, %s closed; legit sessions %d ok of %d; RSS %d->%d MiB, HWM %d MiB' \
        "$name" "$max_conn" "$ATTACK_CONNS" "$first_close" "$last_closed" "$exit_status" "$el" \
        "$base_active" $((peak_active - base_active)) $((at_check - base_active)) "$check_at" \
        $((after_active - base_active)) "$closed_delta" "$legit_ok" \
        "$((legit_ok + ${#legit_fail[@]}))" $((rss0 / 1024)) $((rss1 / 1024)) $((hwm1 / 1024)))
    SUMMARY+=("$line")
    log "$line"

    local why=()
    ((rows > 0)) || why+=("no slowhttptest CSV ($csv), status $st_rc")
    ((max_conn * 10 >= ATTACK_CONNS * 9)) || why+=("the attack reached only $max_conn of $ATTACK_CONNS connections")
    ((unavail == 0 && no_lines == 0)) || why+=("slowhttptest reported the service unavailable ($unavail CSV rows, $no_lines status lines)")
    ((${#legit_fail[@]} == 0 && legit_ok >= 1)) ||
        why+=("legitimate RTMPT sessions during the attack: $legit_ok ok, failed: ${legit_fail[*]:-none}")
    ((at_check - base_active <= ATTACK_CONNS / 10)) ||
        why+=("$((at_check - base_active)) attack connections still open in rtmpgate ${check_at}s into the attack (header timeout ${HEADER_TIMEOUT}s): rtmpgate did not close them")
    ((after_active <= base_active + 2)) ||
        why+=("$((after_active - base_active)) connections still active in rtmpgate 5 s after the attacker exited (leaked; see ss -tan state close-wait)")
    ((closed_delta * 10 >= ATTACK_CONNS * 9)) || why+=("rtmpgate counted only $closed_delta closed connections")
    ((hwm1 / 1024 <= RSS_MAX_MB)) || why+=("rtmpgate peak RSS $((hwm1 / 1024)) MiB > $RSS_MAX_MB MiB")
    alive "$RTMPGATE_PID" || why+=("rtmpgate exited")
    if ((${#why[@]} > 0)); then
        if ((after_active > base_active + 2)); then
            ss -tan "( sport = :$RTMPT_PORT )" 2>/dev/null | awk 'NR > 1 { print $1 }' | sort | uniq -c |
                sed 's/^/  socket states on the rtmpt port: /' >&2 || true
        fi
        fail "$name" "$(printf '%s; ' "${why[@]}" | sed 's/; $//')"
    else
        pass "$name"
    fi

    if [[ -n $probe_pid ]]; then
        wait_exit "$probe_pid" $((HEADER_TIMEOUT + 20)) || true
        check_header_probe
    fi
}

check_header_probe() {
    local res kind secs
    res=$(head -n 1 "$WORK/header_probe.out" 2>/dev/null || true)
    read -r kind secs _ <<<"$res"
    local lo=$((HEADER_TIMEOUT - 5)) hi=$((HEADER_TIMEOUT + 5))
    SUMMARY+=("$(printf '%-10s request line only: %s after %ss (timeout %ss)' header_timeout "${kind:-?}" "${secs:-?}" "$HEADER_TIMEOUT")")
    if [[ $kind == closed ]] && awk -v s="$secs" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(s >= lo && s <= hi) }'; then
        log "header_timeout: a connection that sent only 'POST /open/1 HTTP/1.1\\r\\n' was closed after ${secs}s"
        pass header_timeout
    else
        fail header_timeout "want the connection closed within ${lo}..${hi}s; got: ${res:-no result}" "$WORK/header_probe.out"
    fi
}

case_slowloris() {
    # Header lines of up to 24 bytes every 5 s: never a complete head.
    attack slowloris -H -i 5 -x 24 -t POST
}

case_slow_body() {
    # Content-Length 64 is the largest /open body rtmpgate takes (more is
    # 413 at once); 1-2 bytes every 5 s would take minutes to finish.
    attack slow_body -B -i 5 -x 2 -s 64 -f application/x-fcs -t POST
}

case_slow_read() {
    local name=slow_read out="$WORK/slow_read" rd="" base_active base_closed rss0
    CASE_LOGS+=("$out.log")
    base_active=$(active_conns)
    base_closed=$(closed_conns)
    rss0=$(proc_kb VmRSS)
    log "$name: slow_reader.py, $ATTACK_CONNS sessions at $ATTACK_RATE/s for ${ATTACK_SECS}s (baseline: $base_active active)"
    rm -f "$out.ready"
    spawn rd $((ATTACK_SECS + 120)) "$out.log" python3 "$HARDENING_DIR/slow_reader.py" \
        --port "$RTMPT_PORT" --conns "$ATTACK_CONNS" --rate "$ATTACK_RATE" --secs "$ATTACK_SECS" \
        --ready "$out.ready"
    CASE_PIDS+=("$rd")
    local t0 el check_at=$((HEADER_TIMEOUT + 8)) peak_active=0 a at_check="" legit_ok=0 legit_fail=() r
    local next_legit=3 sendq max_sendq=0 t_start setup_secs
    t_start=$(date +%s)
    # Set-up (sessions opened, large replies pending) takes a while; the
    # clock of (a) and (c) starts once every connection is reading slowly.
    while alive "$rd" && [[ ! -s $out.ready ]] && (($(date +%s) - t_start < 60)); do sleep 0.2; done
    t0=$(date +%s)
    setup_secs=$((t0 - t_start))
    log "$name: set up in ${setup_secs}s: $(cat "$out.ready" 2>/dev/null || echo 'not ready')"
    while alive "$rd"; do
        el=$(($(date +%s) - t0))
        a=$(active_conns)
        ((a > peak_active)) && peak_active=$a
        # Reply bytes rtmpgate wrote that the reader has not taken yet.
        sendq=$(ss -tnH state established "( sport = :$RTMPT_PORT )" 2>/dev/null |
            awk '{ s += $2 } END { printf "%d", s }')
        ((sendq > max_sendq)) && max_sendq=$sendq
        if [[ -z $at_check ]] && ((el >= check_at)); then at_check=$a; fi
        if ((el >= next_legit && el < ATTACK_SECS - 2)); then
            r=$(legit_session "$name.$el")
            if [[ $r == ok* ]]; then
                legit_ok=$((legit_ok + 1))
                log "$name: t=${el}s legit RTMPT session ok (${r#ok } ms), $a rtmpt connections active, ${sendq} B unsent to the reader"
            else
                legit_fail+=("t=${el}s: ${r#fail }")
                log "$name: t=${el}s legit RTMPT session FAILED: ${r#fail }"
            fi
            next_legit=$((next_legit + 8))
        fi
        sleep 1
        ((el < ATTACK_SECS + 50)) || break
    done
    el=$(($(date +%s) - t0))
    local after_active=0 i
    for ((i = 0; i < 50; i++)); do
        after_active=$(active_conns)
        ((after_active <= base_active)) && break
        sleep 0.1
    done
    [[ -n $at_check ]] || at_check=$after_active
    local closed_delta=$(($(closed_conns) - base_closed)) rss1 hwm1
    rss1=$(proc_kb VmRSS)
    hwm1=$(proc_kb VmHWM)
    # The reader's own view (last line of its output, JSON).
    local opened=0 large=0 eof=0 held=0 errors=""
    read -r opened large eof held errors < <(tail -n 1 "$out.log" | python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
except ValueError:
    print("0 0 0 0 no-JSON-from-slow_reader.py"); sys.exit()
print(d["opened"], d["large"], d["eof"], d["held"], "; ".join(d["errors"]).replace(" ", "_") or "-")') || true
    local line
    line=$(printf '%-10s slow_reader: %s/%s sessions opened, %s large replies (set up in %ss), reader saw %s EOF, %s open on its side at the end; rtmpgate (over a baseline of %s): peak %s, %s still open %ss after set-up, %s left after the reader exited, %s closed, peak unsent %s B; legit sessions %d ok of %d; RSS %d->%d MiB, HWM %d MiB' \
        "$name" "$opened" "$ATTACK_CONNS" "$large" "$setup_secs" "$eof" "$held" "$base_active" \
        $((peak_active - base_active)) $((at_check - base_active)) "$check_at" $((after_active - base_active)) \
        "$closed_delta" "$max_sendq" "$legit_ok" "$((legit_ok + ${#legit_fail[@]}))" \
        $((rss0 / 1024)) $((rss1 / 1024)) $((hwm1 / 1024)))
    SUMMARY+=("$line")
    log "$line"

    local why=()
    ((large * 10 >= ATTACK_CONNS * 9)) ||
        why+=("only $large of $ATTACK_CONNS connections got a large reply to read slowly (opened $opened; errors: ${errors//_/ })")
    ((max_sendq >= 16384)) || why+=("rtmpgate never had more than $max_sendq B of replies unsent: the reader was not slow")
    ((${#legit_fail[@]} == 0 && legit_ok >= 1)) ||
        why+=("legitimate RTMPT sessions during the attack: $legit_ok ok, failed: ${legit_fail[*]:-none}")
    ((at_check - base_active <= ATTACK_CONNS / 10)) ||
        why+=("$((at_check - base_active)) slow readers still connected in rtmpgate ${check_at}s after set-up: it did not close them")
    ((closed_delta * 10 >= ATTACK_CONNS * 9)) || why+=("rtmpgate counted only $closed_delta closed connections")
    ((after_active <= base_active + 2)) ||
        why+=("$((after_active - base_active)) connections still active in rtmpgate 5 s after the reader exited (leaked)")
    ((hwm1 / 1024 <= RSS_MAX_MB)) || why+=("rtmpgate peak RSS $((hwm1 / 1024)) MiB > $RSS_MAX_MB MiB")
    alive "$RTMPGATE_PID" || why+=("rtmpgate exited")
    if ((${#why[@]} > 0)); then
        fail "$name" "$(printf '%s; ' "${why[@]}" | sed 's/; $//')"
    else
        pass "$name"
    fi
}

case_header_timeout() {
    # Alone; with slowloris it runs inside case_slowloris (see attack and main).
    local probe_pid=""
    spawn_header_probe probe_pid "$WORK/header_probe.out"
    CASE_PIDS+=("$probe_pid")
    wait_exit "$probe_pid" $((HEADER_TIMEOUT + 20)) || true
    check_header_probe
}

# -------------------------------------------------------------- TLS scan ---

case_tls_scan() {
    local name=tls_scan json="$WORK/testssl.json" out="$WORK/testssl.out" pid="" t0
    CASE_LOGS+=("$out")
    t0=$(date +%s)
    spawn pid 300 "$out" testssl --quiet --color 0 --warnings off --connect-timeout 5 \
        --openssl-timeout 5 --protocols --cipher-per-proto --jsonfile "$json" \
        "127.0.0.1:$RTMPS_PORT"
    CASE_PIDS+=("$pid")
    wait_exit "$pid" 310 || true
    local rc
    rc=$(exit_code "$pid")
    local secs=$(($(date +%s) - t0))
    [[ -s $json ]] || { fail "$name" "testssl wrote no JSON (status $rc, ${secs}s)"; return 0; }
    local verdict
    verdict=$(python3 - "$json" <<'EOF'
import json, re, sys
findings = json.load(open(sys.argv[1]))
by_id = {f["id"]: f.get("finding", "") for f in findings}
problems = []
protocols = {}
for p in ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"]:
    f = by_id.get(p)
    if f is None:
        problems.append(f"no result for {p}")
        continue
    offered = f.startswith("offered")
    protocols[p] = offered
    if p in ("TLS1_2", "TLS1_3") and not offered:
        problems.append(f"{p} not offered ({f})")
    if p not in ("TLS1_2", "TLS1_3") and offered:
        problems.append(f"{p} offered ({f})")
ciphers = []
weak = re.compile(r"NULL|EXP|RC4|DES|MD5|anon|ADH|AECDH|PSK|SRP|CAMELLIA|ARIA|SEED|IDEA|CBC|-SHA$|_SHA$")
for f in findings:
    if not f["id"].startswith("cipher-tls"):
        continue
    cols = f["finding"].split()
    # "TLS 1.2 xc02c ECDHE-ECDSA-AES256-GCM-SHA384 ECDH 253 AESGCM 256 TLS_ECDHE_..."
    proto = " ".join(cols[0:2])
    openssl_name, iana = cols[3], cols[-1]
    kx = " ".join(cols[4:6])
    ciphers.append(f"{proto} {cols[2]} {iana} ({openssl_name}, {kx})")
    if weak.search(openssl_name) or weak.search(iana) or not re.search(r"GCM|CHACHA20|CCM", iana):
        problems.append(f"weak cipher suite offered: {proto} {iana}")
if not ciphers:
    problems.append("no cipher suites listed")
print("protocols: " + ", ".join(f"{p} {'offered' if o else 'not offered'}" for p, o in protocols.items()))
for c in ciphers:
    print("cipher: " + c)
for p in problems:
    print("PROBLEM: " + p)
EOF
    ) || verdict="PROBLEM: could not parse $json"
    printf '%s\n' "$verdict" | sed 's/^/  /' >&2
    SUMMARY+=("$(printf '%-10s %s (%ss)' tls_scan "$(grep '^protocols:' <<<"$verdict")" "$secs")")
    while IFS= read -r l; do SUMMARY+=("           $l"); done < <(grep '^cipher:' <<<"$verdict")
    if grep -q '^PROBLEM' <<<"$verdict"; then
        fail "$name" "$(grep '^PROBLEM' <<<"$verdict" | sed 's/^PROBLEM: //' | paste -sd ';' -)"
    elif ! alive "$RTMPGATE_PID"; then
        fail "$name" "rtmpgate exited during the scan"
    else
        pass "$name"
    fi
}

# ----------------------------------------------------------------- main ----

main() {
    local t_start
    t_start=$(date +%s)
    cases=(header_timeout "${ALL_CASES[@]}")
    if [[ -n "${HARDENING_CASES:-}" ]]; then
        read -r -a cases <<<"$HARDENING_CASES"
    fi
    ensure_hardening_peers
    ensure_rtmpgate
    make_workdir rtmpgate-hardening
    log "work dir $WORK, rtmpgate $RTMPGATE_BIN"

    local ports up_pid=""
    mapfile -t ports < <(free_ports 4)
    UPSTREAM_PORT=${ports[0]} RTMPT_PORT=${ports[1]} RTMPS_PORT=${ports[2]} ADMIN_PORT=${ports[3]}
    spawn up_pid 900 "$WORK/upstream.log" python3 "$HARDENING_DIR/echo_upstream.py" "$UPSTREAM_PORT"
    wait_port "$UPSTREAM_PORT" "$up_pid" 10 || die "the echo upstream did not listen on $UPSTREAM_PORT"
    mkdir -p "$WORK/certs"
    bash "$REPO_ROOT/certs/make-dev-cert.sh" "$WORK/certs" 127.0.0.1 localhost >&2 ||
        die "certs/make-dev-cert.sh failed"
    RTMPGATE_LOG="$WORK/rtmpgate.log"
    RTMPGATE_LIFETIME=900 start_gate RTMPGATE_PID rtmpgate "$RTMPT_PORT $RTMPS_PORT $ADMIN_PORT" \
        --listen "rtmpt://127.0.0.1:$RTMPT_PORT" --listen "rtmps://127.0.0.1:$RTMPS_PORT" \
        --tls-cert "$WORK/certs/dev.crt" --tls-key "$WORK/certs/dev.key" \
        --upstream "rtmp://127.0.0.1:$UPSTREAM_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
        --max-connections-per-client "$PER_CLIENT_CAP" \
        --rtmpt-max-sessions-per-client "$PER_CLIENT_CAP" --rtmpt-open-rate 0 \
        --drain-timeout 1s ||
        die "rtmpgate did not start"
    # start_gate tracks the timeout's PID; rtmpgate is its child (env execs it).
    GATE_REAL_PID=$(ps -o pid= --ppid "$RTMPGATE_PID" | tr -d ' ' | head -n 1)
    [[ -n $GATE_REAL_PID ]] || die "no rtmpgate process under $RTMPGATE_PID"
    local r
    r=$(legit_session warmup)
    [[ $r == ok* ]] || die "a plain RTMPT session fails before any attack: $r"
    log "rtmpgate pid $GATE_REAL_PID; a legitimate RTMPT session before the attacks: ${r#ok } ms"

    # With slowloris in the run, header_timeout is measured inside it (same
    # port, same time) and reported from there.
    local run=() c
    for c in "${cases[@]}"; do
        if [[ $c == header_timeout && " ${cases[*]} " == *" slowloris "* ]]; then continue; fi
        run+=("$c")
    done
    run_cases "${run[@]}"

    printf '\nhardening summary (rtmpt://127.0.0.1:%s, %s connections at %s/s for %ss each, per-client cap %s)\n' \
        "$RTMPT_PORT" "$ATTACK_CONNS" "$ATTACK_RATE" "$ATTACK_SECS" "$PER_CLIENT_CAP"
    local l
    for l in ${SUMMARY[@]+"${SUMMARY[@]}"}; do printf '%s\n' "$l"; done
    printf 'rtmpgate RSS at the end %d MiB, peak (VmHWM) %d MiB; wall time %ss\n' \
        $(($(proc_kb VmRSS) / 1024)) $(($(proc_kb VmHWM) / 1024)) $(($(date +%s) - t_start))
    printf 'hardening: %d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

main "$@"
