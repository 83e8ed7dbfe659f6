# Shared helpers for the interop suite (tests/interop/run.sh) and the bulk
# benchmark (bench/bulk_push.sh). Source it from bash with `set -euo pipefail`.
#
# Conventions:
#   - everything runs on 127.0.0.1 inside a private temp dir ($WORK);
#   - every process we start goes through `timeout -s TERM -k 5` and its PID
#     (the timeout's PID) is recorded in TRACKED_PIDS; the EXIT trap stops only
#     those PIDs (and, as a last resort, their direct children), never by name.

# shellcheck shell=bash

INTEROP_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INTEROP_LIB_DIR/../.." && pwd)"
NGX_RTMP_MODULE="${NGX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}"

TRACKED_PIDS=()
WORK=""
KEEP_WORK="${KEEP_WORK:-0}"
RTMPGATE_PID=""
RTMPGATE_LOG=""
NGINX_PID=""
NGINX_ERROR_LOG=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- peers ----

# Installs the Debian peers when any is missing, then re-checks. A peer that
# is still missing is always a failure (in CI and locally): never a skip.
ensure_peers() {
    local missing=()
    local cmd
    for cmd in ffmpeg ffprobe rtmpdump nginx python3 timeout; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [[ -f "$NGX_RTMP_MODULE" ]] || missing+=("$NGX_RTMP_MODULE")
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    log "missing peers: ${missing[*]}; installing with apt-get"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); fi
    fi
    if command -v apt-get >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update || log "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y \
            ffmpeg rtmpdump nginx libnginx-mod-rtmp python3 coreutils ||
            log "apt-get install failed"
    else
        log "apt-get not available"
    fi
    missing=()
    for cmd in ffmpeg ffprobe rtmpdump nginx python3 timeout; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [[ -f "$NGX_RTMP_MODULE" ]] || missing+=("$NGX_RTMP_MODULE (libnginx-mod-rtmp)")
    if ((${#missing[@]} > 0)); then
        printf 'FAIL peers: still missing after install: %s (CI=%s)\n' "${missing[*]}" "${CI:-}" >&2
        exit 1
    fi
}

# Sets RTMPGATE_BIN (builds it with cargo unless already set).
ensure_rtmpgate() {
    if [[ -n "${RTMPGATE_BIN:-}" ]]; then
        [[ -x "$RTMPGATE_BIN" ]] || die "RTMPGATE_BIN=$RTMPGATE_BIN is not an executable"
        return 0
    fi
    log "building rtmpgate (cargo build --release)"
    (cd "$REPO_ROOT" && cargo build --release --bin rtmpgate) >&2 || die "cargo build --release failed"
    RTMPGATE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/rtmpgate"
    [[ -x "$RTMPGATE_BIN" ]] || die "no binary at $RTMPGATE_BIN after the build"
}

# ------------------------------------------------------------ processes ----

# make_workdir PREFIX: creates $WORK and installs the EXIT/INT/TERM traps.
make_workdir() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    trap 'cleanup_all' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# spawn VAR SECS LOGFILE CMD...: runs CMD in the background under
# `timeout -s TERM -k 5 SECS`, stdout+stderr to LOGFILE, stores the PID in
# VAR and tracks it.
spawn() {
    # Locals are __-prefixed so they cannot shadow the caller's VAR.
    local __var="$1" __secs="$2" __logfile="$3"
    shift 3
    timeout -s TERM -k 5 "$__secs" "$@" >"$__logfile" 2>&1 </dev/null &
    local __spid=$!
    TRACKED_PIDS+=("$__spid")
    printf -v "$__var" '%s' "$__spid"
}

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# wait_exit PID SECS: waits up to SECS (may be fractional, 0.1 s steps) for
# PID to end. Returns 0 if it ended.
wait_exit() {
    local pid="$1" secs="$2" i n
    n=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 10 }')
    for ((i = 0; i < n; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    ! alive "$pid"
}

# exit_code PID: reaps a finished background job and prints its status.
exit_code() {
    local rc=0
    wait "$1" 2>/dev/null || rc=$?
    printf '%s' "$rc"
}

# stop_pid PID: TERM, then INT, wait; as a last resort KILL the direct
# children and the PID.
#   - ffmpeg needs two signals to abort a read it is blocked in (the first one
#     only sets a flag once decoding has started);
#   - GNU timeout forwards a signal to its child and to its process group and
#     then IGNORES that signal itself, so a second TERM to the timeout PID is
#     lost: the second signal must be a different one (INT), which timeout
#     forwards too; it also KILLs the child 5 s (-k 5) after the first one.
stop_pid() {
    local pid="$1" child
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 1 && { wait "$pid" 2>/dev/null || true; return 0; }
    kill -INT "$pid" 2>/dev/null || true
    wait_exit "$pid" 6 && { wait "$pid" 2>/dev/null || true; return 0; }
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        kill -KILL "$child" 2>/dev/null || true
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# stop_pids PID...: stops several at once (signals all, then waits).
stop_pids() {
    local pid
    for pid in "$@"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "$@"; do alive "$pid" && kill -INT "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait_exit "$pid" 6 || true; done
    for pid in "$@"; do stop_pid "$pid"; done
}

cleanup_all() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    if ((${#TRACKED_PIDS[@]} > 0)); then
        # Clients first, the servers (started first) last.
        local i
        for ((i = ${#TRACKED_PIDS[@]} - 1; i >= 0; i--)); do
            pid="${TRACKED_PIDS[$i]}"
            alive "$pid" && stop_pid "$pid"
        done
    fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "$KEEP_WORK" == 1 || $rc -ne 0 ]]; then
            log "kept work dir: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

# -------------------------------------------------------------- network ----

# free_ports N: prints N distinct free loopback TCP ports, one per line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
EOF
}

# is_listening PORT: true if a socket LISTENs on 127.0.0.1:PORT (reads
# /proc/net/tcp, so it does not open a connection that would show up in logs).
is_listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v a="0100007F:$hex" -v b="00000000:$hex" \
        '($2 == a || $2 == b) && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
}

# wait_port PORT PID SECS: waits for PORT to listen while PID stays alive.
wait_port() {
    local port="$1" pid="$2" secs="$3" i
    for ((i = 0; i < secs * 10; i++)); do
        is_listening "$port" && return 0
        alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- servers --

# start_nginx PORT [MAX_MESSAGE]: nginx-rtmp upstream with a private conf.
start_nginx() {
    local port="$1" max_message="${2:-1M}"
    mkdir -p "$WORK/nginx/logs"
    NGINX_ERROR_LOG="$WORK/nginx/error.log"
    sed -e "s|@MODULE@|$NGX_RTMP_MODULE|g" \
        -e "s|@WORK@|$WORK/nginx|g" \
        -e "s|@PORT@|$port|g" \
        -e "s|@MAX_MESSAGE@|$max_message|g" \
        "$INTEROP_LIB_DIR/nginx.conf.in" >"$WORK/nginx/nginx.conf"
    nginx -t -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$NGINX_ERROR_LOG" \
        >"$WORK/nginx/test.log" 2>&1 || {
        cat "$WORK/nginx/test.log" >&2
        die "nginx -t refused the generated configuration"
    }
    spawn NGINX_PID "${NGINX_LIFETIME:-600}" "$WORK/nginx/stderr.log" \
        nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$NGINX_ERROR_LOG"
    if ! wait_port "$port" "$NGINX_PID" 15; then
        tail -n 30 "$WORK/nginx/stderr.log" "$NGINX_ERROR_LOG" >&2 2>/dev/null || true
        die "nginx-rtmp did not listen on 127.0.0.1:$port"
    fi
    log "nginx-rtmp listening on 127.0.0.1:$port (pid $NGINX_PID)"
}

# start_rtmpgate UPSTREAM_PORT LISTEN_URL...: starts rtmpgate and waits for
# every listener port.
start_rtmpgate() {
    local upstream_port="$1"
    shift
    local args=() url port
    for url in "$@"; do args+=(--listen "$url"); done
    RTMPGATE_LOG="$WORK/rtmpgate.log"
    spawn RTMPGATE_PID "${RTMPGATE_LIFETIME:-600}" "$RTMPGATE_LOG" \
        env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 "$RTMPGATE_BIN" "${args[@]}" \
        --upstream "rtmp://127.0.0.1:$upstream_port" --drain-timeout 1s
    for url in "$@"; do
        port="${url##*:}"
        if ! wait_port "$port" "$RTMPGATE_PID" 15; then
            tail -n 30 "$RTMPGATE_LOG" >&2 || true
            die "rtmpgate did not listen on $url"
        fi
    done
    log "rtmpgate listening on $* (pid $RTMPGATE_PID)"
}

# ------------------------------------------------------------ ffmpeg -------

# progress_frames FILE [STDERR_LOG]: frames ffmpeg reported: the larger of
# the last frame= of its -progress FILE and of the stats lines in its
# STDERR_LOG (0 if none). Both are needed: after the second signal ffmpeg
# flushes the decoder and prints the final count to stderr, but its final
# write to the -progress file fails ("Immediate exit requested"); after a
# KILL only the periodic -progress lines remain.
progress_frames() {
    local a b
    a=$(grep -a -o '^frame=[0-9]*' "$1" 2>/dev/null | tail -n 1 | cut -d= -f2) || true
    b=""
    if [[ -n "${2:-}" ]]; then
        b=$(tr '\r' '\n' <"$2" 2>/dev/null | grep -a -o 'frame= *[0-9]*' | tail -n 1 | tr -dc '0-9') || true
    fi
    a=${a:-0}
    b=${b:-0}
    printf '%s' "$((a > b ? a : b))"
}

# count_file_frames FILE: decodes FILE's first video stream, prints the count.
count_file_frames() {
    local f="$1"
    timeout -s TERM -k 5 60 ffmpeg -nostdin -hide_banner -loglevel info -i "$f" \
        -map 0:v:0 -fps_mode passthrough -f null - -progress "$f.progress" \
        >"$f.decode.log" 2>&1 || true
    progress_frames "$f.progress" "$f.decode.log"
}

# spawn_player VAR SECS NAME URL: ffmpeg decoding a live rtmp(s):// or
# rtmpt(s):// stream to null, frame count in $WORK/NAME.progress, stderr in
# $WORK/NAME.log.
spawn_player() {
    local __pvar="$1" __secs="$2" __name="$3" __url="$4"
    spawn "$__pvar" "$__secs" "$WORK/$__name.log" \
        ffmpeg -nostdin -hide_banner -loglevel info -stats_period 0.25 \
        -rw_timeout 15000000 -i "$__url" \
        -map 0:v:0 -fps_mode passthrough -f null - -progress "$WORK/$__name.progress"
}

# spawn_publisher VAR SECS NAME URL DURATION: ffmpeg publishing a generated
# 320x240@25 H.264 stream in real time (-re) for DURATION seconds.
spawn_publisher() {
    local __pvar="$1" __secs="$2" __name="$3" __url="$4" __duration="$5"
    spawn "$__pvar" "$__secs" "$WORK/$__name.log" \
        ffmpeg -nostdin -hide_banner -loglevel info -re \
        -f lavfi -i "testsrc=size=320x240:rate=25" -t "$__duration" \
        -c:v libx264 -preset ultrafast -tune zerolatency -g 25 -pix_fmt yuv420p \
        -f flv "$__url"
}

# show_logs FILE...: tails of logs, for failure reports.
show_logs() {
    local f
    for f in "$@"; do
        [[ -f "$f" ]] || continue
        printf -- '----- tail %s -----\n' "$f"
        tail -n "${LOG_TAIL_LINES:-25}" "$f" | sed 's/\r/\n/g' | tail -n "${LOG_TAIL_LINES:-25}"
    done
}
