#!/usr/bin/env bash
# Scale-out suite: several rtmpgate replicas behind a real HTTP balancer
# (HAProxy from examples/haproxy/haproxy.cfg, nginx from
# examples/nginx/rtmpt-replicas.conf), nginx-rtmp as the origin, real ffmpeg
# clients over rtmpt:// (and rtmp:// / rtmps:// for HAProxy's TCP
# frontends). Loopback only; every process is bounded (timeout) and tracked by
# PID; the EXIT trap stops only those PIDs.
#
#   tests/scaleout/run.sh                       # builds target/release/rtmpgate
#   RTMPGATE_BIN=/path/rtmpgate tests/scaleout/run.sh
#   SCALEOUT_CASES="drain_one_replica" tests/scaleout/run.sh   # a subset
#   KEEP_WORK=1 tests/scaleout/run.sh           # keep the temp dir (always kept on failure)
#
# Peers (haproxy, nginx + libnginx-mod-rtmp, ffmpeg, rtmpdump, curl, python3) are
# installed with apt-get when missing; a peer still missing is a failure,
# never a skip (CI=true or not). Prints `PASS name` / `FAIL name: why` per
# case and ends with `scaleout: N passed, N failed`; exits 1 if any failed.
#
# The balancer configurations are the shipped examples, with only their
# demo addresses rewritten to free ports (a test-only variant for the
# control run drops the stick rules). Replica N runs with --replica-tag N
# and is server rN / upstream rtmpgate_N in the examples.
#
# About "every request on a new connection": ffmpeg (http.c,
# ff_http_do_new_request) and librtmp both give up on an RTMPT session when a
# reply says `Connection: close`, so the clients cannot be forced to
# reconnect per request. What makes connection affinity unable to hide a
# routing bug is on the balancer side: both examples route every request on
# its own and close (or never reuse) the server connection after each
# response. haproxy_sticky proves it with a control run (the same HAProxy
# without the stick rules breaks the stream with 404s), and the curl probes
# send every request of a session on a new TCP connection.
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../interop" && pwd)/lib.sh"

HAPROXY_EXAMPLE="${HAPROXY_EXAMPLE:-$REPO_ROOT/examples/haproxy/haproxy.cfg}"
NGINX_EXAMPLE="${NGINX_EXAMPLE:-$REPO_ROOT/examples/nginx/rtmpt-replicas.conf}"

ALL_CASES=(haproxy_sticky haproxy_tcp_frontends nginx_tag_routing drain_one_replica kill_one_replica)

FPS=25
REPLICAS=3

PASSED=0
FAILED=0
CASE_LOGS=()
CASE_PIDS=()

# fail NAME WHY [LOG...]: records a failure, prints the tails of LOGs and of
# the case's own logs (CASE_LOGS).
fail() {
    local name="$1" why="$2"
    shift 2
    FAILED=$((FAILED + 1))
    printf 'FAIL %s: %s\n' "$name" "$why"
    show_logs "$@" ${CASE_LOGS[@]+"${CASE_LOGS[@]}"} >&2
}

min_frames() { printf '%s' $(($1 * FPS * 90 / 100)); }

# ---------------------------------------------------------------- peers ----

ensure_scaleout_peers() {
    local cmds=(ffmpeg ffprobe rtmpdump nginx haproxy curl python3 timeout ps)
    local missing=() cmd
    for cmd in "${cmds[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
    [[ -f "$NGX_RTMP_MODULE" ]] || missing+=("$NGX_RTMP_MODULE")
    ((${#missing[@]} == 0)) && return 0
    log "missing peers: ${missing[*]}; installing with apt-get"
    local sudo=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); fi
    if command -v apt-get >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update || log "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y \
            ffmpeg rtmpdump nginx libnginx-mod-rtmp haproxy curl python3 coreutils procps ||
            log "apt-get install failed"
    else
        log "apt-get not available"
    fi
    missing=()
    for cmd in "${cmds[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
    [[ -f "$NGX_RTMP_MODULE" ]] || missing+=("$NGX_RTMP_MODULE (libnginx-mod-rtmp)")
    if ((${#missing[@]} > 0)); then
        printf 'FAIL peers: still missing after install: %s (CI=%s)\n' "${missing[*]}" "${CI:-}"
        printf 'scaleout: 0 passed, 1 failed\n'
        exit 1
    fi
}

# Builds rtmpgate unless RTMPGATE_BIN is set. Other people edit src/ while
# this runs: a failed build is retried after a minute (twice).
ensure_scaleout_rtmpgate() {
    if [[ -n "${RTMPGATE_BIN:-}" ]]; then
        [[ -x "$RTMPGATE_BIN" ]] || die "RTMPGATE_BIN=$RTMPGATE_BIN is not an executable"
        return 0
    fi
    local attempt
    for attempt in 1 2 3; do
        log "building rtmpgate (cargo build --release), attempt $attempt"
        if (cd "$REPO_ROOT" && cargo build --release --bin rtmpgate) >&2; then
            RTMPGATE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/rtmpgate"
            [[ -x "$RTMPGATE_BIN" ]] || die "no binary at $RTMPGATE_BIN after the build"
            return 0
        fi
        ((attempt < 3)) && { log "build failed (someone mid-edit?); retrying in 60 s"; sleep 60; }
    done
    printf 'FAIL build: cargo build --release failed 3 times\n'
    printf 'scaleout: 0 passed, 1 failed\n'
    exit 1
}

# -------------------------------------------------------------- helpers ----

# gate_pid TIMEOUT_PID: the rtmpgate process under lib.sh's `timeout`
# wrapper (env execs it). Signals go to it, never to the wrapper: GNU
# timeout would forward a TERM and then KILL the child 5 s later (-k 5).
gate_pid() {
    local p
    p=$(ps -o pid= --ppid "$1" 2>/dev/null | head -n 1 | tr -d ' ') || true
    printf '%s' "$p"
}

# metric ADMIN_PORT NAME [LABELS]: value of a Prometheus sample (sum of the
# samples of NAME whose labels contain LABELS); 0 if absent or unreachable.
metric() {
    local port="$1" name="$2" labels="${3:-}"
    curl -s --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null |
        awk -v n="$name" -v l="$labels" '
            $1 !~ /^#/ {
                key = $1; base = key; sub(/\{.*/, "", base)
                if (base == n && (l == "" || index(key, l) > 0)) s += $2
            }
            END { printf "%d", s }'
}

# replica_summary: one line of each replica's RTMPT counters, for the log.
replica_summary() {
    local i a out=""
    for ((i = 0; i < REPLICAS; i++)); do
        a=${R_ADMIN[i]}
        out+="r$i: opened=$(metric "$a" rtmpgate_rtmpt_requests_total 'verb="open",status="200"')"
        out+=" open_503=$(metric "$a" rtmpgate_rtmpt_requests_total 'verb="open",status="503"')"
        out+=" session_reqs=$(($(metric "$a" rtmpgate_rtmpt_requests_total 'verb="send"') + \
            $(metric "$a" rtmpgate_rtmpt_requests_total 'verb="idle"') + \
            $(metric "$a" rtmpgate_rtmpt_requests_total 'verb="close"')))"
        out+=" unknown=$(metric "$a" rtmpgate_rtmpt_unknown_session_requests_total)"
        out+=" active=$(metric "$a" rtmpgate_rtmpt_sessions_active); "
    done
    printf '%s' "${out%; }"
}

unknown_total() {
    local i n=0
    for ((i = 0; i < REPLICAS; i++)); do
        n=$((n + $(metric "${R_ADMIN[i]}" rtmpgate_rtmpt_unknown_session_requests_total)))
    done
    printf '%s' "$n"
}

# holder_of_session: index of the one replica with an active RTMPT session
# (prints nothing unless exactly one replica has exactly one).
holder_of_session() {
    local i n found="" count=0
    for ((i = 0; i < REPLICAS; i++)); do
        n=$(metric "${R_ADMIN[i]}" rtmpgate_rtmpt_sessions_active)
        if ((n > 0)); then
            count=$((count + 1))
            ((n == 1)) && found=$i
        fi
    done
    ((count == 1)) && printf '%s' "$found"
    return 0
}

# session_id_of LOG: the RTMPT session id ffmpeg used (from its "Opening
# 'http://…/send/<id>/<seq>'" lines).
session_id_of() {
    grep -a -o '/send/[A-Za-z0-9_-]*\.[0-9a-f]*/' "$1" 2>/dev/null | head -n 1 | cut -d/ -f3
    return 0
}

# sessions_of_tag_in LOG: the distinct well-formed session ids in a
# balancer's log, with their request counts ("id:count").
sessions_of_tag_in() {
    grep -a -o -E '/(send|idle|close)/[0-9]+\.[0-9a-f]{32}/' "$1" 2>/dev/null | cut -d/ -f3 |
        sort | uniq -c | awk '{ printf "%s:%s\n", $2, $1 }'
    return 0
}

# rtmpt_post URL: one POST on a new TCP connection (curl), body 0x00;
# prints "STATUS SESSION_HEADER BODY_FIRST_LINE".
rtmpt_post() {
    local url="$1" out status hdr body
    out=$(curl -s --max-time 5 -X POST -H 'Content-Type: application/x-fcs' \
        --data-binary "@$WORK/zero.bin" -D "$WORK/curl.hdr" -o "$WORK/curl.body" \
        -w '%{http_code}' "$url" 2>/dev/null) || true
    status=${out:-000}
    hdr=$(tr -d '\r' <"$WORK/curl.hdr" 2>/dev/null | awk -F': *' 'tolower($1) == "x-rtmpt-session" { print $2 }') || true
    body=$(head -c 200 "$WORK/curl.body" 2>/dev/null | LC_ALL=C tr -dc 'A-Za-z0-9._-' | head -c 80) || true
    printf '%s %s %s' "$status" "${hdr:--}" "${body:--}"
}

# probe_sessions VAR NAME BASE_URL: opens REPLICAS sessions through the
# balancer, then /idle twice and /close on each, every request on its own
# TCP connection. Each open must answer 200 with the id in the body and in
# X-Rtmpt-Session, the opens must land on every replica (round robin), and
# every later request must answer 200 (it reached the session's replica).
# Sets VAR to why it failed (empty on success).
probe_sessions() {
    local __var="$1" name="$2" base="$3" k seq r status hdr body ids=() tags=""
    printf -v "$__var" '%s' ""
    for ((k = 0; k < REPLICAS; k++)); do
        r=$(rtmpt_post "$base/open/1")
        read -r status hdr body <<<"$r"
        if [[ "$status" != 200 || "$hdr" != "$body" || ! "$body" =~ ^[0-9]+\.[0-9a-f]{32}$ ]]; then
            printf -v "$__var" '%s' "/open through the balancer: status $status, X-Rtmpt-Session '$hdr', body '$body'"
            return 0
        fi
        ids+=("$body")
        tags+="${body%%.*} "
    done
    local distinct
    distinct=$(tr ' ' '\n' <<<"$tags" | sed '/^$/d' | sort -u | wc -l)
    log "$name: probe sessions opened on replicas (tags) $tags"
    if ((distinct != REPLICAS)); then
        printf -v "$__var" '%s' "round-robin /open reached tags '$tags', want all $REPLICAS replicas"
        return 0
    fi
    local id
    for id in "${ids[@]}"; do
        for seq in 1 2; do
            read -r status _ _ <<<"$(rtmpt_post "$base/idle/$id/$seq")"
            if [[ "$status" != 200 ]]; then
                printf -v "$__var" '%s' "/idle/$id/$seq on a new connection: status $status (misrouted?)"
                return 0
            fi
        done
        read -r status _ _ <<<"$(rtmpt_post "$base/close/$id/3")"
        if [[ "$status" != 200 ]]; then
            printf -v "$__var" '%s' "/close/$id/3 on a new connection: status $status"
            return 0
        fi
    done
}

# ------------------------------------------------------------ replicas -----

R_TPID=()
R_PORT=()
R_TLS=()
R_ADMIN=()

# start_replicas NAME QUERY [ARG...]: REPLICAS rtmpgates with --replica-tag
# 0..N-1, each with rtmp:// and rtmps:// listeners (URL query QUERY, e.g.
# "?proxy_protocol=1") and an admin port, relaying to the case's nginx-rtmp.
start_replicas() {
    local name="$1" query="$2" i pid ports
    shift 2
    mapfile -t ports < <(free_ports $((REPLICAS * 3)))
    R_TPID=() R_PORT=() R_TLS=() R_ADMIN=()
    for ((i = 0; i < REPLICAS; i++)); do
        R_PORT+=("${ports[3 * i]}")
        R_TLS+=("${ports[3 * i + 1]}")
        R_ADMIN+=("${ports[3 * i + 2]}")
        CASE_LOGS+=("$WORK/$name.r$i.log")
        if ! start_gate pid "$name.r$i" "${R_PORT[i]} ${R_TLS[i]} ${R_ADMIN[i]}" \
            --replica-tag "$i" \
            --listen "rtmp://127.0.0.1:${R_PORT[i]}$query" \
            --listen "rtmps://127.0.0.1:${R_TLS[i]}$query" \
            --admin "127.0.0.1:${R_ADMIN[i]}" \
            --upstream "rtmp://127.0.0.1:$NGINX_PORT" \
            --drain-timeout 60s "$@"; then
            CASE_PIDS+=("$pid")
            return 1
        fi
        CASE_PIDS+=("$pid")
        R_TPID+=("$pid")
    done
}

# ------------------------------------------------------------ HAProxy ------

H_TPID=""
H_HTTP=""
H_RTMP=""
H_RTMPS=""
H_STATS=""
H_SOCK=""
H_LOG=""

# start_haproxy NAME [nostick]: HAProxy from examples/haproxy/haproxy.cfg
# in $WORK/NAME, its demo addresses mapped to free ports and the current
# replicas; "nostick" drops the stick rules (control run). Waits until the
# RTMPT backend sees every replica UP.
start_haproxy() {
    local name="$1" variant="${2:-}" dir="$WORK/$1" ports i pid
    mkdir -p "$dir"
    mapfile -t ports < <(free_ports 4)
    H_HTTP=${ports[0]} H_RTMP=${ports[1]} H_RTMPS=${ports[2]} H_STATS=${ports[3]}
    H_SOCK="$dir/haproxy.sock"
    H_LOG="$dir/haproxy.log"
    CASE_LOGS+=("$H_LOG")
    # Two passes (demo address -> token -> port), so a free port can never be
    # rewritten again by a later pattern.
    local toks=(-e 's|/run/haproxy/rtmpgate\.sock|@SOCK@|g'
        -e 's|127\.0\.0\.1:8080\b|@HTTP@|g' -e 's|127\.0\.0\.1:1935\b|@RTMP@|g'
        -e 's|127\.0\.0\.1:10443\b|@RTMPS@|g' -e 's|127\.0\.0\.1:8404\b|@STATS@|g')
    local fill=(-e "s|@SOCK@|$H_SOCK|g" -e "s|@HTTP@|127.0.0.1:$H_HTTP|g"
        -e "s|@RTMP@|127.0.0.1:$H_RTMP|g" -e "s|@RTMPS@|127.0.0.1:$H_RTMPS|g"
        -e "s|@STATS@|127.0.0.1:$H_STATS|g")
    for ((i = 0; i < REPLICAS; i++)); do
        toks+=(-e "s|127\.0\.0\.1:1936$i\b|@PLAIN$i@|g" -e "s|127\.0\.0\.1:1844$i\b|@TLS$i@|g"
            -e "s|port 1910$i\b|port @ADMIN$i@|g")
        fill+=(-e "s|@PLAIN$i@|127.0.0.1:${R_PORT[i]}|g" -e "s|@TLS$i@|127.0.0.1:${R_TLS[i]}|g"
            -e "s|@ADMIN$i@|${R_ADMIN[i]}|g")
    done
    sed "${toks[@]}" "$HAPROXY_EXAMPLE" >"$dir/tokens.cfg"
    if grep -v '^[[:space:]]*#' "$dir/tokens.cfg" | grep -n -E '127\.0\.0\.1:[0-9]|[[:space:]]port [0-9]|/run/'; then
        log "$HAPROXY_EXAMPLE has addresses this test does not know how to map (above)"
        return 1
    fi
    sed "${fill[@]}" "$dir/tokens.cfg" >"$dir/haproxy.cfg"
    if [[ "$variant" == nostick ]]; then
        sed -i -E '/^[[:space:]]*stick[[:space:]-]/d' "$dir/haproxy.cfg"
    fi
    if ! haproxy -c -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1; then
        cat "$dir/check.log" >&2
        log "haproxy -c refused $dir/haproxy.cfg"
        return 1
    fi
    spawn pid 600 "$H_LOG" haproxy -db -f "$dir/haproxy.cfg"
    CASE_PIDS+=("$pid")
    H_TPID=$pid
    wait_port "$H_HTTP" "$pid" 10 || { log "haproxy did not listen on $H_HTTP"; return 1; }
    for ((i = 0; i < REPLICAS; i++)); do
        wait_haproxy_state rtmpgate_rtmpt "r$i" '^UP$' 10 ||
            { log "haproxy: rtmpgate_rtmpt/r$i is '$(haproxy_state rtmpgate_rtmpt "r$i")', not UP"; return 1; }
    done
    log "haproxy ($name${variant:+, $variant}) on http $H_HTTP, rtmp $H_RTMP, rtmps $H_RTMPS (pid $pid)"
}

# haproxy_state BACKEND SERVER: the server's status in `show stat` (UP,
# NOLB, DOWN, "UP 1/2", ...), via the stats socket.
haproxy_state() {
    python3 - "$H_SOCK" "$1" "$2" <<'EOF'
import socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(sys.argv[1])
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError:
    sys.exit(0)
for line in data.decode(errors="replace").splitlines():
    f = line.split(",")
    if len(f) > 17 and f[0] == sys.argv[2] and f[1] == sys.argv[3]:
        print(f[17])
        break
EOF
}

# wait_haproxy_state BACKEND SERVER ERE SECS
wait_haproxy_state() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        [[ "$(haproxy_state "$1" "$2")" =~ $3 ]] && return 0
        sleep 0.1
    done
    return 1
}

# haproxy_routing LOG: checks HAProxy's request log. Prints "TOTAL WRONG
# NON200 PER_SERVER": session requests logged, how many went to a server
# other than rN for an id tagged N, how many did not answer 200, and the
# count per server.
haproxy_routing() {
    awk '
        $NF ~ /^HTTP\// && $(NF-1) ~ /^\/(send|idle|close)\// {
            split($(NF-1), p, "/"); tag = p[3]; sub(/\..*/, "", tag)
            srv = $4; sub(/.*\//, "", srv)
            total++; per[srv]++
            if (srv != "r" tag) wrong++
            # -1 with a C... termination state: the client hung up (a player
            # being stopped).
            if ($6 != 200 && !($6 == -1 && $10 ~ /^C/)) bad++
        }
        END {
            s = ""; for (k in per) s = s k "=" per[k] ","
            printf "%d %d %d %s", total, wrong, bad, (s == "" ? "-" : s)
        }' "$1"
}

# -------------------------------------------------------- nginx (http) -----

B_TPID=""
B_HTTP=""
B_ACCESS=""

# start_balancer_nginx NAME: nginx (http) with examples/nginx/rtmpt-replicas.conf
# included, its demo addresses mapped to free ports and the current replicas;
# access log: "$request_uri $status $upstream_addr".
start_balancer_nginx() {
    local name="$1" dir="$WORK/$1" i pid
    mkdir -p "$dir/tmp"
    B_HTTP=$(free_ports 1)
    B_ACCESS="$dir/access.log"
    CASE_LOGS+=("$dir/error.log" "$B_ACCESS")
    local toks=(-e 's|127\.0\.0\.1:8080\b|@HTTP@|g') fill=(-e "s|@HTTP@|127.0.0.1:$B_HTTP|g")
    for ((i = 0; i < REPLICAS; i++)); do
        toks+=(-e "s|127\.0\.0\.1:1936$i\b|@PLAIN$i@|g")
        fill+=(-e "s|@PLAIN$i@|127.0.0.1:${R_PORT[i]}|g")
    done
    sed "${toks[@]}" "$NGINX_EXAMPLE" >"$dir/tokens.conf"
    if grep -v '^[[:space:]]*#' "$dir/tokens.conf" | grep -n -E '127\.0\.0\.1:[0-9]'; then
        log "$NGINX_EXAMPLE has addresses this test does not know how to map (above)"
        return 1
    fi
    sed "${fill[@]}" "$dir/tokens.conf" >"$dir/rtmpt-replicas.conf"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 512; }
http {
    log_format route '\$request_uri \$status \$upstream_addr';
    access_log $B_ACCESS route;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/rtmpt-replicas.conf;
}
EOF
    if ! nginx -t -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/test.log" 2>&1; then
        cat "$dir/test.log" >&2
        log "nginx -t refused $dir/nginx.conf"
        return 1
    fi
    spawn pid 600 "$dir/stderr.log" nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
    CASE_PIDS+=("$pid")
    B_TPID=$pid
    wait_port "$B_HTTP" "$pid" 10 || { log "nginx (http) did not listen on $B_HTTP"; return 1; }
    log "nginx (http balancer) on $B_HTTP (pid $pid)"
}

# nginx_routing LOG: like haproxy_routing, for the balancer's access log
# ("URI STATUS UPSTREAM_ADDR"), for well-formed ids of the replicas' tags:
# TOTAL WRONG NON200 PER_UPSTREAM.
nginx_routing() {
    local ports="" i
    for ((i = 0; i < REPLICAS; i++)); do ports+="${R_PORT[i]} "; done
    awk -v ports="$ports" '
        BEGIN { n = split(ports, pp, " "); for (i = 1; i <= n; i++) want[i - 1] = "127.0.0.1:" pp[i] }
        $1 ~ /^\/(send|idle|close)\/[0-9]+\.[0-9a-f]+\/[0-9]+$/ {
            split($1, p, "/"); split(p[3], id, ".")
            # Only ids of this test'"'"'s replicas (the probes for unknown tags
            # and malformed ids are checked on their own).
            if (!(id[1] in want) || length(id[2]) != 32) next
            total++; per[$3]++
            if ($3 != want[id[1]]) wrong++
            # 499: the client hung up (a player being stopped).
            if ($2 != 200 && $2 != 499) bad++
        }
        END {
            s = ""; for (k in per) s = s k "=" per[k] ","
            printf "%d %d %d %s", total, wrong, bad, (s == "" ? "-" : s)
        }' "$1"
}

# --------------------------------------------------------------- streams ---

# frames NAME: frames the player NAME decoded.
frames() { progress_frames "$WORK/$1.progress" "$WORK/$1.log"; }

# rtmpt_stream VAR NAME BALANCER_PORT STREAM SECS: through the balancer on
# BALANCER_PORT, an ffmpeg player (rtmpt://), then an ffmpeg publisher
# (rtmpt://, SECS long), then rtmpdump (librtmp: pipelined requests,
# case-sensitive reply parsing) recording the live stream over rtmpt://;
# plus an ffmpeg player reading nginx-rtmp directly. Sets VAR to why it
# failed (empty on success); logs NAME.publish, NAME.play_gate,
# NAME.play_direct, NAME.rtmpdump.
rtmpt_stream() {
    local __var="$1" name="$2" port="$3" stream="$4" secs="$5"
    local url="rtmpt://127.0.0.1:$port/live/$stream" p_gate p_direct p_pub p_dump rc
    printf -v "$__var" '%s' ""
    spawn_player p_gate 60 "$name.play_gate" "$url"
    spawn_player p_direct 60 "$name.play_direct" "rtmp://127.0.0.1:$NGINX_PORT/live/$stream"
    sleep 1.5
    spawn_publisher p_pub 40 "$name.publish" "$url" "$secs"
    sleep 1.5
    # Over rtmpt:// rtmpdump never ends a live recording by itself (its
    # /idle polls always get a reply): it is stopped with the players.
    spawn p_dump 60 "$WORK/$name.rtmpdump.log" rtmpdump --live --timeout 5 -r "$url" -o "$WORK/$name.flv"
    wait_exit "$p_pub" 30 || true
    sleep 3
    stop_pids "$p_gate" "$p_direct" "$p_dump" "$p_pub"
    rc=$(exit_code "$p_pub")
    local n_gate n_direct n_dump=0 bytes=0 need need_dump
    n_gate=$(frames "$name.play_gate")
    n_direct=$(frames "$name.play_direct")
    [[ -f "$WORK/$name.flv" ]] && bytes=$(stat -c %s "$WORK/$name.flv")
    ((bytes > 0)) && n_dump=$(count_file_frames "$WORK/$name.flv")
    need=$(min_frames "$secs")
    # rtmpdump joins 1.5 s late and starts at a keyframe.
    need_dump=$(min_frames $((secs - 3)))
    log "$name: publisher rc=$rc; frames: ffmpeg via balancer=$n_gate, direct=$n_direct (need $need), rtmpdump via balancer=$n_dump in $bytes bytes (need $need_dump)"
    CASE_LOGS+=("$WORK/$name.publish.log" "$WORK/$name.play_gate.log" "$WORK/$name.play_direct.log" "$WORK/$name.rtmpdump.log")
    if [[ "$rc" != 0 ]]; then
        printf -v "$__var" '%s' "publisher over rtmpt through the balancer exited with status $rc"
    elif ((n_gate < need || n_direct < need)); then
        printf -v "$__var" '%s' "ffmpeg players decoded via balancer=$n_gate direct=$n_direct frames, want >= $need"
    elif ((n_dump < need_dump)); then
        printf -v "$__var" '%s' "rtmpdump through the balancer recorded $n_dump frames ($bytes bytes), want >= $need_dump"
    fi
}

# ------------------------------------------------------------------ cases --

# a. Learned stickiness through HAProxy: three replicas, round-robin /open,
# stick table from X-Rtmpt-Session. curl probes (a new TCP connection per
# request), then ffmpeg publishes and plays over rtmpt:// through HAProxy
# while a second player reads nginx-rtmp directly. Every session request in
# HAProxy's log must have reached the replica its id is tagged with, and no
# replica may have counted an unknown session. Then a control run: the same
# HAProxy without the stick rules must break an RTMPT publish (404s), which
# shows that requests really are routed one by one.
case_haproxy_sticky() {
    local name=haproxy_sticky why secs=8
    start_replicas "$name" "?proxy_protocol=1" --proxy-protocol-from 127.0.0.1 || { fail "$name" "replicas did not start"; return 0; }
    start_haproxy "$name.haproxy" || { fail "$name" "haproxy did not start"; return 0; }
    probe_sessions why "$name" "http://127.0.0.1:$H_HTTP"
    [[ -z "$why" ]] || { fail "$name" "$why"; return 0; }

    rtmpt_stream why "$name" "$H_HTTP" hs "$secs"
    [[ -z "$why" ]] || { fail "$name" "$why"; return 0; }
    local pub_id play_id ids total wrong bad per unknown
    pub_id=$(session_id_of "$WORK/$name.publish.log")
    play_id=$(session_id_of "$WORK/$name.play_gate.log")
    ids=$(sessions_of_tag_in "$H_LOG" | tr '\n' ' ')
    read -r total wrong bad per <<<"$(haproxy_routing "$H_LOG")"
    unknown=$(unknown_total)
    log "$name: sessions: ffmpeg publisher ${pub_id:-?}, ffmpeg player ${play_id:-?}; all ids seen by haproxy (id:requests): $ids"
    log "$name: haproxy routed $total session requests ($per), $wrong to a replica other than the id's tag, $bad not 200; $(replica_summary)"
    if [[ -z "$pub_id" || -z "$play_id" || "${pub_id%%.*}" == "${play_id%%.*}" ]]; then
        fail "$name" "publisher (${pub_id:-?}) and player (${play_id:-?}) sessions should sit on two replicas (round robin)"
        return 0
    elif ((wrong > 0 || bad > 0 || unknown > 0 || total < 50)); then
        fail "$name" "routing: $total session requests, $wrong misrouted, $bad not 200, $unknown unknown-session on the replicas (want >= 50, 0, 0, 0)"
        return 0
    fi

    # Control: no stick rules -> round robin per request -> 404s.
    local before after p_ctl t0 ms rc
    before=$unknown
    start_haproxy "$name.control" nostick || { fail "$name" "control haproxy did not start"; return 0; }
    t0=$(date +%s%N)
    spawn_publisher p_ctl 30 "$name.control_publish" "rtmpt://127.0.0.1:$H_HTTP/live/hs_control" "$secs"
    if ! wait_exit "$p_ctl" 15; then
        stop_pid "$p_ctl"
        fail "$name" "control: without stick rules the rtmpt publish still ran after 15 s (requests not routed one by one?)" \
            "$WORK/$name.control_publish.log"
        return 0
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    rc=$(exit_code "$p_ctl")
    after=$(unknown_total)
    log "$name: control without stick rules: publisher exited with status $rc after ${ms}ms, unknown-session requests on the replicas $before -> $after: $(grep -a -v '^ *$' "$WORK/$name.control_publish.log" | tail -n 1)"
    if [[ "$rc" == 0 || $after -le $before ]]; then
        fail "$name" "control: without stick rules the publish should break with 404s (rc=$rc, unknown $before -> $after)" \
            "$WORK/$name.control_publish.log"
        return 0
    fi
    pass "$name"
}

# b. HAProxy's TCP frontends: publish over rtmps:// (TLS passed through to a
# replica's rtmps:// listener, PROXY v2 in front), play over rtmp:// through
# HAProxy and directly from nginx-rtmp.
case_haproxy_tcp_frontends() {
    local name=haproxy_tcp_frontends secs=8
    start_replicas "$name" "?proxy_protocol=1" --proxy-protocol-from 127.0.0.1 || { fail "$name" "replicas did not start"; return 0; }
    start_haproxy "$name.haproxy" || { fail "$name" "haproxy did not start"; return 0; }
    wait_haproxy_state rtmpgate_rtmps r0 '^UP$' 5 || true
    local p_gate p_direct p_pub rc
    spawn_player p_gate 60 "$name.play_gate" "rtmp://127.0.0.1:$H_RTMP/live/tcp"
    spawn_player p_direct 60 "$name.play_direct" "rtmp://127.0.0.1:$NGINX_PORT/live/tcp"
    sleep 1.5
    spawn_publisher p_pub 40 "$name.publish" "rtmps://127.0.0.1:$H_RTMPS/live/tcp" "$secs"
    wait_exit "$p_pub" 30 || true
    sleep 3
    stop_pids "$p_gate" "$p_direct" "$p_pub"
    rc=$(exit_code "$p_pub")
    local n_gate n_direct need proxied=0 i
    n_gate=$(frames "$name.play_gate")
    n_direct=$(frames "$name.play_direct")
    need=$(min_frames "$secs")
    for ((i = 0; i < REPLICAS; i++)); do
        proxied=$((proxied + $(grep -a -c 'PROXY header received' "$WORK/$name.r$i.log" || true)))
    done
    log "$name: rtmps publisher rc=$rc; frames via haproxy rtmp=$n_gate direct=$n_direct (need $need); PROXY headers received by the replicas: $proxied"
    CASE_LOGS+=("$WORK/$name.publish.log" "$WORK/$name.play_gate.log" "$WORK/$name.play_direct.log")
    if [[ "$rc" != 0 ]]; then
        fail "$name" "publisher over rtmps through haproxy exited with status $rc"
    elif ((n_gate < need || n_direct < need)); then
        fail "$name" "players decoded via haproxy=$n_gate direct=$n_direct frames, want >= $need"
    elif ((proxied < 2)); then
        fail "$name" "replicas logged $proxied PROXY headers, want >= 2 (send-proxy-v2 not in effect?)"
    else
        pass "$name"
    fi
}

# c. Routing by replica tag through nginx (http): /open round-robin, session
# requests by the tag in the id. curl probes (new connection per request),
# unknown tags and malformed ids get 404 from nginx without reaching a
# replica, a well-formed but unknown id reaches its tagged replica (404
# there), then an rtmpt publish + rtmpt play through nginx.
case_nginx_tag_routing() {
    local name=nginx_tag_routing why secs=8
    start_replicas "$name" "" --rtmpt-max-sessions-per-client 10000 --max-connections-per-client 0 \
        --rtmpt-open-rate 0 ||
        { fail "$name" "replicas did not start"; return 0; }
    start_balancer_nginx "$name.nginx" || { fail "$name" "nginx (http balancer) did not start"; return 0; }
    local base="http://127.0.0.1:$B_HTTP"
    probe_sessions why "$name" "$base"
    [[ -z "$why" ]] || { fail "$name" "$why"; return 0; }

    local hex=0123456789abcdef0123456789abcdef s1 s2 s3 s4 u0 u1
    u0=$(unknown_total)
    read -r s1 _ _ <<<"$(rtmpt_post "$base/idle/7.$hex/1")"
    read -r s2 _ _ <<<"$(rtmpt_post "$base/idle/0.nothex/1")"
    read -r s3 _ _ <<<"$(rtmpt_post "$base/send/$hex/1")"
    read -r s4 _ _ <<<"$(rtmpt_post "$base/send/1.$hex/1")"
    u1=$(unknown_total)
    log "$name: unknown tag 7 -> $s1, malformed id -> $s2, untagged id -> $s3, unknown id on tag 1 -> $s4; unknown-session on the replicas $u0 -> $u1 (want +1: only the tag-1 request reaches a replica)"
    if [[ "$s1$s2$s3$s4" != 404404404404 || $((u1 - u0)) -ne 1 ]]; then
        fail "$name" "unknown/malformed ids: statuses $s1 $s2 $s3 $s4 (want 404 x4), replicas' unknown-session $u0 -> $u1 (want +1)"
        return 0
    fi
    if (($(metric "${R_ADMIN[1]}" rtmpgate_rtmpt_unknown_session_requests_total) != 1)); then
        fail "$name" "the unknown id tagged 1 did not reach replica 1: $(replica_summary)"
        return 0
    fi

    rtmpt_stream why "$name" "$B_HTTP" ns "$secs"
    [[ -z "$why" ]] || { fail "$name" "$why"; return 0; }
    local pub_id play_id total wrong bad per
    pub_id=$(session_id_of "$WORK/$name.publish.log")
    play_id=$(session_id_of "$WORK/$name.play_gate.log")
    read -r total wrong bad per <<<"$(nginx_routing "$B_ACCESS")"
    log "$name: sessions: ffmpeg publisher ${pub_id:-?}, ffmpeg player ${play_id:-?}; all ids seen by nginx (id:requests): $(sessions_of_tag_in "$B_ACCESS" | tr '\n' ' ')"
    log "$name: nginx routed $total tagged session requests ($per), $wrong to another replica than the tag's, $bad not 200 (the probe for an unknown id on tag 1 included); $(replica_summary)"
    if [[ -z "$pub_id" || -z "$play_id" ]]; then
        fail "$name" "no RTMPT session id in the ffmpeg logs"
        return 0
    elif ((wrong > 0 || bad != 1 || total < 50 || $(unknown_total) != 1)); then
        fail "$name" "routing: $total session requests, $wrong misrouted, $bad not 200 (want 1), unknown-session $(unknown_total) (want 1)"
        return 0
    fi

    # Passive health: SIGTERM replica 0 (it drains: /open gets 503); nginx
    # must retry every /open on another replica.
    local gpid r status body tags="" i
    gpid=$(gate_pid "${R_TPID[0]}")
    kill -TERM "$gpid"
    sleep 0.3
    for i in 1 2 3 4; do
        r=$(rtmpt_post "$base/open/1")
        read -r status _ body <<<"$r"
        tags+="$status:${body%%.*} "
        [[ "$status" == 200 ]] && rtmpt_post "$base/close/$body/1" >/dev/null
    done
    log "$name: after SIGTERM to replica 0: /open status:tag $tags; replica 0 answered $(metric "${R_ADMIN[0]}" rtmpgate_rtmpt_requests_total 'verb="open",status="503"') /open with 503"
    if [[ "$tags" == *":0 "* || "$tags" =~ (^|\ )[^2] ]]; then
        fail "$name" "with replica 0 draining, /open through nginx gave status:tag $tags (want 200 on replicas 1 and 2)"
    else
        pass "$name"
    fi
}

# d. Drain: SIGTERM the replica holding a live rtmpt publish. HAProxy sees
# /readyz "draining" and puts it in NOLB; its stream keeps flowing to the
# end through the stick table; /open right after the signal and a new
# publisher land on the other replicas; the draining replica exits by itself
# (status 0) once its session ends, well before --drain-timeout (60 s).
case_drain_one_replica() {
    local name=drain_one_replica secs1=12 secs2=8
    start_replicas "$name" "?proxy_protocol=1" --proxy-protocol-from 127.0.0.1 || { fail "$name" "replicas did not start"; return 0; }
    start_haproxy "$name.haproxy" || { fail "$name" "haproxy did not start"; return 0; }
    local base="http://127.0.0.1:$H_HTTP"
    local p_d1 p_d2 p_pub1 p_pub2
    spawn_player p_d1 60 "$name.play_direct1" "rtmp://127.0.0.1:$NGINX_PORT/live/d1"
    spawn_player p_d2 60 "$name.play_direct2" "rtmp://127.0.0.1:$NGINX_PORT/live/d2"
    CASE_LOGS+=("$WORK/$name.publish1.log" "$WORK/$name.publish2.log" "$WORK/$name.play_direct1.log" "$WORK/$name.play_direct2.log")
    sleep 1.5
    spawn_publisher p_pub1 40 "$name.publish1" "rtmpt://127.0.0.1:$H_HTTP/live/d1" "$secs1"
    local t_start k=""
    t_start=$(date +%s)
    sleep 3
    local i
    for ((i = 0; i < 30; i++)); do
        k=$(holder_of_session)
        [[ -n "$k" ]] && break
        sleep 0.1
    done
    if [[ -z "$k" ]]; then
        stop_pids "$p_pub1" "$p_d1" "$p_d2"
        fail "$name" "no single replica holds the publisher's session: $(replica_summary)"
        return 0
    fi
    local gpid opened_before
    gpid=$(gate_pid "${R_TPID[k]}")
    opened_before=$(metric "${R_ADMIN[k]}" rtmpgate_rtmpt_requests_total 'verb="open",status="200"')
    log "$name: replica $k (pid $gpid) holds the publisher's session; SIGTERM it $(($(date +%s) - t_start)) s into the ${secs1} s stream"
    kill -TERM "$gpid"

    # /open at once, each on a new connection: never on the draining replica
    # (HAProxy retries a 503 elsewhere until the check marks it NOLB).
    local r status body tags="" probe_ids=()
    for i in 1 2 3; do
        r=$(rtmpt_post "$base/open/1")
        read -r status _ body <<<"$r"
        tags+="$status:${body%%.*} "
        [[ "$status" == 200 ]] && probe_ids+=("$body")
    done
    for r in ${probe_ids[@]+"${probe_ids[@]}"}; do rtmpt_post "$base/close/$r/1" >/dev/null; done
    local ready
    ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${R_ADMIN[k]}/readyz") || true
    local nolb=yes
    wait_haproxy_state rtmpgate_rtmpt "r$k" '^NOLB' 5 || nolb=no
    log "$name: right after SIGTERM: /readyz $ready, /open status:tag $tags; haproxy rtmpgate_rtmpt/r$k '$(haproxy_state rtmpgate_rtmpt "r$k")', rtmpgate_rtmp/r$k '$(haproxy_state rtmpgate_rtmp "r$k")'"
    if [[ "$nolb" != yes ]]; then
        stop_pids "$p_pub1" "$p_d1" "$p_d2"
        fail "$name" "haproxy did not put the draining replica r$k in NOLB within 5 s"
        return 0
    fi
    if [[ "$tags" == *":$k "* || "$tags" == *"503"* || "$ready" != 503 ]]; then
        stop_pids "$p_pub1" "$p_d1" "$p_d2"
        fail "$name" "after SIGTERM: /readyz $ready (want 503), /open status:tag $tags (want 200 on other replicas than $k)"
        return 0
    fi

    spawn_publisher p_pub2 40 "$name.publish2" "rtmpt://127.0.0.1:$H_HTTP/live/d2" "$secs2"
    sleep 2
    local opened_after pub2_id
    opened_after=$(metric "${R_ADMIN[k]}" rtmpgate_rtmpt_requests_total 'verb="open",status="200"')
    pub2_id=$(session_id_of "$WORK/$name.publish2.log")
    log "$name: second publisher's session ${pub2_id:-?}; replica $k opened $opened_before -> $opened_after sessions; $(replica_summary)"

    wait_exit "$p_pub1" 30 || true
    local rc1 exited=no t_end ms_exit
    rc1=$(exit_code "$p_pub1")
    t_end=$(date +%s%N)
    wait_exit "${R_TPID[k]}" 15 && exited=yes
    ms_exit=$((($(date +%s%N) - t_end) / 1000000))
    local rc_gate=running
    [[ "$exited" == yes ]] && rc_gate=$(exit_code "${R_TPID[k]}")
    wait_exit "$p_pub2" 30 || true
    sleep 3
    stop_pids "$p_d1" "$p_d2" "$p_pub2"
    local rc2 n1 n2 need1 need2
    rc2=$(exit_code "$p_pub2")
    n1=$(frames "$name.play_direct1")
    n2=$(frames "$name.play_direct2")
    need1=$(min_frames "$secs1")
    need2=$(min_frames "$secs2")
    local glog="$WORK/$name.r$k.log" closed_line
    closed_line=$(grep -a 'rtmpt session closed' "$glog" | tail -n 1 | sed 's/.*rtmpt session closed //') || true
    log "$name: publisher 1 rc=$rc1, direct player 1 $n1 frames (need $need1); publisher 2 rc=$rc2, direct player 2 $n2 frames (need $need2)"
    log "$name: draining replica $k: exited=$exited status=$rc_gate ${ms_exit}ms after publisher 1 ended; its session: $closed_line; haproxy now '$(haproxy_state rtmpgate_rtmpt "r$k")'"
    if [[ "$rc1" != 0 ]]; then
        fail "$name" "publisher on the draining replica exited with status $rc1"
    elif ((n1 < need1)); then
        fail "$name" "stream through the draining replica: player decoded $n1 frames, want >= $need1"
    elif [[ -z "$pub2_id" || "${pub2_id%%.*}" == "$k" ]]; then
        fail "$name" "the publisher started after SIGTERM got session ${pub2_id:-?}, want one on another replica than $k"
    elif ((opened_after != opened_before)); then
        fail "$name" "the draining replica opened sessions after SIGTERM ($opened_before -> $opened_after)"
    elif [[ "$rc2" != 0 ]] || ((n2 < need2)); then
        fail "$name" "publisher started after SIGTERM: rc=$rc2, player $n2 frames (want 0, >= $need2)"
    elif [[ "$exited" != yes ]]; then
        fail "$name" "the draining replica had not exited 15 s after its last session ended" "$glog"
    elif [[ "$rc_gate" != 0 ]] || grep -a -q 'drain timeout reached' "$glog" || ! grep -a -q 'shut down' "$glog"; then
        fail "$name" "the draining replica ended with status $rc_gate / drain timeout / no 'shut down' line" "$glog"
    else
        pass "$name"
    fi
}

# e. Crash: kill -9 the replica holding one of two live rtmpt publishes. The
# publisher on it must fail cleanly (exit non-zero within 20 s: HAProxy
# retries the dead server, redispatches, another replica answers 404), the
# other publisher's stream is undisturbed, and a new publish through HAProxy
# works.
case_kill_one_replica() {
    local name=kill_one_replica secs=12 secs3=8
    start_replicas "$name" "?proxy_protocol=1" --proxy-protocol-from 127.0.0.1 || { fail "$name" "replicas did not start"; return 0; }
    start_haproxy "$name.haproxy" || { fail "$name" "haproxy did not start"; return 0; }
    local p_k1 p_k2 p_k3 p_pub1 p_pub2 p_pub3
    spawn_player p_k1 60 "$name.play_direct1" "rtmp://127.0.0.1:$NGINX_PORT/live/k1"
    spawn_player p_k2 60 "$name.play_direct2" "rtmp://127.0.0.1:$NGINX_PORT/live/k2"
    spawn_player p_k3 60 "$name.play_direct3" "rtmp://127.0.0.1:$NGINX_PORT/live/k3"
    CASE_LOGS+=("$WORK/$name.publish1.log" "$WORK/$name.publish2.log" "$WORK/$name.publish3.log"
        "$WORK/$name.play_direct2.log" "$WORK/$name.play_direct3.log")
    sleep 1.5
    spawn_publisher p_pub1 40 "$name.publish1" "rtmpt://127.0.0.1:$H_HTTP/live/k1" "$secs"
    sleep 0.5
    spawn_publisher p_pub2 40 "$name.publish2" "rtmpt://127.0.0.1:$H_HTTP/live/k2" "$secs"
    sleep 3
    local id1 id2
    id1=$(session_id_of "$WORK/$name.publish1.log")
    id2=$(session_id_of "$WORK/$name.publish2.log")
    if [[ -z "$id1" || -z "$id2" || "${id1%%.*}" == "${id2%%.*}" ]]; then
        stop_pids "$p_pub1" "$p_pub2" "$p_k1" "$p_k2" "$p_k3"
        fail "$name" "want the two publishers on two replicas, got sessions ${id1:-?} and ${id2:-?}"
        return 0
    fi
    local k=${id1%%.*} gpid t0
    gpid=$(gate_pid "${R_TPID[k]}")
    log "$name: publisher 1 on replica $k ($id1), publisher 2 on replica ${id2%%.*}; kill -9 replica $k (pid $gpid)"
    t0=$(date +%s%N)
    kill -KILL "$gpid"
    # A new publisher at once, before the health check can notice: its /open
    # may meet the dead server (connection refused, retried elsewhere).
    spawn_publisher p_pub3 40 "$name.publish3" "rtmpt://127.0.0.1:$H_HTTP/live/k3" "$secs3"
    local ended=no ms rc1
    wait_exit "$p_pub1" 20 && ended=yes
    ms=$((($(date +%s%N) - t0) / 1000000))
    [[ "$ended" == yes ]] || stop_pid "$p_pub1"
    rc1=$(exit_code "$p_pub1")
    local fate why1
    fate=$(grep -a -F "/${id1}/" "$H_LOG" | awk '{ print $6 }' | sort | uniq -c | tr -s ' \n' ' ') || true
    why1=$(tr '\r' '\n' <"$WORK/$name.publish1.log" | grep -a -E 'Server returned|refused|Error|error' | head -n 1) || true
    log "$name: publisher 1 ended=$ended ${ms}ms after the kill, status $rc1: ${why1:-?}"
    log "$name: haproxy statuses for session $id1 (count status): $fate; haproxy rtmpgate_rtmpt/r$k now '$(haproxy_state rtmpgate_rtmpt "r$k")'; new publisher's /open: $(grep -a 'POST /open/' "$H_LOG" | tail -n 1 | awk '{ print $4, $6, "conns/retries=" $11 }')"
    wait_exit "$p_pub2" 30 || true
    wait_exit "$p_pub3" 30 || true
    sleep 3
    stop_pids "$p_k1" "$p_k2" "$p_k3" "$p_pub2" "$p_pub3"
    local rc2 rc3 n2 n3 need need3 id3
    rc2=$(exit_code "$p_pub2")
    rc3=$(exit_code "$p_pub3")
    n2=$(frames "$name.play_direct2")
    n3=$(frames "$name.play_direct3")
    need=$(min_frames "$secs")
    need3=$(min_frames "$secs3")
    id3=$(session_id_of "$WORK/$name.publish3.log")
    log "$name: publisher 2 rc=$rc2, player $n2 frames (need $need); publisher 3 (${id3:-?}, started right after the kill) rc=$rc3, player $n3 frames (need $need3); $(replica_summary)"
    if [[ "$ended" != yes ]]; then
        fail "$name" "publisher on the killed replica still running 20 s after the kill"
    elif [[ "$rc1" == 0 ]]; then
        fail "$name" "publisher on the killed replica exited with status 0, want a failure"
    elif [[ "$rc2" != 0 ]] || ((n2 < need)); then
        fail "$name" "publisher on the surviving replica: rc=$rc2, player $n2 frames (want 0, >= $need)"
    elif [[ "$rc3" != 0 ]] || ((n3 < need3)); then
        fail "$name" "new publish after the kill: rc=$rc3, player $n3 frames (want 0, >= $need3)"
    elif [[ -z "$id3" || "${id3%%.*}" == "$k" ]]; then
        fail "$name" "new publish after the kill got session ${id3:-?} (want one on a live replica)"
    else
        pass "$name"
    fi
}

# ------------------------------------------------------------------ main ---

main() {
    local cases=("${ALL_CASES[@]}")
    if [[ -n "${SCALEOUT_CASES:-}" ]]; then
        read -r -a cases <<<"$SCALEOUT_CASES"
    fi
    ensure_scaleout_peers
    ensure_scaleout_rtmpgate
    make_workdir rtmpgate-scaleout
    log "work dir $WORK, rtmpgate $RTMPGATE_BIN, $(haproxy -v 2>/dev/null | head -n 1)"
    printf '\0' >"$WORK/zero.bin"

    NGINX_PORT=$(free_ports 1)
    start_nginx "$NGINX_PORT"

    run_cases "${cases[@]}"

    printf 'scaleout: %d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

main "$@"
