#!/usr/bin/env bash
# Where a real encoder's RTMPS push costs the TLS terminator: one ffmpeg
# push (`-c copy`, no `-re`) of the same FLV into nginx-rtmp through
# rtmpgate and through HAProxy (`mode tcp`, `ssl crt`), each proxy under
# `strace -c -f` for its push, plus ffmpeg's own socket writes (one call per
# TLS record GnuTLS sends) under `strace -e`. Prints system calls per MB
# pushed for each proxy and a histogram of ffmpeg's write sizes. Counts, not
# timings: strace slows every process it traces, so no MB/s is printed
# (bench/bulk_push.sh measures those without it). All on 127.0.0.1.
#
#   bash bench/push_syscalls.sh
#   BENCH_SECS=4 TLS=1.2 RTMPGATE_BIN=target/release/rtmpgate bash bench/push_syscalls.sh
#
# Knobs: BENCH_SECS (10 s of video, ~350 MB), TLS (1.3 | 1.2: both
# proxies capped at that version), SRC_FLV (reuse an FLV).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/interop/lib.sh
source "$HERE/../tests/interop/lib.sh"
# shellcheck source=bench/lib/push.sh
source "$HERE/lib/push.sh"

BENCH_SECS="${BENCH_SECS:-10}"
TLS="${TLS:-1.3}"
push_tls_caps "$TLS"

# per_mb STRACE_SUMMARY MB: the calls of each system call made at least
# once per 2 MB, per MB pushed, busiest first.
per_mb() {
    awk -v mb="$2" '
        $1 ~ /^[0-9.]+$/ && $NF != "total" {
            calls = ($4 ~ /^[0-9]+$/) ? $4 : 0
            if (calls / mb >= 0.5) printf "  %-14s %8.1f per MB\n", $NF, calls / mb
            total += calls
        }
        END { printf "  %-14s %8.1f per MB\n", "all", total / mb }' "$1" | sort -k2 -rn
}

main() {
    ensure_peers
    command -v haproxy >/dev/null 2>&1 || die "haproxy is missing: apt-get install -y haproxy"
    command -v strace >/dev/null 2>&1 || die "strace is missing: apt-get install -y strace"
    ensure_rtmpgate
    make_workdir rtmpgate-syscalls
    local src="${SRC_FLV:-$WORK/bulk.flv}"
    make_push_flv "$src" "$BENCH_SECS"
    local bytes mb
    bytes=$(stat -c %s "$src")
    mb=$(awk -v b="$bytes" 'BEGIN { printf "%.3f", b / 1e6 }')

    local ports
    mapfile -t ports < <(free_ports 3)
    local nginx_port=${ports[0]} gate_port=${ports[1]} haproxy_port=${ports[2]}
    start_nginx "$nginx_port" 16M
    local crt="$WORK/rsa.crt" key="$WORK/rsa.key"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$key" -out "$crt" >"$WORK/openssl.log" 2>&1 || die "openssl req failed"
    cat "$crt" "$key" >"$WORK/rsa.pem"
    local gate_pid haproxy_pid
    spawn gate_pid 900 "$WORK/rtmpgate.log" env RUST_LOG=warn NO_COLOR=1 "$RTMPGATE_BIN" \
        --listen "rtmps://127.0.0.1:$gate_port" --upstream "rtmp://127.0.0.1:$nginx_port" \
        --tls-cert "$crt" --tls-key "$key" --tls-versions "$GATE_VERSIONS" --drain-timeout 1s
    write_haproxy_tls "$WORK/haproxy.cfg" "$haproxy_port" "$WORK/rsa.pem" "$nginx_port" 100 2m "$PEER_MAXVER"
    spawn haproxy_pid 900 "$WORK/haproxy.log" haproxy -db -f "$WORK/haproxy.cfg"
    wait_port "$gate_port" "$gate_pid" 15 || die "rtmpgate did not listen"
    wait_port "$haproxy_port" "$haproxy_pid" 15 || die "haproxy did not listen"

    local who port tpid pid strace_pid push_pid rc
    for who in rtmpgate haproxy; do
        if [[ $who == rtmpgate ]]; then port=$gate_port tpid=$gate_pid; else port=$haproxy_port tpid=$haproxy_pid; fi
        pid=$(ps -o pid= --ppid "$tpid" | head -n 1 | tr -d ' ')
        [[ -n "$pid" ]] || die "$who is not running"
        spawn strace_pid 300 "$WORK/$who.strace.log" strace -c -f -o "$WORK/$who.strace" -p "$pid"
        sleep 1 # strace attached to every thread
        spawn push_pid 280 "$WORK/$who.push.log" strace -f -e trace=write,sendto,sendmsg,writev \
            -o "$WORK/$who.ffmpeg.trace" ffmpeg -nostdin -hide_banner -loglevel error -i "$src" \
            -map 0 -c copy -f flv "rtmps://127.0.0.1:$port/live/syscalls_$who"
        wait_exit "$push_pid" 285 || true
        stop_pid "$push_pid"
        rc=$(exit_code "$push_pid")
        [[ "$rc" == 0 ]] || { show_logs "$WORK/$who.push.log" >&2; die "the push through $who failed ($rc)"; }
        kill -INT "$strace_pid" 2>/dev/null || true
        wait_exit "$strace_pid" 20 || true
        stop_pid "$strace_pid"
        [[ -s "$WORK/$who.strace" ]] || die "strace wrote no summary for $who"
        printf '\n%s (TLS %s): system calls per MB pushed (%s MB)\n' "$who" "$TLS" "$mb"
        per_mb "$WORK/$who.strace" "$mb"
    done
    printf '\nffmpeg socket writes on the rtmps push (one TLS record each; bytes per call incl. TLS overhead)\n'
    grep -oE '^[0-9]+ +(write|sendto|sendmsg|writev)\([0-9]+, .*= [0-9]+$' "$WORK/rtmpgate.ffmpeg.trace" |
        grep -oE '[0-9]+$' | awk -v mb="$mb" '
            { n = $1; c++; s += n; if (n < 100) a++; else if (n < 1000) b++; else if (n < 8192) d++; else e++ }
            END {
                if (!c) { print "  none seen"; exit 1 }
                printf "  %d calls, %.1f per MB, mean %.0f B: < 100 B %d, 100-999 B %d, 1000-8191 B %d, >= 8192 B %d\n",
                    c, c / mb, s / c, a, b, d, e
            }'
}

main "$@"
