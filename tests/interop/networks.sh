#!/usr/bin/env bash
# Real networks and real clients: RTMPT through corporate HTTP proxies
# (squid, tinyproxy, a strict squid), RTMPS and RTMPTS through a CONNECT
# tunnel, OBS Studio (librtmp + mbedTLS) and GStreamer (rtmp2, GnuTLS), all
# through rtmpgate on 127.0.0.1 into nginx-rtmp.
#
#   tests/interop/networks.sh                     # builds target/release/rtmpgate
#   RTMPGATE_BIN=/path/rtmpgate tests/interop/networks.sh
#   NETWORK_CASES="squid_rtmpt obs_rtmps" tests/interop/networks.sh
#   KEEP_WORK=1 tests/interop/networks.sh         # keep the temp dir
#
# Peers (squid, tinyproxy, obs-studio, xvfb, GStreamer) are installed with
# apt-get when missing; one still missing is a failure, never a skip. The
# last line is `networks: N passed, N failed`; exit status 1 if any failed.
#
# Helpers: rtmp_probe.py (an RTMP handshake over RTMPS, RTMPTS or RTMPT
# through a proxy, for paths no installable client can take) and
# obs_stop.py (stops OBS's stream through obs-websocket, so OBS reports the
# frames it sent).
#
# Private trust: OBS (mbedTLS: every file in /etc/ssl/certs/) and GStreamer
# (GnuTLS: /etc/ssl/certs/ca-certificates.crt) only trust the system store.
# They run in a private mount namespace (`unshare -m`) where a scratch
# directory holding the system bundle plus the suite's private CA is
# mounted over /etc/ssl/certs: the host's store is never changed.
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ALL_CASES=(squid_rtmpt squid_rtmpt_pconn tinyproxy_rtmpt squid_strict
    connect_tunnel gstreamer_rtmps gstreamer_connect obs_rtmps obs_rtmp)

FPS=25
PUBLISH_SECS=6
SENT_FRAMES=$((FPS * PUBLISH_SECS))
MIN_PLAYER_FRAMES=$((SENT_FRAMES * 90 / 100))

PASSED=0
FAILED=0
CASE_LOGS=()
CASE_PIDS=()

# The address squid connects to rtmpgate from (tcp_outgoing_address): not
# the clients' 127.0.0.1, so rtmpgate's log tells the proxy from the client.
SQUID_OUT_ADDR=127.0.0.2

fail() {
    local name="$1" why="$2"
    shift 2
    FAILED=$((FAILED + 1))
    printf 'FAIL %s: %s\n' "$name" "$why"
    show_logs "$@" ${CASE_LOGS[@]+"${CASE_LOGS[@]}"} "$RTMPGATE_LOG" "$NGINX_ERROR_LOG"
}

# ensure_network_peers: ensure_peers, then this suite's own peers.
NET_CMDS=(squid tinyproxy obs xvfb-run xauth gst-launch-1.0 gst-inspect-1.0 unshare curl)
NET_PKGS=(squid tinyproxy obs-studio xvfb xauth gstreamer1.0-tools gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    gstreamer1.0-libav glib-networking util-linux curl)
NET_GST_ELEMENTS=(rtmp2sink rtmp2src x264enc flvmux videotestsrc)
net_missing() {
    local c
    for c in "${NET_CMDS[@]}"; do command -v "$c" >/dev/null 2>&1 || printf '%s\n' "$c"; done
    if command -v gst-inspect-1.0 >/dev/null 2>&1; then
        for c in "${NET_GST_ELEMENTS[@]}"; do
            gst-inspect-1.0 "$c" >/dev/null 2>&1 || printf 'gstreamer element %s\n' "$c"
        done
    fi
    [[ -f /usr/lib/x86_64-linux-gnu/gio/modules/libgiognutls.so ]] ||
        ls /usr/lib/*/gio/modules/libgiognutls.so >/dev/null 2>&1 || printf 'glib-networking\n'
}
ensure_network_peers() {
    ensure_peers
    local missing
    missing=$(net_missing)
    [[ -z "$missing" ]] && return 0
    log "missing peers: $(tr '\n' ' ' <<<"$missing"); installing with apt-get"
    local sudo=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); fi
    "${sudo[@]}" apt-get update || log "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
        "${NET_PKGS[@]}" || log "apt-get install failed"
    missing=$(net_missing)
    if [[ -n "$missing" ]]; then
        printf 'FAIL peers: still missing after install: %s (CI=%s)\n' \
            "$(tr '\n' ' ' <<<"$missing")" "${CI:-}" >&2
        exit 1
    fi
}

# ------------------------------------------------------------- proxies ----

# start_squid VAR NAME PORT [EXTRA_CONF]: a squid 5 on 127.0.0.1:PORT in
# $WORK/NAME/ (squid.conf, access.log, cache.log), standing in for a
# corporate proxy: no cache, clients from 127.0.0.0/8, CONNECT to 443 and
# to the gate's TLS port, connections to servers from SQUID_OUT_ADDR.
# EXTRA_CONF lines go at the end (later directives win). The access log
# has one line per request: time, client, result/status, bytes sent,
# method, URL, server address.
start_squid() {
    local __qvar="$1" __name="$2" __port="$3" __extra="${4:-}" __qpid
    local dir="$WORK/$__name"
    printf -v "$__qvar" '%s' ""
    mkdir -p "$dir"
    cat >"$dir/squid.conf" <<EOF
http_port 127.0.0.1:$__port
pid_filename $dir/squid.pid
logformat rtmpt %ts.%03tu %>a %Ss/%03>Hs %<st %rm %ru %<a:%<p
access_log stdio:$dir/access.log rtmpt
cache_log $dir/cache.log
cache_store_log none
cache deny all
coredump_dir $dir
netdb_filename none
pinger_enable off
shutdown_lifetime 1 seconds
dns_nameservers 127.0.0.1
acl localclients src 127.0.0.0/8
acl SSL_ports port 443 $GATE_TLS_PORT
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access allow localclients
http_access deny all
tcp_outgoing_address $SQUID_OUT_ADDR
$__extra
EOF
    # squid drops to the user `proxy`; it must write its logs.
    chown -R proxy:proxy "$dir" 2>/dev/null || chmod -R a+rwX "$dir"
    chmod o+x "$WORK"
    if ! squid -k parse -f "$dir/squid.conf" >"$dir/parse.log" 2>&1; then
        tail -n 20 "$dir/parse.log" >&2
        return 1
    fi
    spawn __qpid 300 "$dir/stderr.log" squid -N -f "$dir/squid.conf"
    printf -v "$__qvar" '%s' "$__qpid"
    if ! wait_port "$__port" "$__qpid" 15; then
        tail -n 20 "$dir/stderr.log" "$dir/cache.log" >&2 2>/dev/null || true
        return 1
    fi
    log "squid $__name listening on 127.0.0.1:$__port (pid $__qpid)"
}

# start_tinyproxy VAR NAME PORT: tinyproxy 1.11 on 127.0.0.1:PORT, logs in
# $WORK/NAME/.
start_tinyproxy() {
    local __tvar="$1" __name="$2" __port="$3" __tpid
    local dir="$WORK/$__name"
    printf -v "$__tvar" '%s' ""
    mkdir -p "$dir"
    cat >"$dir/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $__port
Listen 127.0.0.1
Timeout 60
LogFile "$dir/tinyproxy.log"
LogLevel Connect
MaxClients 50
Allow 127.0.0.1
ViaProxyName "tinyproxy"
EOF
    chmod a+rwx "$dir"
    chmod o+x "$WORK"
    spawn __tpid 300 "$dir/stderr.log" tinyproxy -d -c "$dir/tinyproxy.conf"
    printf -v "$__tvar" '%s' "$__tpid"
    if ! wait_port "$__port" "$__tpid" 15; then
        tail -n 20 "$dir/stderr.log" "$dir/tinyproxy.log" >&2 2>/dev/null || true
        return 1
    fi
    log "tinyproxy $__name listening on 127.0.0.1:$__port (pid $__tpid)"
}

# Through an HTTP proxy: ffmpeg's rtmpt:// (rtmphttp) honours http_proxy;
# no_proxy is cleared so a CI runner's setting cannot bypass the proxy.
# rtmp:// and rtmps:// players (direct ones) never use it.
#   via_proxy PORT FUNCTION ARGS...
via_proxy() {
    local port="$1"
    shift
    http_proxy="http://127.0.0.1:$port" no_proxy="" NO_PROXY="" "$@"
}

# gate_metric PORT NAME: the value of an unlabelled metric on rtmpgate's
# admin port (empty if not found).
gate_metric() {
    curl -s -m 2 "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk -v n="$2" '$1 == n { print $2; exit }' || true
}

# --------------------------------------------------------------- cases ----

# squid_counts NAME GATE_LOG SQUID_DIR: prints what the RTMPT sessions
# through squid cost, and sets SQ_REQS (requests squid forwarded to
# rtmpgate), SQ_CONNS (TCP connections rtmpgate accepted from squid),
# SQ_SESSIONS (RTMPT sessions opened) and SQ_LINES (rtmpgate log lines
# after start-up, info level: one opened and one closed line per session).
squid_counts() {
    local name="$1" glog="$2" sdir="$3"
    SQ_REQS=$(grep -a -c -E ' POST http://127\.0\.0\.1:[0-9]+/(open|send|idle|close|fcs)' "$sdir/access.log") || true
    # TCP connections that carried the sessions, from the session close
    # lines (per-connection lines of RTMPT are at debug level).
    SQ_CONNS=$(grep -a 'rtmpt session closed' "$glog" | grep -a -o 'connections=[0-9]*' |
        awk -F= '{ n += $2 } END { print n + 0 }')
    SQ_SESSIONS=$(grep -a -c 'rtmpt session opened' "$glog") || true
    SQ_LINES=$(awk '/connection opened|rtmpt session/ { go = 1 } go' "$glog" | wc -l)
    local per="n/a"
    ((SQ_SESSIONS > 0)) && per=$((SQ_LINES / SQ_SESSIONS))
    log "$name: squid forwarded $SQ_REQS RTMPT requests over $SQ_CONNS TCP connections to rtmpgate; $SQ_SESSIONS RTMPT sessions; rtmpgate wrote $SQ_LINES log lines ($per per RTMPT session)"
}

# squid_gate NAME VAR: an rtmpgate for a proxy case, taking the RTMPT
# client from X-Forwarded-For of squid (SQUID_OUT_ADDR trusted), on a free
# port stored in GATE_P; its admin port in GATE_A; log $WORK/NAME.gate.log.
squid_gate() {
    local name="$1" __v="$2" ports
    mapfile -t ports < <(free_ports 2)
    GATE_P=${ports[0]} GATE_A=${ports[1]}
    CASE_LOGS+=("$WORK/$name.gate.log")
    start_gate "$__v" "$name.gate" "$GATE_P" --listen "rtmp://127.0.0.1:$GATE_P" \
        --upstream "rtmp://127.0.0.1:$NGINX_PORT" --drain-timeout 1s \
        --rtmpt-forwarded-for --proxy-protocol-from "$SQUID_OUT_ADDR/32" \
        --admin "127.0.0.1:$GATE_A" "${@:3}"
}

# count_lines FILE ERE: lines of FILE matching ERE (0 if none).
count_lines() { grep -a -c -E "$2" "$1" 2>/dev/null || true; }

# wait_count FILE ERE N SECS: waits up to SECS for N lines matching ERE.
wait_count() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        (($(count_lines "$1" "$2") >= $3)) && return 0
        sleep 0.1
    done
    return 1
}

# squid_publish_play NAME SQUID_EXTRA: a squid with SQUID_EXTRA and its own
# rtmpgate (squid_gate, session timeout 3 s so the player's session, which
# ffmpeg ends without /close, is logged in the case); ffmpeg publishes and
# plays rtmpt:// through squid. Checks the stream, that the requests went
# through squid, and that rtmpgate named the client from X-Forwarded-For
# (127.0.0.1) in both sessions, never squid's SQUID_OUT_ADDR. Sets
# SQ_WHY (empty when all that holds) and the squid_counts figures.
squid_publish_play() {
    local name="$1" extra="$2" sq gate why sp
    SQ_WHY="" SQ_REQS=0 SQ_CONNS=0 SQ_SESSIONS=0 SQ_LINES=0
    sp=$(free_ports 1)
    start_squid sq "$name.squid" "$sp" "$extra" || true
    CASE_PIDS+=("$sq")
    alive "$sq" || { SQ_WHY="squid did not start"; return 0; }
    CASE_LOGS+=("$WORK/$name.squid/access.log" "$WORK/$name.squid/cache.log")
    squid_gate "$name" gate --rtmpt-session-timeout 3s || true
    CASE_PIDS+=("$gate")
    alive "$gate" || { SQ_WHY="rtmpgate did not start"; return 0; }
    via_proxy "$sp" stream_check why "$name" \
        "rtmpt://127.0.0.1:$GATE_P/live/$name" \
        "rtmpt://127.0.0.1:$GATE_P/live/$name" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/$name"
    local glog="$WORK/$name.gate.log" n_xff n_proxy
    wait_count "$glog" 'rtmpt session closed' 2 8 || true
    squid_counts "$name" "$glog" "$WORK/$name.squid"
    n_xff=$(grep -a 'rtmpt session closed' "$glog" | grep -a -c 'client=127\.0\.0\.1 ') || true
    n_proxy=$(grep -a 'rtmpt session closed' "$glog" | grep -a -c -F "client=$SQUID_OUT_ADDR") || true
    if [[ -n "$why" ]]; then
        SQ_WHY="$why"
    elif ((SQ_REQS < 20)); then
        SQ_WHY="squid's access log shows $SQ_REQS RTMPT requests to rtmpgate, want >= 20: the clients did not go through squid"
    elif ((SQ_CONNS < 1)); then
        SQ_WHY="rtmpgate's session lines name no TCP connection carrying the sessions"
    elif ((SQ_SESSIONS > 0 && SQ_LINES > 5 * SQ_SESSIONS)); then
        SQ_WHY="rtmpgate wrote $SQ_LINES info lines for $SQ_SESSIONS RTMPT sessions, want at most 5 per session (RTMPT is logged per session, not per request)"
    elif ((n_xff < 2 || n_proxy > 0)); then
        SQ_WHY="rtmpgate's closed RTMPT sessions name client 127.0.0.1 $n_xff times (want 2, from X-Forwarded-For) and squid's $SQUID_OUT_ADDR $n_proxy times (want 0)"
    elif ! alive "$gate"; then
        SQ_WHY="rtmpgate exited during the case"
    fi
}

# 1. squid 5 as shipped (persistent server connections on): ffmpeg
# publishes and plays rtmpt:// through it; rtmpgate sees the client
# (127.0.0.1) from X-Forwarded-For, not squid's address. Squid opens a new
# connection to rtmpgate for every request: RTMPT requests are POSTs, which
# squid cannot retry, and by default it never sends a request it cannot
# retry on a reused connection (server_pconn_for_nonretriable, case 2).
# The figures are logged; the case asserts the stream and the client.
case_squid_rtmpt() {
    squid_publish_play squid_rtmpt ""
    if [[ -n "$SQ_WHY" ]]; then fail squid_rtmpt "$SQ_WHY"; else pass squid_rtmpt; fi
}

# 2. The same through a squid told it may reuse server connections for
# POSTs to rtmpgate (server_pconn_for_nonretriable): it must then carry
# the RTMPT requests on far fewer connections than requests.
SQUID_PCONN_CONF='acl rtmpt_post method POST
server_pconn_for_nonretriable allow rtmpt_post'
case_squid_rtmpt_pconn() {
    local name=squid_rtmpt_pconn
    squid_publish_play "$name" "$SQUID_PCONN_CONF"
    if [[ -n "$SQ_WHY" ]]; then
        fail "$name" "$SQ_WHY"
    elif ((SQ_CONNS * 4 > SQ_REQS)); then
        fail "$name" "squid opened $SQ_CONNS connections to rtmpgate for $SQ_REQS requests with server_pconn_for_nonretriable: it did not reuse them"
    else
        pass "$name"
    fi
}

# probe VAR NAME ARGS...: rtmp_probe.py ARGS (bounded), output in
# $WORK/NAME.probe.log; sets VAR to why it failed (empty on success).
probe() {
    local __pv="$1" name="$2" pid rc
    shift 2
    printf -v "$__pv" '%s' ""
    spawn pid 30 "$WORK/$name.probe.log" python3 "$INTEROP_LIB_DIR/rtmp_probe.py" "$@"
    wait_exit "$pid" 25 || stop_pid "$pid"
    rc=$(exit_code "$pid")
    log "$name: rtmp_probe.py $* (status $rc): $(tail -n 1 "$WORK/$name.probe.log")"
    if [[ "$rc" != 0 ]] || ! grep -a -q '^ok ' "$WORK/$name.probe.log"; then
        printf -v "$__pv" '%s' "rtmp_probe.py $1 failed: $(tail -n 1 "$WORK/$name.probe.log")"
        CASE_LOGS+=("$WORK/$name.probe.log")
    fi
}

# 3. tinyproxy 1.11 answers every request and then closes the client
# connection without saying so (HTTP/1.1 reply, no `Connection: close`).
# ffmpeg's rtmpt:// writes its next request on that closed connection and
# fails ("Cannot read RTMP handshake response"): nothing rtmpgate answers
# changes that (after `Connection: close` ffmpeg's ff_http_do_new_request
# returns EOF instead of reconnecting). That attempt is logged, not
# asserted. The case asserts an RTMPT client that opens a connection per
# request (as curl and browsers do) through tinyproxy: /open, the
# handshake (S0 = 3, S2 echoes C1), /close; and the RTMPS handshake
# through tinyproxy's CONNECT (no ConnectPort line: every port allowed).
case_tinyproxy_rtmpt() {
    local name=tinyproxy_rtmpt tp why tport before n_conn pub rc
    tport=$(free_ports 1)
    start_tinyproxy tp "$name.tinyproxy" "$tport" || true
    CASE_PIDS+=("$tp")
    alive "$tp" || { fail "$name" "tinyproxy did not start"; return 0; }
    local tlog="$WORK/$name.tinyproxy/tinyproxy.log"
    CASE_LOGS+=("$tlog")
    before=$(count_lines "$RTMPGATE_LOG" 'rtmpt session opened')
    probe why "$name" rtmpt "$tport" "$GATE_PLAIN_PORT"
    n_conn=$(($(count_lines "$RTMPGATE_LOG" 'rtmpt session opened') - before))
    log "$name: rtmpgate opened $n_conn RTMPT sessions through tinyproxy"
    local why_tls=""
    [[ -n "$why" ]] || probe why_tls "$name.connect" rtmps "$tport" "$GATE_TLS_PORT" "$CA_DIR/ca.crt"
    why="$why$why_tls"

    via_proxy "$tport" spawn_publisher pub 20 "$name.ffmpeg_publish" \
        "rtmpt://127.0.0.1:$GATE_PLAIN_PORT/live/tiny" 2
    wait_exit "$pub" 15 || stop_pid "$pub"
    rc=$(exit_code "$pub")
    log "$name: known limitation: ffmpeg rtmpt:// through tinyproxy exited with status $rc: $(grep -a -E 'Cannot|rror' "$WORK/$name.ffmpeg_publish.log" | tail -n 1)"

    if [[ -n "$why" ]]; then
        fail "$name" "$why"
    elif ! grep -a -q -E "POST http://127\.0\.0\.1:$GATE_PLAIN_PORT/(send|idle)/" "$tlog"; then
        fail "$name" "tinyproxy's log has no RTMPT /send or /idle to rtmpgate: the probe did not go through it"
    elif ! alive "$RTMPGATE_PID"; then
        fail "$name" "rtmpgate exited during the case"
    else
        pass "$name"
    fi
}

# 4. A strict corporate squid: no persistent server connections, a 5 s
# read_timeout, and request bodies capped at 4 KB, smaller than the /send
# that carries a publisher's first keyframe. A publisher through it must
# fail clearly (ffmpeg exits non-zero, squid answered 413) and rtmpgate must
# not hang: a player through the same squid then decodes a stream (small
# requests only), and rtmpgate's RTMPT session gauge returns to 0 within
# its session timeout (3 s here, the publisher's session is abandoned).
SQUID_STRICT_CONF='server_persistent_connections off
read_timeout 5 seconds
request_body_max_size 4 KB'
case_squid_strict() {
    local name=squid_strict sq gate why sp pub rc t0 ms
    sp=$(free_ports 1)
    start_squid sq "$name.squid" "$sp" "$SQUID_STRICT_CONF" || true
    CASE_PIDS+=("$sq")
    alive "$sq" || { fail "$name" "squid did not start"; return 0; }
    CASE_LOGS+=("$WORK/$name.squid/access.log" "$WORK/$name.squid/cache.log")
    squid_gate "$name" gate --rtmpt-session-timeout 3s || true
    CASE_PIDS+=("$gate")
    alive "$gate" || { fail "$name" "rtmpgate did not start"; return 0; }

    t0=$(date +%s%N)
    via_proxy "$sp" spawn_publisher pub 40 "$name.big_publish" \
        "rtmpt://127.0.0.1:$GATE_P/live/big" "$PUBLISH_SECS"
    if ! wait_exit "$pub" 20; then
        stop_pid "$pub"
        fail "$name" "ffmpeg publishing through the strict squid still runs after 20 s: no clear failure" "$WORK/$name.big_publish.log"
        return 0
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    rc=$(exit_code "$pub")
    local last n413
    last=$(grep -a -m 1 'HTTP error 413' "$WORK/$name.big_publish.log") || true
    n413=$(count_lines "$WORK/$name.squid/access.log" ' [A-Z_]+/413 ')
    log "$name: publisher through the strict squid exited with status $rc after ${ms}ms: $last; squid answered 413 $n413 times"
    if [[ "$rc" == 0 ]]; then
        fail "$name" "ffmpeg publishing through squid with request_body_max_size 4 KB exited 0" "$WORK/$name.big_publish.log"
        return 0
    elif ((n413 < 1)); then
        fail "$name" "squid never answered 413: the publisher failed for another reason" "$WORK/$name.big_publish.log"
        return 0
    elif [[ -z "$last" ]]; then
        fail "$name" "ffmpeg's log does not say 'HTTP error 413': the failure is not clear to its user" "$WORK/$name.big_publish.log"
        return 0
    fi

    via_proxy "$sp" stream_check why "$name" \
        "rtmp://127.0.0.1:$GATE_P/live/strict" \
        "rtmpt://127.0.0.1:$GATE_P/live/strict" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/strict"
    [[ -z "$why" ]] || { fail "$name" "after the refused publisher: $why"; return 0; }
    local i active=""
    for ((i = 0; i < 100; i++)); do
        active=$(gate_metric "$GATE_A" rtmpgate_rtmpt_sessions_active)
        [[ "$active" == 0 ]] && break
        sleep 0.1
    done
    squid_counts "$name" "$WORK/$name.gate.log" "$WORK/$name.squid"
    if [[ "$active" != 0 ]]; then
        fail "$name" "rtmpgate_rtmpt_sessions_active is '${active}' 10 s after the clients left, want 0 (session timeout 3 s)"
    elif ! alive "$gate"; then
        fail "$name" "rtmpgate exited during the case"
    else
        pass "$name"
    fi
}

# 5. RTMPS and RTMPTS through squid's CONNECT (the gate's TLS port is in
# SSL_ports, as a corporate proxy allows 443): rtmp_probe.py opens the
# tunnel, verifies rtmpgate's certificate against the private CA, and runs
# the RTMP handshake over TLS, then the RTMPT handshake inside TLS, on the
# same rtmps:// listener. squid's log must show both tunnels.
case_connect_tunnel() {
    local name=connect_tunnel sq sp why1 why2 n_tunnels
    sp=$(free_ports 1)
    start_squid sq "$name.squid" "$sp" || true
    CASE_PIDS+=("$sq")
    alive "$sq" || { fail "$name" "squid did not start"; return 0; }
    CASE_LOGS+=("$WORK/$name.squid/access.log" "$WORK/$name.squid/cache.log")
    probe why1 "$name.rtmps" rtmps "$sp" "$GATE_TLS_PORT" "$CA_DIR/ca.crt"
    probe why2 "$name.rtmpts" rtmpts "$sp" "$GATE_TLS_PORT" "$CA_DIR/ca.crt"
    sleep 0.5
    n_tunnels=$(count_lines "$WORK/$name.squid/access.log" " [A-Z_]+/200 [0-9]+ CONNECT 127\.0\.0\.1:$GATE_TLS_PORT ")
    log "$name: squid logged $n_tunnels CONNECT tunnels to rtmpgate's rtmps:// port"
    if [[ -n "$why1$why2" ]]; then
        fail "$name" "${why1}${why1:+${why2:+; }}${why2}"
    elif ((n_tunnels < 2)); then
        fail "$name" "squid's access log shows $n_tunnels CONNECT tunnels to 127.0.0.1:$GATE_TLS_PORT, want 2"
    elif ! alive "$RTMPGATE_PID"; then
        fail "$name" "rtmpgate exited during the case"
    else
        pass "$name"
    fi
}

# ------------------------------------------------ OBS and GStreamer ----

# make_trust_dir: $WORK/trust, the /etc/ssl/certs seen by OBS and GStreamer:
# the system bundle plus the private CA in ca-certificates.crt (GnuTLS's
# file; mbedTLS parses every file of the directory).
make_trust_dir() {
    TRUST_DIR="$WORK/trust"
    mkdir -p "$TRUST_DIR"
    cat /etc/ssl/certs/ca-certificates.crt "$CA_DIR/ca.crt" >"$TRUST_DIR/ca-certificates.crt"
    chmod -R a+rX "$TRUST_DIR"
    # shellcheck disable=SC2016 # $0 and $@ are the inner sh's
    TRUSTING=(unshare -m sh -c 'mount --bind "$0" /etc/ssl/certs && exec "$@"' "$TRUST_DIR")
    TRUST_ERR=""
    if ! "${TRUSTING[@]}" grep -q -F "$(sed -n 2p "$CA_DIR/ca.crt")" /etc/ssl/certs/ca-certificates.crt \
        >"$WORK/trust.log" 2>&1; then
        TRUST_ERR="cannot mount the private CA over /etc/ssl/certs in a private mount namespace (unshare -m needs root / CAP_SYS_ADMIN): $(tail -n 1 "$WORK/trust.log")"
        log "$TRUST_ERR"
    fi
}

# trust_ready NAME: fails case NAME (returns 1) when TRUSTING cannot work.
trust_ready() {
    [[ -z "$TRUST_ERR" ]] && return 0
    fail "$1" "$TRUST_ERR"
    return 1
}

# "${TRUSTING[@]}" CMD...: runs CMD in a private mount namespace where
# TRUST_DIR is /etc/ssl/certs (the host's store is left alone). Needs
# CAP_SYS_ADMIN (root, as the suite's apt-get does). An array, not a
# function, so that spawn (timeout) can run it.
TRUSTING=()

# gst_frames FLV: frames ffmpeg decodes from a recording (0 if none).
gst_frames() {
    if [[ -s "$1" ]]; then count_file_frames "$1"; else printf 0; fi
}

# gst_publish_play NAME STREAM [PROXY_PORT]: GStreamer rtmp2sink publishes
# a 320x240@25 H.264 stream (x264enc, SENT_FRAMES buffers) to
# rtmps://localhost/live/STREAM through rtmpgate, verifying its certificate
# with glib-networking (GnuTLS) against the private CA; rtmp2src plays it
# back the same way into an FLV file that must decode, and ffmpeg players
# (through rtmpgate and directly on nginx) decode it too. With PROXY_PORT,
# both GStreamer clients go through that HTTP proxy: GIO's libproxy
# resolver takes https_proxy from the environment and opens a CONNECT
# tunnel. Sets GST_WHY (empty on success).
gst_publish_play() {
    local name="$1" stream="$2" proxy="${3:-}" url="rtmps://localhost:$GATE_TLS_PORT/live/$2"
    local p_gate p_direct p_src p_sink rc_sink flv="$WORK/$name.rtmp2src.flv"
    # env's -u options must come before its assignments.
    local genv=(env -u https_proxy -u http_proxy -u HTTPS_PROXY -u HTTP_PROXY
        GIO_USE_PROXY_RESOLVER=libproxy no_proxy= NO_PROXY=)
    [[ -n "$proxy" ]] && genv+=(https_proxy="http://127.0.0.1:$proxy" http_proxy="http://127.0.0.1:$proxy")
    GST_WHY=""
    [[ -z "$TRUST_ERR" ]] || { GST_WHY="$TRUST_ERR"; return 0; }
    spawn_player p_gate 60 "$name.play_gate" "$url"
    spawn_player p_direct 60 "$name.play_direct" "rtmp://127.0.0.1:$NGINX_PORT/live/$stream"
    spawn p_src 60 "$WORK/$name.rtmp2src.log" "${genv[@]}" "${TRUSTING[@]}" gst-launch-1.0 -e \
        rtmp2src location="$url" idle-timeout=3 ! filesink location="$flv" buffer-mode=unbuffered
    sleep 1.5
    spawn p_sink 40 "$WORK/$name.rtmp2sink.log" "${genv[@]}" "${TRUSTING[@]}" gst-launch-1.0 -e \
        videotestsrc is-live=true num-buffers="$SENT_FRAMES" \
        ! "video/x-raw,width=320,height=240,framerate=$FPS/1" \
        ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max="$FPS" \
        ! h264parse ! flvmux streamable=true ! rtmp2sink location="$url"
    wait_exit "$p_sink" 30 || true
    sleep 3
    wait_exit "$p_src" 5 || true
    stop_pids "$p_gate" "$p_direct" "$p_src" "$p_sink"
    rc_sink=$(exit_code "$p_sink")
    local n_gate n_direct n_src
    n_gate=$(progress_frames "$WORK/$name.play_gate.progress" "$WORK/$name.play_gate.log")
    n_direct=$(progress_frames "$WORK/$name.play_direct.progress" "$WORK/$name.play_direct.log")
    n_src=$(gst_frames "$flv")
    log "$name: rtmp2sink rc=$rc_sink sent $SENT_FRAMES frames${proxy:+ through the proxy}; decoded: rtmp2src via rtmpgate${proxy:+ through the proxy}=$n_src, ffmpeg via rtmpgate=$n_gate, direct=$n_direct (need $MIN_PLAYER_FRAMES)"
    CASE_LOGS+=("$WORK/$name.rtmp2sink.log" "$WORK/$name.rtmp2src.log")
    if [[ "$rc_sink" != 0 ]]; then
        GST_WHY="gst-launch with rtmp2sink on $url exited with status $rc_sink"
    elif ((n_src < MIN_PLAYER_FRAMES)); then
        GST_WHY="rtmp2src's recording via rtmpgate decodes to $n_src frames, want >= $MIN_PLAYER_FRAMES"
        CASE_LOGS+=("$flv.decode.log")
    elif ((n_gate < MIN_PLAYER_FRAMES || n_direct < MIN_PLAYER_FRAMES)); then
        GST_WHY="ffmpeg players decoded $n_gate (via rtmpgate) and $n_direct (direct) frames, want >= $MIN_PLAYER_FRAMES"
        CASE_LOGS+=("$WORK/$name.play_gate.log" "$WORK/$name.play_direct.log")
    elif ! alive "$RTMPGATE_PID"; then
        GST_WHY="rtmpgate exited during the case"
    fi
}

# 6. GStreamer rtmp2sink / rtmp2src over rtmps:// through rtmpgate.
case_gstreamer_rtmps() {
    gst_publish_play gstreamer_rtmps gst
    if [[ -n "$GST_WHY" ]]; then fail gstreamer_rtmps "$GST_WHY"; else pass gstreamer_rtmps; fi
}

# 7. The same with both GStreamer clients behind squid: RTMPS through
# CONNECT by a real client (ffmpeg 5.1 cannot). squid must log two
# tunnels to rtmpgate's TLS port.
case_gstreamer_connect() {
    local name=gstreamer_connect sq sp n_tunnels
    sp=$(free_ports 1)
    start_squid sq "$name.squid" "$sp" || true
    CASE_PIDS+=("$sq")
    alive "$sq" || { fail "$name" "squid did not start"; return 0; }
    CASE_LOGS+=("$WORK/$name.squid/access.log" "$WORK/$name.squid/cache.log")
    gst_publish_play "$name" gstc "$sp"
    sleep 0.5
    n_tunnels=$(count_lines "$WORK/$name.squid/access.log" " TCP_TUNNEL/200 [0-9]+ CONNECT localhost:$GATE_TLS_PORT ")
    log "$name: squid logged $n_tunnels CONNECT tunnels to localhost:$GATE_TLS_PORT: $(grep -a CONNECT "$WORK/$name.squid/access.log" | awk '{ printf "%s%s %s bytes", sep, $3, $4; sep = ", " }')"
    if [[ -n "$GST_WHY" ]]; then
        fail "$name" "$GST_WHY"
    elif ((n_tunnels < 2)); then
        fail "$name" "squid's access log shows $n_tunnels CONNECT tunnels to localhost:$GATE_TLS_PORT, want 2 (rtmp2sink and rtmp2src)"
    else
        pass "$name"
    fi
}

# obs_home DIR SERVER KEY WS_PORT: a HOME for OBS Studio 29 with one profile
# (P: 320x180 at 10 fps, simple output mode, x264 ultrafast at 500 kb/s
# with a keyframe every second,
# custom RTMP service SERVER + KEY) and one scene collection (C: scene S
# holding a color source). FirstRun=false skips the auto-configuration
# wizard; obs-websocket listens on WS_PORT without authentication (for
# obs_stop.py).
obs_home() {
    local home="$1" server="$2" key="$3" ws="$4"
    local cfg="$home/.config/obs-studio"
    mkdir -p "$cfg/basic/profiles/P" "$cfg/basic/scenes"
    cat >"$cfg/global.ini" <<EOF
[General]
FirstRun=false
EnableAutoUpdates=false
[Basic]
Profile=P
ProfileDir=P
SceneCollection=C
SceneCollectionFile=C
ConfigOnNewProfile=false
[OBSWebSocket]
FirstLoad=false
ServerEnabled=true
ServerPort=$ws
AuthRequired=false
AlertsEnabled=false
EOF
    cat >"$cfg/basic/profiles/P/basic.ini" <<EOF
[General]
Name=P
[Video]
BaseCX=320
BaseCY=180
OutputCX=320
OutputCY=180
FPSType=1
FPSInt=10
ScaleType=bilinear
[Output]
Mode=Simple
[SimpleOutput]
StreamEncoder=x264
VBitrate=500
ABitrate=64
Preset=ultrafast
UseAdvanced=true
x264Settings=keyint=10
RecEncoder=x264
[Audio]
SampleRate=48000
ChannelSetup=Stereo
EOF
    cat >"$cfg/basic/profiles/P/service.json" <<EOF
{"type": "rtmp_custom", "settings": {"server": "$server", "key": "$key", "use_auth": false, "bwtest": false}}
EOF
    cat >"$cfg/basic/scenes/C.json" <<'EOF'
{
  "name": "C",
  "current_scene": "S",
  "current_program_scene": "S",
  "scene_order": [{"name": "S"}],
  "sources": [
    {"id": "color_source_v3", "versioned_id": "color_source_v3", "name": "Color",
     "enabled": true, "settings": {"color": 4278255360, "width": 320, "height": 180}},
    {"id": "scene", "versioned_id": "scene", "name": "S", "enabled": true,
     "settings": {"id_counter": 1, "items": [{"name": "Color", "id": 1, "visible": true,
       "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "align": 5,
       "bounds_type": 0, "bounds": {"x": 0.0, "y": 0.0}}]}}
  ],
  "transitions": [],
  "current_transition": "Fade",
  "transition_duration": 300
}
EOF
}

# obs_stream NAME SERVER KEY: OBS Studio (Debian obs-studio 29) under
# Xvfb with software GL streams the color scene to SERVER (the custom
# service URL, app rec: nginx-rtmp records it) with stream key KEY for
# OBS_STREAM_SECS after it logs "Streaming Start"; then obs_stop.py stops
# the stream through obs-websocket (OBS logs "Total frames output: N", the
# frames sent) and OBS is terminated. OBS
# trusts the private CA through TRUSTING (its librtmp fork loads every file
# in /etc/ssl/certs/ with mbedTLS). Checks OBS's log says the connection
# succeeded and that nginx's recording of KEY decodes to >= OBS_MIN_FRAMES
# frames, at least 80% of those OBS sent. (On TERM OBS exits at once,
# without that line.) Without the private CA OBS refuses rtmpgate's certificate ("Cert verify
# failed: 8"), so this also proves OBS verified it.
OBS_STREAM_SECS=6
OBS_MIN_FRAMES=$((10 * OBS_STREAM_SECS * 80 / 100))
obs_stream() {
    local name="$1" server="$2" key="$3" home="$WORK/$1.home" pid i ws
    trust_ready "$name" || return 0
    ws=$(free_ports 1)
    obs_home "$home" "$server" "$key" "$ws"
    local out="$WORK/$name.obs.log"
    CASE_LOGS+=("$out")
    spawn pid 90 "$out" env HOME="$home" LIBGL_ALWAYS_SOFTWARE=1 QT_QPA_PLATFORM=xcb \
        "${TRUSTING[@]}" xvfb-run -a -s "-screen 0 640x480x24" \
        obs --startstreaming --profile P --collection C --scene S \
        --disable-updater --disable-shutdown-check --multi --minimize-to-tray
    local t0 started=""
    t0=$(date +%s)
    for ((i = 0; i < 600; i++)); do
        grep -a -q 'Streaming Start' "$out" 2>/dev/null && { started=1; break; }
        grep -a -q -E 'Connection to .* failed' "$out" 2>/dev/null && break
        alive "$pid" || break
        sleep 0.1
    done
    local t_up=$(($(date +%s) - t0))
    local stopped="not tried" sent=0
    if [[ -n "$started" ]]; then
        sleep "$OBS_STREAM_SECS"
        stopped=$(timeout -k 2 15 python3 "$INTEROP_LIB_DIR/obs_stop.py" "$ws" 2>&1 | tail -n 1) || true
        for ((i = 0; i < 100; i++)); do
            grep -a -q 'Total frames output' "$out" && break
            sleep 0.1
        done
        sent=$(grep -a -o 'simple_stream.: Total frames output: [0-9]*' "$out" | tail -n 1 | grep -o '[0-9]*$') || true
        sent=${sent:-0}
    fi
    stop_pid "$pid"
    local conn flv frames=0
    conn=$(grep -a -E "Connection to .*(successful|failed)" "$out" | tail -n 1) || true
    sleep 1 # nginx closes the recording when the publisher's connection ends
    flv=$(find "$REC_DIR" -name "$key-*.flv" -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-) || true
    local secs=0
    if [[ -n "$flv" ]]; then
        frames=$(gst_frames "$flv")
        secs=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$flv" 2>/dev/null) || true
    fi
    log "$name: OBS up in ${t_up}s; ${conn:-no connection line}; stop through obs-websocket: $stopped; OBS sent $sent frames; nginx recording ${flv:-none}: ${secs:-0}s, decodes to $frames frames (need $OBS_MIN_FRAMES)"
    if [[ -z "$started" ]]; then
        fail "$name" "OBS did not start streaming to $server (waited up to 60 s): ${conn:-$(grep -a -i -E 'error|fail' "$out" | tail -n 1)}"
    elif [[ "$conn" != *successful* ]]; then
        fail "$name" "OBS's log has no successful connection to $server"
    elif ((sent < 10 * OBS_STREAM_SECS)); then
        fail "$name" "OBS reports $sent frames sent (obs_stop.py: $stopped), want >= $((10 * OBS_STREAM_SECS))"
    elif ((frames < OBS_MIN_FRAMES || frames * 100 < sent * 80)); then
        fail "$name" "nginx-rtmp's recording of $key decodes to $frames frames, want >= $OBS_MIN_FRAMES and >= 80% of the $sent OBS sent" ${flv:+"$flv.decode.log"}
    elif ! alive "$RTMPGATE_PID"; then
        fail "$name" "rtmpgate exited during the case"
    else
        pass "$name"
    fi
}

# 8. OBS Studio over rtmps://localhost (the certificate names localhost:
# OBS matches DNS names only) through rtmpgate with its default TLS
# settings, nginx-rtmp recording.
case_obs_rtmps() { obs_stream obs_rtmps "rtmps://localhost:$GATE_TLS_PORT/rec" obs_tls; }

# 9. OBS Studio over plain rtmp:// through rtmpgate.
case_obs_rtmp() { obs_stream obs_rtmp "rtmp://127.0.0.1:$GATE_PLAIN_PORT/rec" obs_plain; }

main() {
    local cases=("${ALL_CASES[@]}")
    if [[ -n "${NETWORK_CASES:-}" ]]; then
        read -r -a cases <<<"$NETWORK_CASES"
    fi
    ensure_network_peers
    ensure_rtmpgate
    make_workdir rtmpgate-networks
    log "work dir $WORK, rtmpgate $RTMPGATE_BIN"

    local ports
    mapfile -t ports < <(free_ports 3)
    NGINX_PORT=${ports[0]}
    GATE_TLS_PORT=${ports[1]}
    GATE_PLAIN_PORT=${ports[2]}
    # Application rec records every stream (OBS cases) into REC_DIR.
    REC_DIR="$WORK/rec"
    mkdir -p "$REC_DIR"
    chmod a+rwx "$REC_DIR"
    NGINX_ERROR_LOG="$WORK/nginx/error.log"
    start_nginx_instance NGINX_PID "$WORK/nginx" "$NGINX_PORT" \
        "application rec { live on; record all; record_path $REC_DIR; record_unique on; }" ||
        die "nginx-rtmp did not start on 127.0.0.1:$NGINX_PORT"
    # The certificate the TLS clients must trust: a private CA's, for the
    # name localhost (OBS matches DNS names only) and 127.0.0.1.
    CA_DIR="$WORK/ca"
    make_private_ca "$CA_DIR" localhost 127.0.0.1 || die "openssl could not make the private CA"
    RTMPGATE_LOG="$WORK/rtmpgate.log"
    start_gate RTMPGATE_PID rtmpgate "$GATE_TLS_PORT $GATE_PLAIN_PORT" \
        --listen "rtmps://127.0.0.1:$GATE_TLS_PORT" --listen "rtmp://127.0.0.1:$GATE_PLAIN_PORT" \
        --tls-cert "$CA_DIR/leaf.crt" --tls-key "$CA_DIR/leaf.key" \
        --upstream "rtmp://127.0.0.1:$NGINX_PORT" --drain-timeout 1s ||
        die "the main rtmpgate did not start"
    make_trust_dir

    run_cases "${cases[@]}"

    printf 'networks: %d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

main "$@"
