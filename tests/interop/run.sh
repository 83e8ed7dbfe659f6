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
# To add a case (e.g. RTMPT over rtmpt://, rtmpts://): write a function
# `case_NAME` that ends with `pass NAME` or `fail NAME "why" LOGS...`, and
# append NAME to ALL_CASES. Helpers live in lib.sh.
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ALL_CASES=(rtmps_publish_play rtmp_plain_publish_play rtmpdump_rtmps)

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

# publish_play NAME PUBLISH_URL GATE_PLAY_URL DIRECT_PLAY_URL: starts two
# players (through rtmpgate and directly on nginx), then the publisher; after
# the publisher ends (+3 s) stops the players and checks the decoded frames.
publish_play() {
    local name="$1" pub_url="$2" gate_url="$3" direct_url="$4"
    local p_gate p_direct p_pub rc
    spawn_player p_gate 60 "$name.play_gate" "$gate_url"
    spawn_player p_direct 60 "$name.play_direct" "$direct_url"
    sleep 1.5 # let both players connect and subscribe before the first keyframe
    spawn_publisher p_pub 40 "$name.publish" "$pub_url" "$PUBLISH_SECS"
    wait_exit "$p_pub" 35 || true
    sleep 3 # let the last frames reach the players
    stop_pids "$p_gate" "$p_direct" "$p_pub"
    rc=$(exit_code "$p_pub")
    local n_gate n_direct
    n_gate=$(progress_frames "$WORK/$name.play_gate.progress" "$WORK/$name.play_gate.log")
    n_direct=$(progress_frames "$WORK/$name.play_direct.progress" "$WORK/$name.play_direct.log")
    log "$name: publisher rc=$rc, frames decoded: via rtmpgate=$n_gate direct=$n_direct (sent $SENT_FRAMES, need $MIN_PLAYER_FRAMES)"
    local logs=("$WORK/$name.publish.log" "$WORK/$name.play_gate.log" "$WORK/$name.play_direct.log")
    if [[ "$rc" != 0 ]]; then
        fail "$name" "publisher ffmpeg exited with status $rc" "${logs[@]}"
    elif ((n_gate < MIN_PLAYER_FRAMES)); then
        fail "$name" "player via rtmpgate decoded $n_gate frames, want >= $MIN_PLAYER_FRAMES of $SENT_FRAMES" "${logs[@]}"
    elif ((n_direct < MIN_PLAYER_FRAMES)); then
        fail "$name" "direct player decoded $n_direct frames, want >= $MIN_PLAYER_FRAMES of $SENT_FRAMES" "${logs[@]}"
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

# c. rtmpdump (librtmp + GnuTLS, default TLS settings: TLS 1.3, no session
# tickets expected) records a live stream over rtmps:// while ffmpeg
# publishes through rtmpgate.
case_rtmpdump_rtmps() {
    local name=rtmpdump_rtmps
    local out="$WORK/$name.flv" p_pub p_dump rc_dump rc_pub
    local min_frames=75 min_bytes=20000
    spawn_publisher p_pub 40 "$name.publish" "rtmps://127.0.0.1:$GATE_TLS_PORT/live/b" "$PUBLISH_SECS"
    sleep 1.5 # rtmpdump joins a running stream
    # --stop does not end a live recording from nginx-rtmp (the play duration
    # is ignored for live streams); rtmpdump ends when no packet arrives for
    # --timeout seconds after the publisher left.
    spawn p_dump 30 "$WORK/$name.rtmpdump.log" \
        rtmpdump --live --timeout 3 \
        -r "rtmps://127.0.0.1:$GATE_TLS_PORT/live/b" -o "$out"
    wait_exit "$p_dump" 20 || true
    stop_pid "$p_dump"
    rc_dump=$(exit_code "$p_dump")
    wait_exit "$p_pub" 15 || true
    stop_pid "$p_pub"
    rc_pub=$(exit_code "$p_pub")
    local bytes=0 frames=0
    [[ -f "$out" ]] && bytes=$(stat -c %s "$out")
    ((bytes > 0)) && frames=$(count_file_frames "$out")
    log "$name: rtmpdump rc=$rc_dump publisher rc=$rc_pub, out.flv $bytes bytes, $frames frames decoded"
    local logs=("$WORK/$name.publish.log" "$WORK/$name.rtmpdump.log" "$out.decode.log")
    # rtmpdump exits 0 (complete) or 2 (incomplete: --stop on a live stream).
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
    mapfile -t ports < <(free_ports 3)
    NGINX_PORT=${ports[0]}
    GATE_TLS_PORT=${ports[1]}
    GATE_PLAIN_PORT=${ports[2]}

    start_nginx "$NGINX_PORT"
    start_rtmpgate "$NGINX_PORT" \
        "rtmps://127.0.0.1:$GATE_TLS_PORT" "rtmp://127.0.0.1:$GATE_PLAIN_PORT"

    local c
    for c in "${cases[@]}"; do
        if ! declare -F "case_$c" >/dev/null; then
            fail "$c" "no such case"
            continue
        fi
        log "case $c"
        "case_$c" || fail "$c" "case aborted (status $?)"
    done

    printf 'interop: %d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

main "$@"
