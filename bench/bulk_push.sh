#!/usr/bin/env bash
# Bulk push throughput: the same high-bitrate FLV pushed as fast as possible
# (ffmpeg -c copy, no -re) into nginx-rtmp, directly and through rtmpgate
# (rtmp:// and rtmps://), in interleaved rounds, all on 127.0.0.1.
#
#   bench/bulk_push.sh
#   ROUNDS=7 BENCH_SECS=20 bench/bulk_push.sh
#   RTMPGATE_BIN=/path/rtmpgate bench/bulk_push.sh
#
# Knobs: ROUNDS (5), BENCH_SECS (10 s of 1280x720@30 noisy H.264 at ~280
# Mbit/s, about 350 MB), KEEP_WORK=1 keeps the temp dir.
# MB = 10^6 bytes, GB = 10^9 bytes. "gate CPU s/GB" is rtmpgate's
# utime+stime (from /proc/PID/stat) per GB of file pushed.
# Note: ffmpeg, nginx and rtmpgate share this machine's CPUs, so absolute
# numbers depend on the core count; compare the ratio within one run.
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../tests/interop/lib.sh"

ROUNDS="${ROUNDS:-5}"
BENCH_SECS="${BENCH_SECS:-10}"
PATHS=(direct gate_rtmp gate_rtmps)

# gate_cpu_ticks: utime+stime of the rtmpgate process, in clock ticks.
gate_cpu_ticks() {
    local pid
    pid=$(ps -o pid= --ppid "$RTMPGATE_PID" | head -n 1 | tr -d ' ')
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || { echo 0; return; }
    # Fields after "(comm)": state is $1, utime is $12, stime is $13.
    sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

now() { date +%s.%N; }

main() {
    ((ROUNDS >= 1 && ROUNDS <= 50)) || die "ROUNDS must be 1..50"
    ensure_peers
    ensure_rtmpgate
    make_workdir rtmpgate-bench
    log "work dir $WORK, rtmpgate $RTMPGATE_BIN"

    local src="$WORK/bulk.flv"
    log "generating ${BENCH_SECS}s of 1280x720@30 high-bitrate H.264 into $src"
    timeout -s TERM -k 5 300 ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=1280x720:rate=30" -t "$BENCH_SECS" \
        -vf "noise=alls=30:allf=t" -c:v libx264 -preset ultrafast -qp 8 -g 60 \
        -pix_fmt yuv420p -f flv "$src" </dev/null || die "generating the FLV failed"
    local bytes
    bytes=$(stat -c %s "$src")
    log "source: $bytes bytes"

    local ports
    mapfile -t ports < <(free_ports 3)
    local nginx_port=${ports[0]} tls_port=${ports[1]} plain_port=${ports[2]}
    # Keyframes of this file exceed nginx-rtmp's default max_message (1M).
    start_nginx "$nginx_port" 16M
    start_rtmpgate "$nginx_port" "rtmps://127.0.0.1:$tls_port" "rtmp://127.0.0.1:$plain_port"

    local tck
    tck=$(getconf CLK_TCK)
    local results="$WORK/results.tsv"
    printf 'round\tpath\tbytes\tsecs\trc\tgate_ticks\n' >"$results"

    local r i k path url pid t0 t1 c0 c1 rc
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < ${#PATHS[@]}; k++)); do
            # Rotate the order each round so no path always goes first.
            i=$(((k + r - 1) % ${#PATHS[@]}))
            path=${PATHS[$i]}
            case $path in
            direct) url="rtmp://127.0.0.1:$nginx_port/live/bulk_${r}_$path" ;;
            gate_rtmp) url="rtmp://127.0.0.1:$plain_port/live/bulk_${r}_$path" ;;
            gate_rtmps) url="rtmps://127.0.0.1:$tls_port/live/bulk_${r}_$path" ;;
            esac
            c0=$(gate_cpu_ticks)
            t0=$(now)
            spawn pid 120 "$WORK/push_${r}_$path.log" \
                ffmpeg -nostdin -hide_banner -loglevel warning -i "$src" \
                -map 0 -c copy -f flv "$url"
            wait_exit "$pid" 115 || true
            t1=$(now)
            stop_pid "$pid"
            rc=$(exit_code "$pid")
            c1=$(gate_cpu_ticks)
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$path" "$bytes" \
                "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
                "$rc" "$((c1 - c0))" >>"$results"
            if [[ "$rc" != 0 ]]; then
                log "round $r $path: ffmpeg exited with status $rc"
                show_logs "$WORK/push_${r}_$path.log" "$RTMPGATE_LOG" "$NGINX_ERROR_LOG" >&2
            fi
        done
    done

    python3 - "$results" "$tck" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tck = float(sys.argv[2])
names = {"direct": "direct rtmp -> nginx", "gate_rtmp": "rtmp  -> rtmpgate -> nginx",
         "gate_rtmps": "rtmps -> rtmpgate -> nginx"}
order = ["direct", "gate_rtmp", "gate_rtmps"]
print()
print(f"{'round':>5}  {'path':<27} {'MB':>8} {'secs':>7} {'MB/s':>8} {'gate CPU s':>10}  rc")
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
        cpu[r["path"]][0] += int(r["gate_ticks"]) / tck
        cpu[r["path"]][1] += int(r["bytes"])
    gate_cpu = "-" if r["path"] == "direct" else f"{int(r['gate_ticks']) / tck:.2f}"
    print(f"{r['round']:>5}  {names[r['path']]:<27} {mb:8.1f} {secs:7.3f} {rate:8.1f} {gate_cpu:>10}  {r['rc']}")
print()
direct = statistics.median(per["direct"]) if per["direct"] else float("nan")
print(f"{'path':<27} {'median MB/s':>11} {'min':>8} {'max':>8} {'vs direct':>9} {'gate CPU s/GB':>13}")
for p in order:
    v = per[p]
    if not v:
        print(f"{names[p]:<27} {'n/a':>11}")
        continue
    med = statistics.median(v)
    ratio = med / direct if direct == direct and direct > 0 else float("nan")
    cpg = "-" if p == "direct" or cpu[p][1] == 0 else f"{cpu[p][0] / (cpu[p][1] / 1e9):.2f}"
    print(f"{names[p]:<27} {med:11.1f} {min(v):8.1f} {max(v):8.1f} {ratio:9.2f} {cpg:>13}")
print()
print(f"bulk_push: {len(rows)} pushes, {failed} failed")
sys.exit(1 if failed else 0)
EOF
}

main "$@"
