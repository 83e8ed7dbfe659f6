#!/usr/bin/env bash
# Interop suite: drives real peers (ffmpeg, rtmpdump, nginx-rtmp) through
# rtmpgate on 127.0.0.1 only.
#
#   tests/interop/run.sh                 # builds target/release/rtmpgate
#   RTMPGATE_BIN=/path/rtmpgate tests/interop/run.sh
#   INTEROP_CASES="rtmpdump_rtmps" tests/interop/run.sh   # a subset
#   KEEP_WORK=1 tests/interop/run.sh     # keep the temp dir (always kept on failure)
#
# Peers are installed with apt-get when missing; a peer still missing is a
# failure, never a skip. The last line is `interop: N passed, N failed`; the
# exit status is 1 if any case failed.
#
# rtmpgate listens on rtmps:// (RTMPS + RTMPTS), rtmp:// (RTMP + RTMPT),
# rtmpt:// and rtmpts:// (tunnel only), all relaying to one nginx-rtmp.
#
# To add a case: write a function `case_NAME` that ends with `pass NAME` or
# `fail NAME "why" LOGS...`, and append NAME to ALL_CASES. Helpers live in
# lib.sh. Cases run one after the other; a case may run several streams at
# once (publish_play with several URL groups), each with its own stream name.
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ALL_CASES=(rtmps_publish_play rtmp_plain_publish_play rtmpdump_rtmps
    rtmpt_publish_play rtmpts_publish_play rtmpdump_rtmpt rtmpdump_rtmpts
    shared_port dedicated_tunnel_ports)

FPS=25
PUBLISH_SECS=8
SENT_FRAMES=$((FPS * PUBLISH_SECS))
MIN_PLAYER_FRAMES=$((SENT_FRAMES * 90 / 100))

PASSED=0
FAILED=0

pass() {
    PASSED=$((PASSED + 1))
    printf 'PASS %s\n' "$1"
}

# fail NAME WHY [LOG...]: records a failure and prints the tails of the logs
# given plus rtmpgate's and nginx's.
fail() {
    local name="$1" why="$2"
    shift 2
    FAILED=$((FAILED + 1))
    printf 'FAIL %s: %s\n' "$name" "$why"
    show_logs "$@" "$RTMPGATE_LOG" "$NGINX_ERROR_LOG"
}

# publish_play NAME PUBLISH_URL GATE_PLAY_URL DIRECT_PLAY_URL [PUBLISH_URL
# GATE_PLAY_URL DIRECT_PLAY_URL]...: for each group of three URLs starts two
# players (through rtmpgate and directly on nginx), then the publisher; after
# the publishers end (+3 s) stops the players and checks the decoded frames.
# Several groups run at the same time (give each its own stream name); their
# logs are NAME.1.*, NAME.2.*, ...
publish_play() {
    local name="$1"
    shift
    if (($# == 0 || $# % 3 != 0)); then
        fail "$name" "publish_play: URLs must come in groups of three"
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
    local why="" logs=() rc n_gate n_direct what
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
            why="${why:+$why; }$what"
            logs+=("$WORK/${pfx[i]}.publish.log" "$WORK/${pfx[i]}.play_gate.log" "$WORK/${pfx[i]}.play_direct.log")
        fi
    done
    if [[ -n "$why" ]]; then
        fail "$name" "$why" "${logs[@]}"
    elif ! alive "$RTMPGATE_PID"; then
        fail "$name" "rtmpgate exited during the case"
    else
        pass "$name"
    fi
}

# a. ffmpeg publishes and plays over rtmps:// through rtmpgate.
case_rtmps_publish_play() {
    publish_play rtmps_publish_play \
        "rtmps://127.0.0.1:$GATE_TLS_PORT/live/a" \
        "rtmps://127.0.0.1:$GATE_TLS_PORT/live/a" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/a"
}

# b. Same through rtmpgate's plain rtmp:// listener.
case_rtmp_plain_publish_play() {
    publish_play rtmp_plain_publish_play \
        "rtmp://127.0.0.1:$GATE_PLAIN_PORT/live/plain" \
        "rtmp://127.0.0.1:$GATE_PLAIN_PORT/live/plain" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/plain"
}

# rtmpdump_record NAME PUBLISH_URL DUMP_URL: ffmpeg publishes PUBLISH_URL;
# rtmpdump joins the running stream 1.5 s later and records DUMP_URL live;
# the recording must decode.
#
# rtmpdump's end: --stop does not end a live recording from nginx-rtmp (the
# play duration is ignored for live streams). Over rtmp(s):// rtmpdump ends
# by itself (status 2) when no packet arrives for --timeout seconds after the
# publisher left. Over rtmpt(s):// it never does: librtmp keeps polling with
# /idle requests that each get an (empty) reply, so its socket read timeout
# never fires; it is stopped with TERM, on which it closes the file and exits
# with status 2 as well.
rtmpdump_record() {
    local name="$1" pub_url="$2" dump_url="$3"
    local out="$WORK/$name.flv" p_pub p_dump rc_dump rc_pub how="ended by itself"
    local min_frames=75 min_bytes=20000
    spawn_publisher p_pub 40 "$name.publish" "$pub_url" "$PUBLISH_SECS"
    sleep 1.5 # rtmpdump joins a running stream
    spawn p_dump 60 "$WORK/$name.rtmpdump.log" \
        rtmpdump --live --timeout 3 -r "$dump_url" -o "$out"
    wait_exit "$p_pub" 35 || true
    if ! wait_exit "$p_dump" 6; then
        how="stopped with TERM"
        stop_pid "$p_dump"
    fi
    rc_dump=$(exit_code "$p_dump")
    if [[ "$dump_url" == rtmpt* ]]; then note_rtmpdump_session "$name"; fi
    stop_pid "$p_pub"
    rc_pub=$(exit_code "$p_pub")
    local bytes=0 frames=0
    [[ -f "$out" ]] && bytes=$(stat -c %s "$out")
    ((bytes > 0)) && frames=$(count_file_frames "$out")
    log "$name: rtmpdump $dump_url $how, rc=$rc_dump; publisher $pub_url rc=$rc_pub; $bytes bytes, $frames frames decoded"
    local logs=("$WORK/$name.publish.log" "$WORK/$name.rtmpdump.log" "$out.decode.log")
    # rtmpdump exits 0 (complete) or 2 (incomplete: a live stream that ended).
    if [[ "$rc_dump" != 0 && "$rc_dump" != 2 ]]; then
        fail "$name" "rtmpdump exited with status $rc_dump" "${logs[@]}"
    elif ((bytes < min_bytes)); then
        fail "$name" "rtmpdump wrote $bytes bytes, want >= $min_bytes" "${logs[@]}"
    elif ((frames < min_frames)); then
        fail "$name" "recording decodes to $frames frames, want >= $min_frames" "${logs[@]}"
    elif [[ "$rc_pub" != 0 ]]; then
        fail "$name" "publisher ffmpeg exited with status $rc_pub" "${logs[@]}"
    elif ! alive "$RTMPGATE_PID"; then
        fail "$name" "rtmpgate exited during the case"
    else
        pass "$name"
    fi
}

# note_rtmpdump_session NAME: informational, never fails. librtmp ends an
# RTMPT session with a pipelined /close and closes the socket without
# reading the replies; says whether rtmpgate applied that /close. Only
# rtmpdump opens an RTMPT session in the rtmpdump cases, so it is the last
# one opened.
note_rtmpdump_session() {
    local name="$1" sid line
    sid=$(grep -a 'rtmpt session opened' "$RTMPGATE_LOG" | tail -n 1 |
        grep -a -o 'session=[0-9a-f]*' | cut -d= -f2) || true
    [[ -n "$sid" ]] || { log "$name: note: no RTMPT session in rtmpgate's log"; return 0; }
    sleep 1
    line=$(grep -a "rtmpt session closed session=$sid " "$RTMPGATE_LOG" | tail -n 1) || true
    if [[ -n "$line" ]]; then
        log "$name: rtmpdump's RTMPT session $sid closed: ${line#*rtmpt session closed }"
    else
        log "$name: note: rtmpdump's RTMPT session $sid still open 1 s after rtmpdump exited: its /close was not applied (the session expires after --rtmpt-session-timeout)"
    fi
}

# c. rtmpdump (librtmp + GnuTLS, default TLS settings: TLS 1.3, no session
# tickets expected) records a live stream over rtmps:// while ffmpeg
# publishes through rtmpgate.
case_rtmpdump_rtmps() {
    rtmpdump_record rtmpdump_rtmps \
        "rtmps://127.0.0.1:$GATE_TLS_PORT/live/b" \
        "rtmps://127.0.0.1:$GATE_TLS_PORT/live/b"
}

# d. ffmpeg publishes and plays over rtmpt:// (its rtmphttp: one keep-alive
# HTTP connection, every request written in two writes) on the plain
# rtmp:// listener, which sniffs POST and serves the tunnel.
case_rtmpt_publish_play() {
    publish_play rtmpt_publish_play \
        "rtmpt://127.0.0.1:$GATE_PLAIN_PORT/live/t" \
        "rtmpt://127.0.0.1:$GATE_PLAIN_PORT/live/t" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/t"
}

# e. Same over rtmpts:// on the rtmps:// listener (TLS, then POST). ffmpeg's
# https (GnuTLS here) does not verify certificates unless -tls_verify 1, so
# the self-signed certificate is accepted.
case_rtmpts_publish_play() {
    publish_play rtmpts_publish_play \
        "rtmpts://127.0.0.1:$GATE_TLS_PORT/live/ts" \
        "rtmpts://127.0.0.1:$GATE_TLS_PORT/live/ts" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/ts"
}

# f. rtmpdump (librtmp: pipelines requests without waiting for replies,
# parses replies by hand and case-sensitively) records over rtmpt:// on the
# plain listener while ffmpeg publishes over RTMP through rtmpgate.
case_rtmpdump_rtmpt() {
    rtmpdump_record rtmpdump_rtmpt \
        "rtmp://127.0.0.1:$GATE_PLAIN_PORT/live/x" \
        "rtmpt://127.0.0.1:$GATE_PLAIN_PORT/live/x"
}

# g. The same over rtmpts:// (librtmp + GnuTLS, HTTP tunnel inside TLS) on
# the rtmps:// listener while ffmpeg publishes over RTMPS.
case_rtmpdump_rtmpts() {
    rtmpdump_record rtmpdump_rtmpts \
        "rtmps://127.0.0.1:$GATE_TLS_PORT/live/xs" \
        "rtmpts://127.0.0.1:$GATE_TLS_PORT/live/xs"
}

# h. One port, two protocols at the same time: on the rtmps:// port an
# RTMPS publisher and an RTMPTS player; on the rtmp:// port an RTMP
# publisher and an RTMPT player (both pairs run concurrently).
case_shared_port() {
    publish_play shared_port \
        "rtmps://127.0.0.1:$GATE_TLS_PORT/live/sp_tls" \
        "rtmpts://127.0.0.1:$GATE_TLS_PORT/live/sp_tls" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/sp_tls" \
        "rtmp://127.0.0.1:$GATE_PLAIN_PORT/live/sp_plain" \
        "rtmpt://127.0.0.1:$GATE_PLAIN_PORT/live/sp_plain" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/sp_plain"
}

# expect_refused VAR NAME URL: an ffmpeg player on URL must exit non-zero
# within REFUSE_SECS without decoding a frame. On failure sets VAR to why
# (left empty on success).
REFUSE_SECS=5
expect_refused() {
    local __rvar="$1" name="$2" url="$3" pid rc frames t0 ms
    printf -v "$__rvar" '%s' ""
    t0=$(date +%s%N)
    spawn_player pid 30 "$name" "$url"
    if ! wait_exit "$pid" "$REFUSE_SECS"; then
        stop_pid "$pid"
        printf -v "$__rvar" '%s' "ffmpeg on $url was not refused: still running after ${REFUSE_SECS}s"
        return 0
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    rc=$(exit_code "$pid")
    frames=$(progress_frames "$WORK/$name.progress" "$WORK/$name.log")
    log "$name: ffmpeg on $url exited with status $rc after ${ms}ms, $frames frames: $(grep -a -v '^ *$' "$WORK/$name.log" | tail -n 1)"
    if [[ "$rc" == 0 ]]; then
        printf -v "$__rvar" '%s' "ffmpeg on $url exited with status 0, want non-zero"
    elif ((frames > 0)); then
        printf -v "$__rvar" '%s' "ffmpeg on $url decoded $frames frames, want a refusal"
    fi
}

# i. The tunnel-only listeners: publish + play over rtmpt:// and rtmpts://
# (concurrently), while RTMP on the rtmpt:// port and RTMPS on the rtmpts://
# port are refused (the ffmpeg client ends non-zero at once).
case_dedicated_tunnel_ports() {
    local name=dedicated_tunnel_ports why1 why2
    # A wrongly relayed client would find no stream and idle until its
    # -rw_timeout (15 s), so "still running after REFUSE_SECS" catches it.
    expect_refused why1 "$name.rtmp_on_rtmpt" "rtmp://127.0.0.1:$GATE_RTMPT_PORT/live/dr"
    expect_refused why2 "$name.rtmps_on_rtmpts" "rtmps://127.0.0.1:$GATE_RTMPTS_PORT/live/dr"
    if [[ -n "$why1$why2" ]]; then
        fail "$name" "${why1}${why1:+${why2:+; }}${why2}" \
            "$WORK/$name.rtmp_on_rtmpt.log" "$WORK/$name.rtmps_on_rtmpts.log"
        return 0
    fi
    publish_play "$name" \
        "rtmpt://127.0.0.1:$GATE_RTMPT_PORT/live/dt" \
        "rtmpt://127.0.0.1:$GATE_RTMPT_PORT/live/dt" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/dt" \
        "rtmpts://127.0.0.1:$GATE_RTMPTS_PORT/live/dts" \
        "rtmpts://127.0.0.1:$GATE_RTMPTS_PORT/live/dts" \
        "rtmp://127.0.0.1:$NGINX_PORT/live/dts"
}

# gate_log_summary: how rtmpgate's connections and RTMPT sessions ended
# (informational, never fails): counts per reason, every client_error line,
# and the RTMPT sessions still open (clients that never sent /close are
# dropped after --rtmpt-session-timeout).
gate_log_summary() {
    [[ -f "$RTMPGATE_LOG" ]] || return 0
    local conns sessions opened closed
    conns=$(grep -a 'connection closed' "$RTMPGATE_LOG" |
        grep -a -o 'protocol="[^"]*" reason="[^"]*"' | sort | uniq -c |
        awk '{ printf "%s%s %s x%s", sep, $2, $3, $1; sep = ", " }') || true
    sessions=$(grep -a 'rtmpt session closed' "$RTMPGATE_LOG" |
        grep -a -o 'reason="[^"]*"' | sort | uniq -c |
        awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }') || true
    opened=$(grep -a -c 'rtmpt session opened' "$RTMPGATE_LOG") || true
    closed=$(grep -a -c 'rtmpt session closed' "$RTMPGATE_LOG") || true
    log "rtmpgate connections closed: ${conns:-none}"
    log "rtmpgate rtmpt sessions: $opened opened, $closed closed (${sessions:-none}), $((opened - closed)) still open"
    if grep -a -q 'reason="client_error"' "$RTMPGATE_LOG"; then
        log "rtmpgate client_error lines:"
        grep -a 'reason="client_error"' "$RTMPGATE_LOG" >&2 || true
    else
        log "rtmpgate log: no reason=\"client_error\""
    fi
}

main() {
    local cases=("${ALL_CASES[@]}")
    if [[ -n "${INTEROP_CASES:-}" ]]; then
        read -r -a cases <<<"$INTEROP_CASES"
    fi
    ensure_peers
    ensure_rtmpgate
    make_workdir rtmpgate-interop
    log "work dir $WORK, rtmpgate $RTMPGATE_BIN"

    local ports
    mapfile -t ports < <(free_ports 5)
    NGINX_PORT=${ports[0]}
    GATE_TLS_PORT=${ports[1]}
    GATE_PLAIN_PORT=${ports[2]}
    GATE_RTMPT_PORT=${ports[3]}
    GATE_RTMPTS_PORT=${ports[4]}

    start_nginx "$NGINX_PORT"
    start_rtmpgate "$NGINX_PORT" \
        "rtmps://127.0.0.1:$GATE_TLS_PORT" "rtmp://127.0.0.1:$GATE_PLAIN_PORT" \
        "rtmpt://127.0.0.1:$GATE_RTMPT_PORT" "rtmpts://127.0.0.1:$GATE_RTMPTS_PORT"

    local c
    for c in "${cases[@]}"; do
        if ! declare -F "case_$c" >/dev/null; then
            fail "$c" "no such case"
            continue
        fi
        log "case $c"
        "case_$c" || fail "$c" "case aborted (status $?)"
    done

    gate_log_summary
    printf 'interop: %d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

main "$@"
