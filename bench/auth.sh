#!/usr/bin/env bash
# Cost of stream authorization (--auth-webhook) on the RTMPS path, side by
# side in one run: two rtmpgate (release build) in front of one nginx-rtmp,
# one without auth and one with --auth-webhook pointing at
# examples/auth_webhook.py, all on 127.0.0.1. Not run by CI.
#
#   bash bench/auth.sh
#   LAT_RUNS=9 ROUNDS=5 BENCH_SECS=10 bash bench/auth.sh
#   RTMPGATE_BIN=/path/rtmpgate bash bench/auth.sh
#
# a. Publish -> first frame: an ffmpeg player reads live/NAME from nginx
#    directly (subscribed first, -fflags nobuffer, tiny probe); the time from
#    starting the ffmpeg publisher (rtmps:// via rtmpgate, testsrc, libx264
#    zerolatency) to the first decoded frame on the player's stdout. The
#    publisher runs without -re: the player probes a few frames before it
#    decodes one, and at 25 fps that pacing alone adds ~1 s of noise.
#    LAT_RUNS (5) runs per gate, interleaved, median. Includes ffmpeg's own
#    start-up, TLS and RTMP handshakes: compare the two columns. Also the
#    authorization round trip: median `latency_ms` of the "stream
#    authorized" log lines, and the mean webhook request time from
#    rtmpgate_auth_webhook_duration_seconds (sum / count, --admin).
# b. Passive parsing on a bulk push: a generated high-bitrate FLV (as in
#    bench/bulk_push.sh, BENCH_SECS (8) s of 1280x720@30) pushed with
#    `ffmpeg -c copy` (no -re) over rtmps:// via each gate; MB/s and MB per
#    rtmpgate CPU-second (utime+stime from /proc/PID/stat), ROUNDS (3)
#    interleaved rounds, medians. MB = 10^6 bytes.
# ffmpeg, nginx, the hook and rtmpgate share this machine's CPUs: compare
# within one run. KEEP_WORK=1 keeps the temp dir.
set -euo pipefail

# shellcheck source=tests/interop/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../tests/interop/lib.sh"

LAT_RUNS="${LAT_RUNS:-5}"
ROUNDS="${ROUNDS:-3}"
BENCH_SECS="${BENCH_SECS:-8}"
KEY=benchkey
MODES=(off hook)

# gate_cpu_ticks TIMEOUT_PID: utime+stime of the rtmpgate under that
# `timeout` (spawn runs `timeout … env … rtmpgate`; env execs), in ticks.
gate_cpu_ticks() {
    local pid
    pid=$(ps -o pid= --ppid "$1" | head -n 1 | tr -d ' ')
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || { echo 0; return; }
    # Fields after "(comm)": state is $1, utime is $12, stime is $13.
    sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

now() { date +%s.%N; }

# first_frame_ms PUBLISH_URL PLAY_URL LOG_PREFIX: prints the milliseconds
# from starting the publisher to the player's first decoded frame, or
# "fail". Both ffmpegs are this Python's own children, ended by it.
first_frame_ms() {
    python3 - "$1" "$2" "$3" <<'EOF'
import os, select, subprocess, sys, time
pub_url, play_url, prefix = sys.argv[1:4]
def run(args, log):
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=open(log, "wb"))
def end(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
player = run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
              "-fflags", "nobuffer", "-probesize", "4096", "-analyzeduration", "0",
              "-rw_timeout", "15000000", "-i", play_url, "-map", "0:v:0",
              "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
             prefix + ".player.log")
time.sleep(1.5)  # let the player connect and subscribe first
t0 = time.monotonic()
pub = run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
           "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "6",
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
           "-pix_fmt", "yuv420p", "-f", "flv", pub_url], prefix + ".publish.log")
result = "fail"
ready, _, _ = select.select([player.stdout], [], [], 15)
if ready and os.read(player.stdout.fileno(), 1):
    result = f"{(time.monotonic() - t0) * 1000:.1f}"
end(pub)
end(player)
print(result)
EOF
}

main() {
    ((LAT_RUNS >= 1 && LAT_RUNS <= 50)) || die "LAT_RUNS must be 1..50"
    ((ROUNDS >= 1 && ROUNDS <= 50)) || die "ROUNDS must be 1..50"
    ensure_peers
    ensure_rtmpgate
    make_workdir rtmpgate-bench-auth
    log "work dir $WORK, rtmpgate $RTMPGATE_BIN"

    local ports
    mapfile -t ports < <(free_ports 5)
    local nginx_port=${ports[0]} off_port=${ports[1]} hook_port=${ports[2]}
    local hook_gate_port=${ports[3]} admin_port=${ports[4]}
    # Keyframes of the bulk file exceed nginx-rtmp's default max_message (1M).
    start_nginx "$nginx_port" 16M
    local hook_pid gate_off gate_hook
    spawn hook_pid 3600 "$WORK/hook.log" python3 "$REPO_ROOT/examples/auth_webhook.py" \
        --listen "127.0.0.1:$hook_port" "$KEY"
    wait_port "$hook_port" "$hook_pid" 10 || die "examples/auth_webhook.py did not listen"
    RTMPGATE_LIFETIME=3600 start_gate gate_off gate_off "$off_port" \
        --listen "rtmps://127.0.0.1:$off_port" --upstream "rtmp://127.0.0.1:$nginx_port" \
        --drain-timeout 1s || die "rtmpgate without auth did not start"
    # No allow cache: every publish asks the hook (each uses its own name anyway).
    RTMPGATE_LIFETIME=3600 start_gate gate_hook gate_hook "$hook_gate_port $admin_port" \
        --listen "rtmps://127.0.0.1:$hook_gate_port" --upstream "rtmp://127.0.0.1:$nginx_port" \
        --auth-webhook "http://127.0.0.1:$hook_port/on_publish" --auth-cache-ttl 0s \
        --admin "127.0.0.1:$admin_port" --drain-timeout 1s ||
        die "rtmpgate --auth-webhook did not start"

    local results="$WORK/results.tsv"
    printf 'part\tround\tmode\tvalue\tbytes\tsecs\tticks\trc\n' >"$results"

    # a. publish -> first frame, interleaved (the order flips every run).
    local r k mode port ms
    for ((r = 1; r <= LAT_RUNS; r++)); do
        for ((k = 0; k < 2; k++)); do
            mode=${MODES[$(((k + r) % 2))]}
            if [[ $mode == off ]]; then port=$off_port; else port=$hook_gate_port; fi
            ms=$(first_frame_ms "rtmps://127.0.0.1:$port/live/lat_${r}_$mode?key=$KEY" \
                "rtmp://127.0.0.1:$nginx_port/live/lat_${r}_$mode" "$WORK/lat_${r}_$mode")
            log "latency run $r $mode: $ms ms"
            printf 'lat\t%s\t%s\t%s\t\t\t\t\n' "$r" "$mode" "$ms" >>"$results"
        done
    done
    curl -sS -m 5 "http://127.0.0.1:$admin_port/metrics" >"$WORK/metrics.txt" 2>&1 || true

    # b. bulk push.
    local src="$WORK/bulk.flv"
    log "generating ${BENCH_SECS}s of 1280x720@30 high-bitrate H.264 into $src"
    timeout -s TERM -k 5 300 ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=1280x720:rate=30" -t "$BENCH_SECS" \
        -vf "noise=alls=30:allf=t" -c:v libx264 -preset ultrafast -qp 8 -g 60 \
        -pix_fmt yuv420p -f flv "$src" </dev/null || die "generating the FLV failed"
    local bytes gpid pid t0 t1 c0 c1 rc
    bytes=$(stat -c %s "$src")
    log "source: $bytes bytes"
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < 2; k++)); do
            mode=${MODES[$(((k + r) % 2))]}
            if [[ $mode == off ]]; then port=$off_port gpid=$gate_off; else port=$hook_gate_port gpid=$gate_hook; fi
            c0=$(gate_cpu_ticks "$gpid")
            t0=$(now)
            spawn pid 120 "$WORK/push_${r}_$mode.log" \
                ffmpeg -nostdin -hide_banner -loglevel warning -i "$src" \
                -map 0 -c copy -f flv "rtmps://127.0.0.1:$port/live/bulk_${r}_$mode?key=$KEY"
            wait_exit "$pid" 115 || true
            t1=$(now)
            stop_pid "$pid"
            rc=$(exit_code "$pid")
            c1=$(gate_cpu_ticks "$gpid")
            printf 'bulk\t%s\t%s\t\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$bytes" \
                "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$((c1 - c0))" "$rc" >>"$results"
            log "bulk round $r $mode: rc=$rc"
            [[ "$rc" == 0 ]] || show_logs "$WORK/push_${r}_$mode.log" "$WORK/gate_$mode.log" "$NGINX_ERROR_LOG" >&2
        done
    done

    grep -a 'stream authorized' "$WORK/gate_hook.log" | grep -a -o 'latency_ms=[0-9]*' |
        cut -d= -f2 >"$WORK/auth_latency.txt" || true
    python3 - "$results" "$(getconf CLK_TCK)" "$WORK/auth_latency.txt" "$WORK/metrics.txt" <<'EOF'
import csv, re, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tck = float(sys.argv[2])
auth_ms = [int(x) for x in open(sys.argv[3]).read().split()]
metrics = open(sys.argv[4]).read()
med = lambda v: statistics.median(v) if v else float("nan")
failed = 0
lat = {"off": [], "hook": []}
rate = {"off": [], "hook": []}
per_cpu = {"off": [], "hook": []}
for r in rows:
    if r["part"] == "lat":
        if r["value"] == "fail":
            failed += 1
        else:
            lat[r["mode"]].append(float(r["value"]))
    else:
        if r["rc"] != "0":
            failed += 1
            continue
        mb, secs, cpu = int(r["bytes"]) / 1e6, float(r["secs"]), int(r["ticks"]) / tck
        rate[r["mode"]].append(mb / secs)
        per_cpu[r["mode"]].append(mb / cpu if cpu > 0 else float("nan"))
def hist(name):
    s = re.search(rf"^{name}_sum(?:{{[^}}]*}})? ([0-9.e+-]+)$", metrics, re.M)
    c = re.search(rf"^{name}_count(?:{{[^}}]*}})? ([0-9.e+-]+)$", metrics, re.M)
    return (float(s.group(1)), float(c.group(1))) if s and c else (0.0, 0.0)
wsum, wcount = hist("rtmpgate_auth_webhook_duration_seconds")
print()
print("latency runs (ms):", {m: v for m, v in lat.items()})
print("bulk MB/s:", {m: [round(x, 1) for x in v] for m, v in rate.items()},
      " MB per CPU-s:", {m: [round(x, 1) for x in v] for m, v in per_cpu.items()})
print()
print(f"{'measure':<52} {'no auth':>10} {'--auth-webhook':>15} {'hook/no auth':>13}")
def row(label, a, b, fmt="{:.1f}"):
    ratio = f"{b / a:.2f}" if a == a and b == b and a > 0 else "-"
    print(f"{label:<52} {fmt.format(a):>10} {fmt.format(b):>15} {ratio:>13}")
a, b = med(lat["off"]), med(lat["hook"])
row(f"publish -> first frame at a player, ms (median of {len(lat['off'])}/{len(lat['hook'])})", a, b)
print(f"{'  difference, ms':<52} {'':>10} {b - a:>15.1f}")
print(f"{'authorization round trip, latency_ms (median of ' + str(len(auth_ms)) + ')':<52} {'-':>10} {med(auth_ms):>15.1f}")
mean_us = wsum / wcount * 1e6 if wcount else float("nan")
print(f"{'webhook request, mean of ' + str(int(wcount)) + ' (metrics), us':<52} {'-':>10} {mean_us:>15.0f}")
row(f"bulk rtmps push, MB/s (median of {len(rate['off'])}/{len(rate['hook'])})", med(rate["off"]), med(rate["hook"]))
row("bulk rtmps push, MB per rtmpgate CPU-second", med(per_cpu["off"]), med(per_cpu["hook"]))
print()
print(f"auth bench: {len(rows)} runs, {failed} failed")
sys.exit(1 if failed else 0)
EOF
}

main "$@"
