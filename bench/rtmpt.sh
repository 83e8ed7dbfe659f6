#!/usr/bin/env bash
# RTMPT benchmarks for rtmpgate against real peers (ffmpeg, rtmpdump, nginx-rtmp),
# on loopback, in one run, variants interleaved, REPS (3) repetitions, medians:
#
#   1. 20 Mbit/s 720p30 live stream published DIRECTLY to nginx-rtmp; ffmpeg
#      players started first: (a) rtmp:// via rtmpgate, (b) rtmpt:// via
#      rtmpgate, (c) rtmp:// direct to nginx (reference), (d) rtmpt:// via a
#      second rtmpgate with --rtmpt-long-poll 20ms (the old default, for
#      comparison). Frames each
#      player decoded by the time the publisher exited, as % of 360 sent.
#   2. End-to-end lag, same players, for that stream and a 1 Mbit/s 320x240@25
#      one (method: see `frames()` in bench/rtmpt_lag.py — showinfo lines of
#      publisher and players stamped with CLOCK_MONOTONIC as they are read,
#      frames matched by pts, steady state only; the RTMPT − RTMP difference is
#      also taken per frame between the two players of the same run).
#   3. rtmpdump (librtmp) playing a 1.5 Mbit/s stream over rtmpt://: rtmpgate
#      CPU (utime+stime from /proc/PID/stat over a 10 s window, % of one core)
#      and request rate (rtmpgate_rtmpt_requests_total), default long-poll
#      (200ms) vs --rtmpt-long-poll 0s vs 20ms (separate rtmpgate instances).
#      The CPU verdict fails if any run's rtmpdump downloaded < 500 kB (it
#      never connected or never played: an idle gateway uses no CPU).
#   4. Bulk publish (ffmpeg -c copy, no -re) of a 50 Mbit/s FLV: direct to
#      nginx, rtmp:// and rtmpt:// (default and -rtmp_flush_interval 1) via
#      rtmpgate, the file BULK_PASSES (10) times per push (-stream_loop);
#      MB/s = bytes rtmpgate relayed upstream (its counter) / wall time, a
#      run counting only if ffmpeg exited 0 and that is >= 90% of the bytes
#      pushed (direct: file bytes / wall time); ratio rtmpt / rtmp.
#   5. 1,000 idle RTMPT sessions (bench/rtmpt_lag.py sessions) against a fresh
#      rtmpgate: VmRSS before/after, bytes per session; then again with each
#      HTTP connection closed after /open (the session alone).
#
# Exit status 1 if a verdict in the table is FAIL (BENCH_STRICT=0: print
# the table and exit 0), as bench/run.sh.
#
# Usage: bash bench/rtmpt.sh            (needs cargo; ~5 min; < 10 min)
#   REPS=3  PHASES="12 3 4 5"  KEEP_WORK=1  RTMPGATE_BIN=/path (skip the build)
#
# Everything runs on 127.0.0.1 with free ephemeral ports in a private temp dir;
# every process is started under `timeout -s TERM -k 5 N` and its PID tracked;
# the EXIT trap stops only those PIDs (TERM, then INT, then KILL).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Process and port helpers shared with the interop suite: spawn, alive,
# wait_exit, exit_code, stop_pid(s), cleanup_all, is_listening, wait_port.
# shellcheck source=tests/interop/lib.sh
source "$HERE/../tests/interop/lib.sh"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
HELPER="$HERE/rtmpt_lag.py"
REPS="${REPS:-3}"
BULK_PASSES="${BULK_PASSES:-10}"
PHASES="${PHASES:-12 3 4 5}"
KEEP_WORK="${KEEP_WORK:-0}"
NGX_RTMP_MODULE="${NGX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}"

TRACKED_PIDS=()
WORK=""
T_START=$SECONDS

log() { printf '[%s +%3ds] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - T_START))" "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

# ------------------------------------------------------------- processes ---

# child_of PID: the (single) child of a `timeout` PID, i.e. the real process.
child_of() { ps -o pid= --ppid "$1" 2>/dev/null | head -n 1 | tr -d ' '; }

# ------------------------------------------------------------------ peers ---

peers_missing() {
    local cmd missing=()
    for cmd in ffmpeg rtmpdump nginx python3 timeout; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [[ -f "$NGX_RTMP_MODULE" ]] || missing+=("$NGX_RTMP_MODULE")
    printf '%s' "${missing[*]}"
}

ensure_peers() {
    local missing sudo=()
    missing="$(peers_missing)"
    [[ -z "$missing" ]] && return 0
    log "missing: $missing; installing with apt-get"
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); fi
    "${sudo[@]}" apt-get update || log "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y \
        ffmpeg rtmpdump nginx libnginx-mod-rtmp python3 coreutils procps || log "apt-get install failed"
    missing="$(peers_missing)"
    [[ -z "$missing" ]] || die "still missing after apt-get: $missing"
}

# ---------------------------------------------------------------- network ---

free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# ---------------------------------------------------------------- servers ---

start_nginx() {
    local port="$1"
    mkdir -p "$WORK/nginx/logs"
    # worker_connections: phase 5 holds 1,000 upstream connections.
    # max_message: the 50 Mbit/s bulk file has I-frames above the 1M default.
    cat >"$WORK/nginx/nginx.conf" <<EOF
load_module $NGX_RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
rtmp {
    server {
        listen 127.0.0.1:$port;
        chunk_size 4096;
        max_message 16M;
        application live { live on; record off; }
    }
}
EOF
    nginx -t -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
        >"$WORK/nginx/test.log" 2>&1 || {
        cat "$WORK/nginx/test.log" >&2
        die "nginx -t refused the configuration"
    }
    spawn NGINX_TPID 900 "$WORK/nginx/stderr.log" \
        nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
    wait_port "$port" "$NGINX_TPID" 15 || {
        tail -n 20 "$WORK/nginx/stderr.log" "$WORK/nginx/error.log" >&2 || true
        die "nginx-rtmp did not listen on 127.0.0.1:$port"
    }
    NGINX_PID="$(child_of "$NGINX_TPID")"
}

# start_gate VAR NAME PORT ADMIN_PORT [EXTRA FLAGS...]: VAR gets the timeout PID.
# Every client of the bench is 127.0.0.x: the per-client caps are lifted.
start_gate() {
    local __var="$1" name="$2" port="$3" admin="$4" tpid
    shift 4
    spawn tpid 900 "$WORK/$name.log" env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
        "$WORK/rtmpgate" --listen "rtmp://127.0.0.1:$port" \
        --upstream "rtmp://127.0.0.1:$NGX_PORT" --admin "127.0.0.1:$admin" \
        --drain-timeout 1s --max-connections-per-client 0 \
        --rtmpt-max-sessions-per-client 100 --rtmpt-open-rate 0 "$@"
    wait_port "$port" "$tpid" 15 && wait_port "$admin" "$tpid" 15 || {
        tail -n 20 "$WORK/$name.log" >&2 || true
        die "rtmpgate $name did not listen on $port/$admin"
    }
    printf -v "$__var" '%s' "$tpid"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
requests_total() { python3 "$HELPER" metric "http://127.0.0.1:$1/metrics" rtmpgate_rtmpt_requests_total; }
relayed_up() { python3 "$HELPER" metric "http://127.0.0.1:$1/metrics" 'rtmpgate_relayed_bytes_total{direction="client_to_upstream"'; }

# spawn_stamped VAR SECS NAME CMD...: CMD's stderr+stdout through a FIFO into
# a `rtmpt_lag.py stamp` process writing $WORK/NAME.st; VAR = CMD's PID.
STAMPERS=()
spawn_stamped() {
    local __v="$1" secs="$2" name="$3" spid
    shift 3
    rm -f "$WORK/$name.fifo"
    mkfifo "$WORK/$name.fifo"
    spawn spid "$((secs + 20))" "$WORK/$name.stamp.log" python3 "$HELPER" stamp "$WORK/$name.st" "$WORK/$name.fifo"
    STAMPERS+=("$spid")
    spawn "$__v" "$secs" "$WORK/$name.fifo" "$@"
}

RESULTS=""
emit() { printf '%s\n' "$1" >>"$RESULTS"; }

# ---------------------------------------------------------------- phases ---

# rotate N WORDS...: the words rotated left by N (interleaving order per rep).
rotate() {
    local n="$1"
    shift
    local a=("$@") i out=()
    for ((i = 0; i < ${#a[@]}; i++)); do out+=("${a[$(((i + n) % ${#a[@]}))]}"); done
    printf '%s ' "${out[@]}"
}

# play_run RATE REP: phases 1 and 2, one publisher, four players.
play_run() {
    local rate="$1" rep="$2" stream="p${1}_$2" fps sent enc pub p url pids=() name
    if [[ "$rate" == 20M ]]; then
        fps=30 sent=360
        enc=(-f lavfi -i testsrc2=size=1280x720:rate=30 -t 12 -vf showinfo
            -c:v libx264 -preset ultrafast -tune zerolatency -b:v 20M -minrate 20M -maxrate 20M
            -bufsize 2M -x264-params nal-hrd=cbr -g 30 -pix_fmt yuv420p)
    else
        fps=25 sent=300
        enc=(-f lavfi -i testsrc2=size=320x240:rate=25 -t 12 -vf showinfo
            -c:v libx264 -preset ultrafast -tune zerolatency -b:v 1M -minrate 1M -maxrate 1M
            -bufsize 100k -x264-params nal-hrd=cbr -g 25 -pix_fmt yuv420p)
    fi
    STAMPERS=()
    for p in $(rotate "$rep" rtmp rtmpt direct rtmpt_lp20); do
        case "$p" in
        rtmp) url="rtmp://127.0.0.1:$GATE_PORT/live/$stream" ;;
        rtmpt) url="rtmpt://127.0.0.1:$GATE_PORT/live/$stream" ;;
        direct) url="rtmp://127.0.0.1:$NGX_PORT/live/$stream" ;;
        rtmpt_lp20) url="rtmpt://127.0.0.1:$GATEL_PORT/live/$stream" ;;
        esac
        # -threads 1: no frame-threading delay in the decoder; -copyts: pts =
        # FLV timestamps; -analyzeduration 1 s: shorter start-up burst.
        spawn_stamped "pid_$p" 60 "$stream.$p" ffmpeg -nostdin -hide_banner -nostats -loglevel info \
            -threads 1 -analyzeduration 1000000 -copyts -rw_timeout 15000000 -i "$url" \
            -map 0:v:0 -vf showinfo -fps_mode passthrough -f null -
        name="pid_$p"
        pids+=("${!name}")
    done
    sleep 1.5 # players connected and waiting (nginx keeps idle streams)
    spawn_stamped pub 40 "$stream.pub" ffmpeg -nostdin -hide_banner -nostats -loglevel info -re \
        "${enc[@]}" -f flv "rtmp://127.0.0.1:$NGX_PORT/live/$stream"
    wait_exit "$pub" 35 || log "publisher $stream did not finish in 35 s"
    local rc
    rc=$(exit_code "$pub")
    [[ "$rc" == 0 ]] || log "publisher $stream exited $rc"
    sleep 1
    stop_pids "${pids[@]}"
    for p in "${STAMPERS[@]}"; do wait_exit "$p" 5 || stop_pid "$p"; done
    python3 "$HELPER" frames --fps "$fps" --sent "$sent" --pub "$WORK/$stream.pub.st" \
        --tag "rate=$rate" --tag "rep=$rep" --pair rtmpt-rtmp --pair rtmpt_lp20-rtmp --pair direct-rtmp \
        rtmp="$WORK/$stream.rtmp.st" rtmpt="$WORK/$stream.rtmpt.st" \
        direct="$WORK/$stream.direct.st" rtmpt_lp20="$WORK/$stream.rtmpt_lp20.st" \
        >"$WORK/$stream.json" || log "analysis of $stream failed"
    cat "$WORK/$stream.json" >>"$RESULTS"
    python3 - "$WORK/$stream.json" <<'EOF' >&2
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    f = lambda v: "n/a" if v is None else "%.1f" % v
    if r["test"] == "play":
        print("    %-12s first_k=%s decoded=%d by_end=%d (%s%%) lag median %s p95 %s ms (n=%d)" % (
            r["player"], r["first_k"], r["decoded"], r["by_end"], f(r["pct_by_end"]),
            f(r["lag_median_ms"]), f(r["lag_p95_ms"]), r["lag_n"]))
    else:
        print("    pair %-18s median %s p95 %s ms (n=%d)" % (r["pair"], f(r["median_ms"]), f(r["p95_ms"]), r["n"]))
EOF
}

# rtmpdump_run LONG_POLL REP: phase 3.
rtmpdump_run() {
    local lp="$1" rep="$2" port admin gpid stream="d${1}_$2" rd rdc pub
    case "$lp" in
    200ms) port=$GATE_PORT admin=$GATE_ADMIN gpid=$GATE_PID ;;
    0s) port=$GATE0_PORT admin=$GATE0_ADMIN gpid=$GATE0_PID ;;
    20ms) port=$GATEL_PORT admin=$GATEL_ADMIN gpid=$GATEL_PID ;;
    esac
    local r_start r0 r1 r_end c0 c1 k0 k1 t0 t1
    r_start=$(requests_total "$admin")
    spawn rd 40 "$WORK/$stream.rtmpdump.log" rtmpdump --live -r "rtmpt://127.0.0.1:$port/live/$stream" -o /dev/null
    sleep 1
    rdc=$(child_of "$rd")
    spawn pub 40 "$WORK/$stream.pub.log" ffmpeg -nostdin -hide_banner -nostats -loglevel warning -re \
        -f lavfi -i testsrc2=size=320x240:rate=25 -t 14 -c:v libx264 -preset ultrafast -tune zerolatency \
        -b:v 1500k -minrate 1500k -maxrate 1500k -bufsize 150k -x264-params nal-hrd=cbr -g 25 \
        -pix_fmt yuv420p -f flv "rtmp://127.0.0.1:$NGX_PORT/live/$stream"
    sleep 2.5
    c0=$(cpu_ticks "$gpid") k0=$(cpu_ticks "$rdc") r0=$(requests_total "$admin") t0=$(now)
    sleep 10
    c1=$(cpu_ticks "$gpid") k1=$(cpu_ticks "$rdc") r1=$(requests_total "$admin") t1=$(now)
    wait_exit "$pub" 20 || true
    exit_code "$pub" >/dev/null
    sleep 0.5
    # rtmpdump busy-polling with --rtmpt-long-poll 0s does not act on
    # TERM/INT (it never leaves librtmp's read loop): TERM, then KILL.
    kill -TERM "$rd" 2>/dev/null || true
    wait_exit "$rd" 2 || { kill -KILL "$rdc" 2>/dev/null || true; }
    stop_pid "$rd"
    sleep 0.2
    r_end=$(requests_total "$admin")
    # Downloaded bytes: rtmpdump's last "N kB" progress figure.
    local kb
    kb=$(tr '\r' '\n' <"$WORK/$stream.rtmpdump.log" | grep -a -o '^[0-9.]* kB' | tail -n 1 | cut -d' ' -f1)
    local row
    row=$(python3 - "$lp" "$rep" "$c0" "$c1" "$k0" "$k1" "$r0" "$r1" "$t0" "$t1" "$r_start" "$r_end" "${kb:-0}" "$CLK_TCK" <<'EOF'
import json, sys
lp, rep, c0, c1, k0, k1, r0, r1, t0, t1, rs, re_, kb, hz = sys.argv[1:]
dt = float(t1) - float(t0)
hz = float(hz)
print(json.dumps({
    "test": "rtmpdump", "long_poll": lp, "rep": rep, "window_s": round(dt, 3),
    "gate_cpu_pct": 100.0 * (float(c1) - float(c0)) / hz / dt,
    "client_cpu_pct": 100.0 * (float(k1) - float(k0)) / hz / dt,
    "req_per_s": (float(r1) - float(r0)) / dt,
    "kbytes": float(kb),
    "requests": float(re_) - float(rs),
    "bytes_per_reply": float(kb) * 1000.0 / max(1.0, float(re_) - float(rs)),
}))
EOF
)
    emit "$row"
    log "    rtmpdump long-poll $lp rep $rep: $row"
}

# bulk_run VARIANT REP: phase 4.
bulk_run() {
    local v="$1" rep="$2" url extra=() pid t0 t1 rc
    case "$v" in
    direct) url="rtmp://127.0.0.1:$NGX_PORT/live/b_${v}_$rep" ;;
    rtmp) url="rtmp://127.0.0.1:$GATE_PORT/live/b_${v}_$rep" ;;
    rtmpt) url="rtmpt://127.0.0.1:$GATE_PORT/live/b_${v}_$rep" ;;
    rtmpt_flush1)
        url="rtmpt://127.0.0.1:$GATE_PORT/live/b_${v}_$rep"
        extra=(-rtmp_flush_interval 1)
        ;;
    esac
    local q0 q1 b0 b1 g0 g1 n0 n1
    q0=$(requests_total "$GATE_ADMIN") b0=$(relayed_up "$GATE_ADMIN")
    g0=$(cpu_ticks "$GATE_PID") n0=$(cpu_ticks "$NGINX_PID")
    t0=$(now)
    # -stream_loop: the file BULK_PASSES times in one push, so that start-up
    # (probe, connect, handshake) is a small part of the wall time.
    spawn pid 120 "$WORK/bulk_${v}_$rep.log" ffmpeg -nostdin -hide_banner -nostats -loglevel warning \
        -stream_loop "$((BULK_PASSES - 1))" -i "$WORK/bulk.flv" -c copy "${extra[@]}" -f flv "$url"
    wait_exit "$pid" 115 || true
    rc=$(exit_code "$pid")
    t1=$(now)
    g1=$(cpu_ticks "$GATE_PID") n1=$(cpu_ticks "$NGINX_PID")
    # rtmpgate adds a connection's/session's bytes when it closes: wait (up
    # to 5 s) until its counter shows the push, the figure MB/s comes from.
    local pushed=$((BULK_SIZE * BULK_PASSES)) i
    for ((i = 0; i < 50; i++)); do
        b1=$(relayed_up "$GATE_ADMIN")
        [[ "$v" == direct ]] && break
        awk -v b0="$b0" -v b1="$b1" -v p="$pushed" 'BEGIN { exit !(b1 - b0 >= 0.9 * p) }' && break
        sleep 0.1
    done
    q1=$(requests_total "$GATE_ADMIN") b1=$(relayed_up "$GATE_ADMIN")
    local row
    row=$(python3 -c '
import json, sys
v, rep, rc, t0, t1, size, q0, q1, b0, b1, g0, g1, n0, n1, hz = sys.argv[1:]
dt = float(t1) - float(t0)
cpu = lambda a, b: 100.0 * (float(b) - float(a)) / float(hz) / dt
req = float(q1) - float(q0)
relayed = float(b1) - float(b0)
# Via rtmpgate: the bytes it relayed upstream, and only if that is the push
# (bench/rtmpt_lag.py bulk_mb_s, which the table uses too); direct: file bytes.
ok = rc == "0" and (v == "direct" or relayed >= 0.9 * int(size))
print(json.dumps({"test": "bulk", "variant": v, "rep": rep, "rc": int(rc), "seconds": round(dt, 3),
                  "mb_s": ((int(size) if v == "direct" else relayed) / 1e6 / dt) if ok else None,
                  "pushed_bytes": int(size), "gate_bytes_up": relayed, "requests": req,
                  "kb_per_request": (int(size) / 1e3 / req) if req else None,
                  "gate_cpu_pct": cpu(g0, g1), "nginx_cpu_pct": cpu(n0, n1),
                  "gate_cpu_ms_per_mb": 1000.0 * (float(g1) - float(g0)) / float(hz) / (int(size) / 1e6)}))
' "$v" "$rep" "$rc" "$t0" "$t1" "$((BULK_SIZE * BULK_PASSES))" "$q0" "$q1" "$b0" "$b1" "$g0" "$g1" "$n0" "$n1" "$CLK_TCK")
    emit "$row"
    log "    bulk $v rep $rep: $row"
    [[ "$rc" == 0 ]] || tail -n 5 "$WORK/bulk_${v}_$rep.log" >&2
}

# sessions_run MODE: phase 5 against a fresh rtmpgate. MODE keepalive: every
# session keeps its HTTP connection (what clients do); fresh: the connection
# is closed after /open, so the figure is the session alone.
sessions_run() {
    local mode="$1" port admin gtpid gpid before ngx_before after later closed ngx_after sp flags=()
    [[ "$mode" == fresh ]] && flags=(--fresh-conns)
    rm -f "$WORK/sessions.ready" "$WORK/sessions.stop"
    read -r port admin < <(free_ports 2)
    start_gate gtpid "gate_mem_$mode" "$port" "$admin"
    gpid=$(child_of "$gtpid")
    sleep 1
    before=$(rss_kb "$gpid") ngx_before=$(rss_kb "$NGINX_PID")
    # 20 source addresses x 50 sessions, under the per-client cap of 100 that
    # start_gate sets (the default, 32, is a security setting, not the
    # subject of this measurement).
    spawn sp 90 "$WORK/sessions_$mode.log" python3 "$HELPER" sessions --port "$port" --count 1000 \
        --sources 20 --ready "$WORK/sessions.ready" --stop "$WORK/sessions.stop" "${flags[@]}"
    local i
    for ((i = 0; i < 600; i++)); do
        [[ -f "$WORK/sessions.ready" ]] && break
        alive "$sp" || break
        sleep 0.1
    done
    [[ -f "$WORK/sessions.ready" ]] || {
        tail -n 20 "$WORK/sessions_$mode.log" >&2
        die "sessions helper did not get ready"
    }
    sleep 1
    after=$(rss_kb "$gpid") ngx_after=$(rss_kb "$NGINX_PID")
    local active
    active=$(python3 "$HELPER" metric "http://127.0.0.1:$admin/metrics" rtmpgate_rtmpt_sessions_active)
    [[ "$mode" == keepalive ]] && sleep 5.5 # one more idle round
    later=$(rss_kb "$gpid")
    touch "$WORK/sessions.stop"
    wait_exit "$sp" 30 || true
    exit_code "$sp" >/dev/null
    sleep 1
    closed=$(rss_kb "$gpid")
    local row
    row=$(python3 - "$WORK/sessions.ready" "$before" "$after" "$later" "$closed" "$ngx_before" "$ngx_after" "$active" "$mode" <<'EOF'
import json, sys
ready = json.load(open(sys.argv[1]))
before, after, later, closed, nb, na, active = (float(x) for x in sys.argv[2:9])
n = max(1, ready["opened"])
print(json.dumps({"test": "sessions", "mode": sys.argv[9], **ready, "active_metric": active,
                  "rss_before_kb": before, "rss_after_kb": after, "rss_later_kb": later, "rss_closed_kb": closed,
                  "bytes_per_session": (after - before) * 1024 / n,
                  "nginx_bytes_per_session": (na - nb) * 1024 / n}))
EOF
)
    emit "$row"
    log "    sessions: $row"
    stop_pid "$gtpid"
}

# ------------------------------------------------------------------ main ---

main() {
    ensure_peers
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/rtmpt-bench.XXXXXX")"
    trap cleanup_all EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    RESULTS="$WORK/results.jsonl"
    : >"$RESULTS"
    CLK_TCK=$(getconf CLK_TCK)
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

    if [[ -n "${RTMPGATE_BIN:-}" ]]; then
        cp "$RTMPGATE_BIN" "$WORK/rtmpgate"
    else
        log "cargo build --release"
        (cd "$REPO_ROOT" && cargo build --release --bin rtmpgate) >"$WORK/build.log" 2>&1 || {
            tail -n 30 "$WORK/build.log" >&2
            die "cargo build --release failed"
        }
        cp "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/rtmpgate" "$WORK/rtmpgate"
    fi
    RTMPGATE_DESC="sha256 $(sha256sum "$WORK/rtmpgate" | cut -c1-12), git $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO_ROOT" diff --quiet -- src 2>/dev/null || echo '+uncommitted src')"
    log "rtmpgate copy: $WORK/rtmpgate ($RTMPGATE_DESC)"

    read -r NGX_PORT GATE_PORT GATE_ADMIN GATE0_PORT GATE0_ADMIN GATEL_PORT GATEL_ADMIN < <(free_ports 7)
    start_nginx "$NGX_PORT"
    local tp
    start_gate tp gate "$GATE_PORT" "$GATE_ADMIN"
    GATE_PID=$(child_of "$tp")
    start_gate tp gate_lp0 "$GATE0_PORT" "$GATE0_ADMIN" --rtmpt-long-poll 0s
    GATE0_PID=$(child_of "$tp")
    start_gate tp gate_lp20 "$GATEL_PORT" "$GATEL_ADMIN" --rtmpt-long-poll 20ms
    GATEL_PID=$(child_of "$tp")
    log "nginx :$NGX_PORT (pid $NGINX_PID); rtmpgate default :$GATE_PORT (pid $GATE_PID), lp0 :$GATE0_PORT (pid $GATE0_PID), lp20 :$GATEL_PORT"

    local rep v
    if has_phase 12; then
        log "phases 1+2: live players (20M 720p30 and 1M 320x240@25), $REPS reps"
        for ((rep = 1; rep <= REPS; rep++)); do
            for v in $(rotate "$((rep + 1))" 20M 1M); do
                log "  play run rate=$v rep=$rep"
                play_run "$v" "$rep"
            done
        done
    fi
    if has_phase 3; then
        log "phase 3: rtmpdump over rtmpt, long-poll 200ms (default) vs 0s vs 20ms, $REPS reps"
        for ((rep = 1; rep <= REPS; rep++)); do
            for v in $(rotate "$((rep + 1))" 200ms 0s 20ms); do rtmpdump_run "$v" "$rep"; done
        done
    fi
    if has_phase 4; then
        log "phase 4: generating the 50 Mbit/s bulk file"
        local gp
        spawn gp 120 "$WORK/bulk_gen.log" ffmpeg -nostdin -hide_banner -nostats -loglevel warning \
            -f lavfi -i testsrc2=size=1280x720:rate=30 -t 25 -c:v libx264 -preset ultrafast \
            -b:v 50M -minrate 50M -maxrate 50M -bufsize 5M -x264-params nal-hrd=cbr -g 30 \
            -pix_fmt yuv420p -f flv "$WORK/bulk.flv"
        wait_exit "$gp" 115 || true
        [[ "$(exit_code "$gp")" == 0 ]] || die "bulk file generation failed: $(tail -n 3 "$WORK/bulk_gen.log")"
        BULK_SIZE=$(stat -c %s "$WORK/bulk.flv")
        emit "{\"test\": \"bulk_file\", \"mb\": $(awk -v s="$BULK_SIZE" 'BEGIN { print s / 1e6 }'), \"passes\": $BULK_PASSES}"
        log "  bulk file: $BULK_SIZE bytes"
        for ((rep = 1; rep <= REPS; rep++)); do
            for v in $(rotate "$rep" rtmp rtmpt rtmpt_flush1 direct); do bulk_run "$v" "$rep"; done
        done
    fi
    if has_phase 5; then
        log "phase 5: 1,000 idle RTMPT sessions"
        sessions_run keepalive
        sessions_run fresh
    fi

    log "done in $((SECONDS - T_START)) s; raw results: $RESULTS"
    echo
    echo "rtmpt bench: $(date -u +%FT%TZ), $(nproc) CPUs, $(ffmpeg -version | head -n 1 | cut -d' ' -f1-3), REPS=$REPS, total $((SECONDS - T_START)) s"
    echo "rtmpgate $RTMPGATE_DESC; loadavg at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this host adds noise)"
    local strict=(--strict)
    [[ "${BENCH_STRICT:-1}" == 0 ]] && strict=()
    python3 "$HELPER" table "${strict[@]}" "$RESULTS"
}

main "$@"
