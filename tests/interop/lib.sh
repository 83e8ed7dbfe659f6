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
    for cmd in ffmpeg ffprobe rtmpdump nginx python3 timeout stunnel openssl; do
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
            ffmpeg rtmpdump nginx libnginx-mod-rtmp python3 coreutils stunnel4 openssl ||
            log "apt-get install failed"
    else
        log "apt-get not available"
    fi
    missing=()
    for cmd in ffmpeg ffprobe rtmpdump nginx python3 timeout stunnel openssl; do
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

# start_nginx_instance VAR DIR PORT [SERVER_EXTRA [RTMP_EXTRA [MAX_MESSAGE
# [MAIN_EXTRA]]]]: an nginx-rtmp from nginx.conf.in in DIR (conf,
# error.log, stderr.log), listening on 127.0.0.1:PORT (and whatever
# SERVER_EXTRA adds: more listen lines, applications, access_log;
# RTMP_EXTRA goes in the rtmp block: log_format; MAIN_EXTRA at the top
# level: an http block, another error_log). Stores the PID in VAR. Returns 1 (with the logs' tails on
# stderr) if nginx refuses the configuration or does not listen.
start_nginx_instance() {
    local __nvar="$1" __dir="$2" __port="$3" __server_extra="${4:-}" __rtmp_extra="${5:-}"
    local __max_message="${6:-1M}" __main_extra="${7:-}" __npid
    printf -v "$__nvar" '%s' ""
    mkdir -p "$__dir/logs"
    sed -e "s|@MODULE@|$NGX_RTMP_MODULE|g" \
        -e "s|@WORK@|$__dir|g" \
        -e "s|@PORT@|$__port|g" \
        -e "s|@MAX_MESSAGE@|$__max_message|g" \
        "$INTEROP_LIB_DIR/nginx.conf.in" |
        SERVER_EXTRA="$__server_extra" RTMP_EXTRA="$__rtmp_extra" MAIN_EXTRA="$__main_extra" awk '
            $1 == "@MAIN_EXTRA@" { if (ENVIRON["MAIN_EXTRA"] != "") print ENVIRON["MAIN_EXTRA"]; next }
            $1 == "@SERVER_EXTRA@" { if (ENVIRON["SERVER_EXTRA"] != "") print ENVIRON["SERVER_EXTRA"]; next }
            $1 == "@RTMP_EXTRA@" { if (ENVIRON["RTMP_EXTRA"] != "") print ENVIRON["RTMP_EXTRA"]; next }
            { print }' >"$__dir/nginx.conf"
    if ! nginx -t -p "$__dir/" -c "$__dir/nginx.conf" -e "$__dir/error.log" \
        >"$__dir/test.log" 2>&1; then
        cat "$__dir/test.log" >&2
        log "nginx -t refused $__dir/nginx.conf"
        return 1
    fi
    spawn __npid "${NGINX_LIFETIME:-600}" "$__dir/stderr.log" \
        nginx -p "$__dir/" -c "$__dir/nginx.conf" -e "$__dir/error.log"
    printf -v "$__nvar" '%s' "$__npid"
    if ! wait_port "$__port" "$__npid" 15; then
        tail -n 30 "$__dir/stderr.log" "$__dir/error.log" >&2 2>/dev/null || true
        log "nginx-rtmp ($__dir) did not listen on 127.0.0.1:$__port"
        return 1
    fi
    log "nginx-rtmp listening on 127.0.0.1:$__port (pid $__npid, $__dir)"
}

# start_nginx PORT [MAX_MESSAGE]: the main nginx-rtmp upstream (application
# live), in $WORK/nginx; sets NGINX_PID and NGINX_ERROR_LOG.
start_nginx() {
    local port="$1" max_message="${2:-1M}"
    NGINX_ERROR_LOG="$WORK/nginx/error.log"
    start_nginx_instance NGINX_PID "$WORK/nginx" "$port" "" "" "$max_message" ||
        die "nginx-rtmp did not start on 127.0.0.1:$port"
}

# start_gate VAR NAME "PORT..." ARG...: another rtmpgate with ARGs (its own
# --listen/--upstream/--config), log in $WORK/NAME.log; waits for every
# PORT to listen. Stores the PID in VAR. Returns 1 (with the log's tail on
# stderr) if a port does not listen.
start_gate() {
    local __gvar="$1" __name="$2" __ports="$3" __gpid __p
    shift 3
    printf -v "$__gvar" '%s' ""
    spawn __gpid "${RTMPGATE_LIFETIME:-600}" "$WORK/$__name.log" \
        env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 "$RTMPGATE_BIN" "$@"
    printf -v "$__gvar" '%s' "$__gpid"
    for __p in $__ports; do
        if ! wait_port "$__p" "$__gpid" 15; then
            tail -n 30 "$WORK/$__name.log" >&2 || true
            log "rtmpgate $__name did not listen on 127.0.0.1:$__p"
            return 1
        fi
    done
    log "rtmpgate $__name listening on $__ports (pid $__gpid)"
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

# write_haproxy_tls FILE PORT PEM UPSTREAM_PORT MAXCONN IDLE: an HAProxy
# config terminating TLS on 127.0.0.1:PORT (`mode tcp`, `ssl crt PEM`,
# nbthread = cores, no logging) in front of 127.0.0.1:UPSTREAM_PORT, client
# and server timeouts IDLE (e.g. 10m). For the benchmarks' side-by-side runs.
# Optional 7th argument: the highest TLS version offered (e.g. TLSv1.2).
write_haproxy_tls() {
    local file=$1 port=$2 pem=$3 upstream=$4 maxconn=$5 idle=$6 maxver=${7:-}
    cat >"$file" <<CFG
global
    nbthread $(nproc)
    maxconn $maxconn
defaults
    mode tcp
    maxconn $maxconn
    timeout connect 5s
    timeout client $idle
    timeout server $idle
frontend rtmps
    bind 127.0.0.1:$port ssl crt $pem${maxver:+ ssl-max-ver $maxver}
    default_backend origin
backend origin
    server origin 127.0.0.1:$upstream
CFG
}

# write_stunnel_tls FILE PORT UPSTREAM_PORT CRT KEY LOG: a stunnel config
# (foreground, debug 4 to LOG, TCP_NODELAY both sides, 600 s idle) terminating
# TLS on 127.0.0.1:PORT in front of 127.0.0.1:UPSTREAM_PORT. Optional 7th
# argument: the highest TLS version offered (e.g. TLSv1.2).
write_stunnel_tls() {
    local file=$1 port=$2 upstream=$3 crt=$4 key=$5 logfile=$6 maxver=${7:-}
    cat >"$file" <<CFG
foreground = yes
pid =
debug = 4
output = $logfile
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[rtmps]
accept = 127.0.0.1:$port
connect = 127.0.0.1:$upstream
cert = $crt
key = $key
TIMEOUTidle = 600
CFG
    if [[ -n "$maxver" ]]; then echo "sslVersionMax = $maxver" >>"$file"; fi
}

# make_private_ca DIR NAME...: a private CA (DIR/ca.crt, CA:TRUE) and a
# server certificate for NAMEs (DNS names or IPs) signed by it
# (DIR/leaf.crt, DIR/leaf.key, CA:FALSE, serverAuth), ECDSA P-256, valid
# 2 days; openssl's output in DIR/openssl.log. For `--upstream-ca` with a
# real chain (self-signed origins: run.sh's self_signed_origin).
make_private_ca() {
    local dir="$1" san="" n
    shift
    for n in "$@"; do
        if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
    done
    mkdir -p "$dir"
    printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
        "${san%,}" >"$dir/leaf.ext"
    {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj "/CN=rtmpgate interop CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$dir/ca.key" -out "$dir/ca.crt" &&
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=$1" -keyout "$dir/leaf.key" -out "$dir/leaf.csr" &&
            openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
                -CAcreateserial -days 2 -extfile "$dir/leaf.ext" -out "$dir/leaf.crt"
    } >"$dir/openssl.log" 2>&1
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

# stream_check VAR NAME PUBLISH_URL GATE_PLAY_URL DIRECT_PLAY_URL [PUBLISH_URL
# GATE_PLAY_URL DIRECT_PLAY_URL]...: for each group of three URLs starts two
# players (through rtmpgate and directly on nginx), then the publisher; after
# the publishers end (+3 s) stops the players and checks the decoded frames.
# Several groups run at the same time (give each its own stream name); their
# logs are NAME.1.*, NAME.2.*, ... Sets VAR to why it failed (empty if every
# stream passed) and adds the failed streams' logs to CASE_LOGS. VAR must not
# name one of stream_check's locals (name, groups, i, pid, rc, what, ...);
# `why` is fine. The suite sets PUBLISH_SECS, SENT_FRAMES, MIN_PLAYER_FRAMES
# and CASE_LOGS (run.sh, networks.sh). Environment given before the call
# (`http_proxy=… stream_check …`) reaches every ffmpeg it starts.
stream_check() {
    local __svar="$1" name="$2"
    shift 2
    printf -v "$__svar" '%s' ""
    if (($# == 0 || $# % 3 != 0)); then
        printf -v "$__svar" '%s' "stream_check: URLs must come in groups of three"
        return 0
    fi
    local groups=$(($# / 3)) i
    local pfx=() pub_urls=() gate_urls=() direct_urls=()
    local p_gates=() p_directs=() p_pubs=()
    for ((i = 0; i < groups; i++)); do
        if ((groups == 1)); then pfx+=("$name"); else pfx+=("$name.$((i + 1))"); fi
        pub_urls+=("${@:3*i+1:1}")
        gate_urls+=("${@:3*i+2:1}")
        direct_urls+=("${@:3*i+3:1}")
    done
    local pid
    for ((i = 0; i < groups; i++)); do
        spawn_player pid 60 "${pfx[i]}.play_gate" "${gate_urls[i]}"
        p_gates+=("$pid")
        spawn_player pid 60 "${pfx[i]}.play_direct" "${direct_urls[i]}"
        p_directs+=("$pid")
    done
    sleep 1.5 # let the players connect and subscribe before the first keyframe
    for ((i = 0; i < groups; i++)); do
        spawn_publisher pid 40 "${pfx[i]}.publish" "${pub_urls[i]}" "$PUBLISH_SECS"
        p_pubs+=("$pid")
    done
    for pid in "${p_pubs[@]}"; do wait_exit "$pid" 35 || true; done
    sleep 3 # let the last frames reach the players
    stop_pids "${p_gates[@]}" "${p_directs[@]}" "${p_pubs[@]}"
    local __why="" rc n_gate n_direct what
    for ((i = 0; i < groups; i++)); do
        rc=$(exit_code "${p_pubs[i]}")
        n_gate=$(progress_frames "$WORK/${pfx[i]}.play_gate.progress" "$WORK/${pfx[i]}.play_gate.log")
        n_direct=$(progress_frames "$WORK/${pfx[i]}.play_direct.progress" "$WORK/${pfx[i]}.play_direct.log")
        log "${pfx[i]}: publish ${pub_urls[i]} rc=$rc, play ${gate_urls[i]}: frames decoded via rtmpgate=$n_gate direct=$n_direct (sent $SENT_FRAMES, need $MIN_PLAYER_FRAMES)"
        what=""
        if [[ "$rc" != 0 ]]; then
            what="publisher ffmpeg (${pub_urls[i]}) exited with status $rc"
        elif ((n_gate < MIN_PLAYER_FRAMES)); then
            what="player via rtmpgate (${gate_urls[i]}) decoded $n_gate frames, want >= $MIN_PLAYER_FRAMES of $SENT_FRAMES"
        elif ((n_direct < MIN_PLAYER_FRAMES)); then
            what="direct player (${direct_urls[i]}) decoded $n_direct frames, want >= $MIN_PLAYER_FRAMES of $SENT_FRAMES"
        fi
        if [[ -n "$what" ]]; then
            __why="${__why:+$__why; }$what"
            CASE_LOGS+=("$WORK/${pfx[i]}.publish.log" "$WORK/${pfx[i]}.play_gate.log" "$WORK/${pfx[i]}.play_direct.log")
        fi
    done
    printf -v "$__svar" '%s' "$__why"
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

# pass NAME: counts and prints a passed case (each suite defines its own
# `fail NAME WHY [LOG...]`, which knows which logs to show).
pass() {
    PASSED=$((PASSED + 1))
    printf 'PASS %s\n' "$1"
}

# run_cases NAME...: runs `case_NAME` for each, with fresh CASE_LOGS and
# CASE_PIDS, stopping the processes a case started once it returns. An
# unknown case, an aborted one, or one that ends without a PASS or FAIL is a
# failure.
run_cases() {
    local c before
    for c in "$@"; do
        if ! declare -F "case_$c" >/dev/null; then
            fail "$c" "no such case"
            continue
        fi
        log "case $c"
        CASE_LOGS=()
        CASE_PIDS=()
        before=$((PASSED + FAILED))
        "case_$c" || fail "$c" "case aborted (status $?)"
        ((PASSED + FAILED > before)) || fail "$c" "case ended without a verdict"
        if ((${#CASE_PIDS[@]} > 0)); then stop_pids "${CASE_PIDS[@]}"; fi
    done
}
