#!/usr/bin/env bash
# Bulk push throughput with a real encoder: the same high-bitrate FLV pushed
# as fast as possible (ffmpeg -c copy, no -re) into nginx-rtmp, directly,
# through rtmpgate (rtmp:// and rtmps://), and over rtmps:// through HAProxy
# (mode tcp, `ssl crt`) and stunnel4 — the same RSA-2048 certificate for all
# three TLS terminators —, in interleaved rounds (the order rotates each
# round), all on 127.0.0.1. Reports MB/s (median), the ratio to direct and to
# HAProxy, and each proxy's CPU per GB (utime+stime of the proxy process).
#
#   bench/bulk_push.sh
#   ROUNDS=7 BENCH_SECS=20 bench/bulk_push.sh
#   RTMPGATE_BIN=/path/rtmpgate bench/bulk_push.sh
#
# Knobs: ROUNDS (5), BENCH_SECS (10 s of 1280x720@30 noisy H.264 at ~280
# Mbit/s, about 350 MB), KEEP_WORK=1 keeps the temp dir.
# PATHS (all six by default) picks a subset, e.g. PATHS="direct gate_rtmps".
# encoder_tls is the encoder's own ceiling, no proxy: the same FLV with
# `-f flv tls://` into bench/lib/tls_sink.py, which completes the handshake
# (the row's TLS version) and discards; ffmpeg encrypts as on an rtmps://
# push but nothing is forwarded, so no TLS terminator can let it go faster.
# TLS (1.3 by default; ffmpeg's GnuTLS prefers it) or TLS=1.2: every TLS
# terminator offers at most that version (rtmpgate --tls-versions 1.2,
# HAProxy ssl-max-ver TLSv1.2, stunnel sslVersionMax), so the TLS 1.2 path is
# measured with the same encoder.
# MB = 10^6 bytes, GB = 10^9 bytes. "proxy CPU s/GB" is the proxy's
# utime+stime (from /proc/PID/stat, all threads) per GB of file pushed.
# Note: ffmpeg, nginx and rtmpgate share this machine's CPUs, so absolute
# numbers depend on the core count; compare the ratio within one run.
#
# For bench/run.sh (its opt-in `push` workload), two more knobs; the output
# above does not change:
#   PUSH_RESULTS=FILE  also append one line per push to FILE, in run.sh's
#                      record format (`workload=push variant=tlsV proxy=P
#                      path=PATH rep=R cpu_s=S wall_s=S mode=push ok=0|1
#                      bytes=B secs=S mbps=X rc=RC`; proxy is direct,
#                      rtmpgate, haproxy or stunnel).
#   SRC_FLV=FILE       the FLV to push: generated into FILE when FILE does
#                      not exist yet, reused when it does (one file for
#                      several runs; it must come from the same BENCH_SECS).
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../tests/interop/lib.sh"
# shellcheck source=bench/lib/push.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/push.sh"

ROUNDS="${ROUNDS:-5}"
BENCH_SECS="${BENCH_SECS:-10}"
TLS="${TLS:-1.3}"
push_tls_caps "$TLS"
ALL_PATHS="direct encoder_tls gate_rtmp gate_rtmps haproxy_rtmps stunnel_rtmps"
read -r -a PATHS <<<"${PATHS:-$ALL_PATHS}"

# cpu_ticks TIMEOUT_PID: utime+stime of the process `spawn` started under
# that timeout (its child), in clock ticks; 0 when there is none.
cpu_ticks() {
    local pid
    [[ -n "$1" ]] || { echo 0; return; }
    pid=$(ps -o pid= --ppid "$1" | head -n 1 | tr -d ' ')
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || { echo 0; return; }
    # Fields after "(comm)": state is $1, utime is $12, stime is $13.
    sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

now() { date +%s.%N; }

# start_proxies NGINX TLS PLAIN HAPROXY STUNNEL: rtmpgate (rtmps on TLS, rtmp
# on PLAIN), HAProxy and stunnel in front of nginx, all with one RSA-2048
# certificate made here. Same settings as bench/run.sh: no per-connection
# logging, TCP_NODELAY, HAProxy nbthread = cores.
start_proxies() {
    local nginx=$1 tls=$2 plain=$3 hport=$4 sport=$5
    local crt="$WORK/rsa.crt" key="$WORK/rsa.key"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$key" -out "$crt" >"$WORK/openssl.log" 2>&1 || die "openssl req failed"
    cat "$crt" "$key" >"$WORK/rsa.pem"
    RTMPGATE_LOG="$WORK/rtmpgate.log"
    spawn RTMPGATE_PID 900 "$RTMPGATE_LOG" env RUST_LOG=warn NO_COLOR=1 "$RTMPGATE_BIN" \
        --listen "rtmps://127.0.0.1:$tls" --listen "rtmp://127.0.0.1:$plain" \
        --upstream "rtmp://127.0.0.1:$nginx" --tls-cert "$crt" --tls-key "$key" \
        --tls-versions "$GATE_VERSIONS" --drain-timeout 1s
    write_haproxy_tls "$WORK/haproxy.cfg" "$hport" "$WORK/rsa.pem" "$nginx" 100 2m "$PEER_MAXVER"
    spawn HAPROXY_PID 900 "$WORK/haproxy.log" haproxy -db -f "$WORK/haproxy.cfg"
    write_stunnel_tls "$WORK/stunnel.conf" "$sport" "$nginx" "$crt" "$key" "$WORK/stunnel.log" "$PEER_MAXVER"
    spawn STUNNEL_PID 900 "$WORK/stunnel.out" stunnel "$WORK/stunnel.conf"
    local port pid
    for port in "$tls:$RTMPGATE_PID" "$plain:$RTMPGATE_PID" "$hport:$HAPROXY_PID" "$sport:$STUNNEL_PID"; do
        pid=${port#*:}
        port=${port%%:*}
        if ! wait_port "$port" "$pid" 15; then
            tail -n 30 "$RTMPGATE_LOG" "$WORK/haproxy.log" "$WORK/stunnel.out" >&2 || true
            die "a proxy did not listen on 127.0.0.1:$port"
        fi
    done
    log "rtmpgate (pid $RTMPGATE_PID), haproxy (pid $HAPROXY_PID), stunnel (pid $STUNNEL_PID) up"
    # Every terminator must negotiate the version asked for with a client
    # that offers both, or the comparison is not the one printed.
    local got
    for port in "$tls" "$hport" "$sport"; do
        got=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief </dev/null 2>&1 |
            awk -F': *' '/^Protocol version/ { print $2; exit }') || true
        [[ "$got" == "TLSv$TLS" ]] || die "127.0.0.1:$port negotiated '${got:-nothing}', not TLSv$TLS"
    done
    log "all three TLS terminators negotiate TLSv$TLS (TLS=$TLS)"
}

# push_record ROUND PATH BYTES SECS RC TICKS CLK_TCK: one line for bench/run.sh
# (PUSH_RESULTS). A push counts (ok=1) only if ffmpeg exited 0.
push_record() {
    local proxy
    case $2 in
    direct) proxy=direct ;;
    encoder_tls) proxy=encoder ;;
    gate_*) proxy=rtmpgate ;;
    *) proxy=${2%%_*} ;;
    esac
    awk -v r="$1" -v path="$2" -v p="$proxy" -v b="$3" -v s="$4" -v rc="$5" -v t="$6" -v hz="$7" -v tv="$TLS" \
        'BEGIN { printf "workload=push variant=tls%s proxy=%s path=%s rep=%s cpu_s=%.3f wall_s=%.3f mode=push ok=%d bytes=%s secs=%.3f mbps=%.3f rc=%s\n",
                 tv, p, path, r, (p == "direct" || p == "encoder" ? 0 : t / hz), s, (rc == 0), b, s, (s > 0 ? b / 1e6 / s : 0), rc }' \
        >>"$PUSH_RESULTS"
}

main() {
    ((ROUNDS >= 1 && ROUNDS <= 50)) || die "ROUNDS must be 1..50"
    local path
    for path in "${PATHS[@]}"; do
        [[ " $ALL_PATHS " == *" $path "* ]] || die "unknown path $path in PATHS (known: $ALL_PATHS)"
    done
    ensure_peers # stunnel among them
    command -v haproxy >/dev/null 2>&1 || die "haproxy is missing: apt-get install -y haproxy"
    ensure_rtmpgate
    make_workdir rtmpgate-bench
    log "work dir $WORK, rtmpgate $RTMPGATE_BIN"

    local src="${SRC_FLV:-$WORK/bulk.flv}"
    make_push_flv "$src" "$BENCH_SECS"
    local bytes
    bytes=$(stat -c %s "$src")
    log "source: $bytes bytes"

    local ports
    mapfile -t ports < <(free_ports 6)
    local nginx_port=${ports[0]} tls_port=${ports[1]} plain_port=${ports[2]}
    local haproxy_port=${ports[3]} stunnel_port=${ports[4]} sink_port=${ports[5]}
    # Keyframes of this file exceed nginx-rtmp's default max_message (1M).
    start_nginx "$nginx_port" 16M
    start_proxies "$nginx_port" "$tls_port" "$plain_port" "$haproxy_port" "$stunnel_port"
    local sink_pid
    spawn sink_pid 900 "$WORK/tls_sink.log" python3 "$(dirname "${BASH_SOURCE[0]}")/lib/tls_sink.py" \
        "$sink_port" "$WORK/rsa.crt" "$WORK/rsa.key" "$TLS"
    wait_port "$sink_port" "$sink_pid" 15 || die "the TLS sink did not listen on 127.0.0.1:$sink_port"

    local tck
    tck=$(getconf CLK_TCK)
    local results="$WORK/results.tsv"
    printf 'round\tpath\tbytes\tsecs\trc\tproxy_ticks\n' >"$results"

    local r i k url proxy pid t0 t1 c0 c1 rc secs
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < ${#PATHS[@]}; k++)); do
            # Rotate the order each round so no path always goes first.
            i=$(((k + r - 1) % ${#PATHS[@]}))
            path=${PATHS[$i]}
            case $path in
            direct) url="rtmp://127.0.0.1:$nginx_port/live/bulk_${r}_$path" proxy="" ;;
            encoder_tls) url="tls://127.0.0.1:$sink_port" proxy="" ;;
            gate_rtmp) url="rtmp://127.0.0.1:$plain_port/live/bulk_${r}_$path" proxy=$RTMPGATE_PID ;;
            gate_rtmps) url="rtmps://127.0.0.1:$tls_port/live/bulk_${r}_$path" proxy=$RTMPGATE_PID ;;
            haproxy_rtmps) url="rtmps://127.0.0.1:$haproxy_port/live/bulk_${r}_$path" proxy=$HAPROXY_PID ;;
            stunnel_rtmps) url="rtmps://127.0.0.1:$stunnel_port/live/bulk_${r}_$path" proxy=$STUNNEL_PID ;;
            esac
            c0=$(cpu_ticks "$proxy")
            t0=$(now)
            spawn pid 120 "$WORK/push_${r}_$path.log" \
                ffmpeg -nostdin -hide_banner -loglevel warning -i "$src" \
                -map 0 -c copy -f flv "$url"
            wait_exit "$pid" 115 || true
            t1=$(now)
            stop_pid "$pid"
            rc=$(exit_code "$pid")
            c1=$(cpu_ticks "$proxy")
            secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$path" "$bytes" "$secs" \
                "$rc" "$((c1 - c0))" >>"$results"
            [[ -z "${PUSH_RESULTS:-}" ]] || push_record "$r" "$path" "$bytes" "$secs" "$rc" "$((c1 - c0))" "$tck"
            if [[ "$rc" != 0 ]]; then
                log "round $r $path: ffmpeg exited with status $rc"
                show_logs "$WORK/push_${r}_$path.log" "$RTMPGATE_LOG" "$WORK/haproxy.log" \
                    "$WORK/stunnel.log" "$NGINX_ERROR_LOG" >&2
            fi
        done
    done

    # What ffmpeg negotiated with a server that follows its preference.
    [[ ! -s "$WORK/tls_sink.log" ]] ||
        log "TLS sink: $(awk '{ print $2, $3 }' "$WORK/tls_sink.log" | sort | uniq -c | tr -s ' ' | paste -sd ';')"
    TLS="$TLS" python3 - "$results" "$tck" "${PATHS[@]}" <<'REPORT'
import csv, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tck = float(sys.argv[2])
order = sys.argv[3:]
names = {"direct": "direct rtmp -> nginx", "encoder_tls": "flv over tls:// -> sink",
         "gate_rtmp": "rtmp  -> rtmpgate -> nginx",
         "gate_rtmps": "rtmps -> rtmpgate -> nginx", "haproxy_rtmps": "rtmps -> haproxy  -> nginx",
         "stunnel_rtmps": "rtmps -> stunnel  -> nginx"}
print()
print(f"{'round':>5}  {'path':<27} {'MB':>8} {'secs':>7} {'MB/s':>8} {'proxy CPU s':>11}  rc")
failed = 0
per = {p: [] for p in order}
cpu = {p: [0.0, 0] for p in order}
for r in rows:
    mb = int(r["bytes"]) / 1e6
    secs = float(r["secs"])
    ok = r["rc"] == "0"
    failed += not ok
    rate = mb / secs if ok and secs > 0 else float("nan")
    if ok:
        per[r["path"]].append(rate)
        cpu[r["path"]][0] += int(r["proxy_ticks"]) / tck
        cpu[r["path"]][1] += int(r["bytes"])
    pcpu = "-" if r["path"] in ("direct", "encoder_tls") else f"{int(r['proxy_ticks']) / tck:.2f}"
    print(f"{r['round']:>5}  {names[r['path']]:<27} {mb:8.1f} {secs:7.3f} {rate:8.1f} {pcpu:>11}  {r['rc']}")
print()
med = {p: statistics.median(v) for p, v in per.items() if v}
cpg = {p: cpu[p][0] / (cpu[p][1] / 1e9) for p in order if p not in ("direct", "encoder_tls") and cpu[p][1]}
def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"
print(f"{'path':<27} {'median MB/s':>11} {'min':>8} {'max':>8} {'vs direct':>9} {'vs haproxy':>10} {'proxy CPU s/GB':>14} {'CPU vs haproxy':>14}")
for p in order:
    v = per[p]
    if not v:
        print(f"{names[p]:<27} {'n/a':>11}")
        continue
    vs_direct = ratio(med[p], med["direct"]) if "direct" in med else "-"
    vs_haproxy = ratio(med[p], med["haproxy_rtmps"]) if "haproxy_rtmps" in med else "-"
    c = f"{cpg[p]:.2f}" if p in cpg else "-"
    c_vs = ratio(cpg[p], cpg["haproxy_rtmps"]) if p in cpg and "haproxy_rtmps" in cpg else "-"
    print(f"{names[p]:<27} {med[p]:11.1f} {min(v):8.1f} {max(v):8.1f} {vs_direct:>9} {vs_haproxy:>10} {c:>14} {c_vs:>14}")
print()
print(f"bulk_push: {len(rows)} pushes, {failed} failed (rtmps paths: TLS {os.environ.get('TLS', '1.3')})")
sys.exit(1 if failed else 0)
REPORT
}

main "$@"
