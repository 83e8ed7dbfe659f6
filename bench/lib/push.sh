# shellcheck shell=bash
# Shared by bench/bulk_push.sh and bench/push_syscalls.sh (sourced after
# tests/interop/lib.sh): the TLS version caps and the test FLV.

# push_tls_caps VERSION: sets GATE_VERSIONS (rtmpgate --tls-versions) and
# PEER_MAXVER (HAProxy ssl-max-ver / stunnel sslVersionMax; empty = none)
# so every terminator offers at most VERSION (1.3 or 1.2).
# shellcheck disable=SC2034 # set for the sourcing script
push_tls_caps() {
    case "$1" in
    1.3) GATE_VERSIONS="1.2,1.3" PEER_MAXVER="" ;;
    1.2) GATE_VERSIONS="1.2" PEER_MAXVER="TLSv1.2" ;;
    *) die "TLS must be 1.3 or 1.2, not $1" ;;
    esac
}

# make_push_flv FILE SECS: SECS of 1280x720@30 noisy H.264 at ~280 Mbit/s
# (about 35 MB per second) into FILE, unless FILE already has content.
make_push_flv() {
    local file="$1" secs="$2"
    if [[ -s "$file" ]]; then
        log "reusing $file"
        return 0
    fi
    log "generating ${secs}s of 1280x720@30 high-bitrate H.264 into $file"
    timeout -s TERM -k 5 300 ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=1280x720:rate=30" -t "$secs" \
        -vf "noise=alls=30:allf=t" -c:v libx264 -preset ultrafast -qp 8 -g 60 \
        -pix_fmt yuv420p -f flv "$file.part" </dev/null || die "generating the FLV failed"
    mv "$file.part" "$file"
}
