#!/usr/bin/env python3
"""Markdown report of bench/run.sh: medians per workload and proxy, ratios.

usage: report.py META LIMITS RESULTS "PROXIES"

META: key=value lines (machine, versions, parameters). LIMITS: lines
`limit=NAME bytes_per_sec=X` / `bits_per_sec=X`. RESULTS: one line per run,
`key=value ...` (the script's fields, then loadgen's result line).
A cell is the median over repetitions of the runs whose loadgen check passed
(ok=1); `(k/n ok)` is appended when some runs failed; `n/a` means no run
passed. Ratios are rtmpgate / peer of the medians.

Push rows (workload=push, written by bench/bulk_push.sh for the opt-in push
workload) carry path= (direct gate_rtmp gate_rtmps haproxy_rtmps
stunnel_rtmps); ok=1 when ffmpeg exited 0.
"""

import statistics
import sys

NAMES = {"rtmpgate": "rtmpgate", "haproxy": "HAProxy", "stunnel": "stunnel"}


def parse_kv(line):
    out = {}
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def num(d, k):
    try:
        v = float(d.get(k, "nan"))
    except ValueError:
        return float("nan")
    return v


def fmt(v):
    if v is None or v != v:
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def ratio(a, b):
    if a is None or b is None or a != a or b != b or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def median_cell(runs, metric, any_ok=False):
    """(median or None, annotation) of metric over runs with ok=1 (or all
    runs with any_ok: a hold run that fell short still measured memory)."""
    vals = []
    for r in runs:
        if r.get("ok") != "1" and not any_ok:
            continue
        v = metric(r)
        if v is not None and v == v:
            vals.append(v)
    note = ""
    if runs and len(vals) < len(runs) and not any_ok:
        note = f" ({len(vals)}/{len(runs)} ok)"
    return (statistics.median(vals) if vals else None), note


def main():
    meta_path, limits_path, results_path, proxies = sys.argv[1:5]
    meta = {}
    clamps = []
    for line in open(meta_path):
        line = line.rstrip("\n")
        if "=" not in line:
            continue
        k, v = line.split("=", 1)
        if k == "clamp":
            clamps.append(v)
        else:
            meta[k] = v
    limits = {}
    for line in open(limits_path):
        d = parse_kv(line)
        if "limit" in d:
            limits[d["limit"]] = d
    rows = [parse_kv(l) for l in open(results_path) if l.strip()]
    proxies = [p for p in ["rtmpgate", "haproxy", "stunnel"] if p in proxies.split()]
    peers = [p for p in proxies if p != "rtmpgate"]

    out = []
    w = out.append
    w(f"## Proxy benchmark: rtmpgate vs HAProxy vs stunnel ({meta.get('date', '?')})")
    w("")
    w(
        f"Machine: {meta.get('nproc')} cores, {meta.get('cpu')}, {meta.get('mem')}, "
        f"{meta.get('kernel')}; load average {meta.get('loadavg_start')} at start, "
        f"{meta.get('loadavg_end')} at end."
    )
    w(
        f"Versions: rtmpgate {meta.get('rtmpgate')} ({meta.get('rustc')}), "
        f"HAProxy {meta.get('haproxy')}, stunnel {meta.get('stunnel')}, "
        f"{meta.get('openssl')}, iperf3 {meta.get('iperf3')}"
        + (
            f", ffmpeg {meta.get('ffmpeg')}, nginx {meta.get('nginx')} with libnginx-mod-rtmp "
            f"{meta.get('nginx_rtmp')} (push)."
            if "push_params" in meta
            else "."
        )
    )
    w(
        f"Parameters: `{meta.get('params')}`"
        + (f", push: `{meta.get('push_params')}`" if "push_params" in meta else "")
        + f"; open files {meta.get('nofile')}."
    )
    w(
        "All on 127.0.0.1; client, sink and proxy share the machine's cores. "
        "The client (examples/loadgen.rs, rustls) offers only AES-128-GCM and only X25519, so every "
        "proxy negotiates the same suite. Proxies run one after the other, round-robin within each "
        "repetition; cells are medians over repetitions, ratios are rtmpgate / peer "
        "(↑ higher is better, ↓ lower is better). CPU = the proxy's utime+stime "
        "(all threads) during the run; MB = 10^6 bytes, GB = 10^9 bytes."
    )
    w("")

    # ------------------------------------------------------------- limits
    aes = num(limits.get("openssl_aes-128-gcm", {}), "bytes_per_sec") / 1e6
    chacha = num(limits.get("openssl_chacha20-poly1305", {}), "bytes_per_sec") / 1e6
    iperf = num(limits.get("iperf3_loopback", {}), "bits_per_sec")
    if limits:
        w("### Physical limits (same run)")
        w("")
        w(f"- `openssl speed -evp aes-128-gcm`, 16 KiB blocks, one core: **{fmt(aes)} MB/s**")
        w(f"- `openssl speed -evp chacha20-poly1305`, 16 KiB blocks, one core: **{fmt(chacha)} MB/s**")
        w(
            f"- loopback TCP, `iperf3` one stream: **{fmt(iperf / 8e6)} MB/s** "
            f"({fmt(iperf / 1e9)} Gbit/s)"
        )
        # Bulk efficiency vs AES-GCM: MB per proxy CPU-second / AES MB/s.
        bulk = [r for r in rows if r.get("workload") == "bulk"]
        if bulk and aes == aes:
            variants = sorted({r["variant"] for r in bulk}, key=variant_key)
            for v in variants[:1]:
                parts = []
                for p in proxies:
                    runs = [r for r in bulk if r["variant"] == v and r["proxy"] == p]
                    eff, _ = median_cell(
                        runs,
                        lambda r: (num(r, "bytes") / 1e6) / num(r, "cpu_s")
                        if num(r, "cpu_s") > 0
                        else None,
                    )
                    mbps, _ = median_cell(runs, lambda r: num(r, "mbps"))
                    cores, _ = median_cell(
                        runs,
                        lambda r: num(r, "cpu_s") / num(r, "secs") if num(r, "secs") > 0 else None,
                    )
                    if eff is not None:
                        parts.append(
                            f"{NAMES[p]} {fmt(mbps)} MB/s using {fmt(cores)} cores = "
                            f"{fmt(eff)} MB per CPU-second = **{100 * eff / aes:.0f}%** of single-core AES-128-GCM"
                        )
                if parts:
                    w(f"- bulk {pretty_variant('bulk', v)}: " + "; ".join(parts))
        w("")

    # ------------------------------------------------------------- tables
    def table(title, workload, metrics, note=None, any_ok=False):
        runs_w = [r for r in rows if r.get("workload") == workload]
        if not runs_w:
            return
        variants = sorted({r["variant"] for r in runs_w}, key=variant_key)
        w(f"### {title}")
        w("")
        if note:
            w(note)
            w("")
        head = ["workload"] + [NAMES[p] for p in proxies] + [f"rtmpgate/{NAMES[p]}" for p in peers]
        w("| " + " | ".join(head) + " |")
        w("|" + "---|" * len(head))
        for v in variants:
            for mname, mfun in metrics:
                cells = []
                meds = {}
                for p in proxies:
                    runs = [r for r in runs_w if r["variant"] == v and r["proxy"] == p]
                    m, n = median_cell(runs, mfun, any_ok)
                    meds[p] = m
                    cells.append(fmt(m) + n)
                rat = [ratio(meds.get("rtmpgate"), meds.get(p)) for p in peers]
                w(f"| {pretty_variant(workload, v)} {mname} | " + " | ".join(cells + rat) + " |")
        w("")

    table(
        "Bulk push (RTMPS → sink, as fast as possible) and pull (sink → RTMPS client)",
        "bulk",
        [
            ("MB/s ↑", lambda r: num(r, "mbps")),
            ("proxy CPU s/GB ↓", lambda r: num(r, "cpu_s") / (num(r, "bytes") / 1e9)
             if num(r, "bytes") > 0 else None),
        ],
    )
    table(
        "Full handshakes (connect, TLS, RTMP C0C1/S0S1S2/C2, close; no resumption)",
        "handshakes",
        [
            ("handshakes/s ↑", lambda r: num(r, "per_sec")),
            ("proxy CPU ms/handshake ↓", lambda r: 1000 * num(r, "cpu_s") / num(r, "handshakes")
             if num(r, "handshakes") > 0 else None),
        ],
    )
    table(
        "Resumed handshakes (client session cache; TLS 1.3 tickets / TLS 1.2 session ids or tickets)",
        "resume",
        [
            ("handshakes/s ↑", lambda r: num(r, "per_sec")),
            ("resumed %", lambda r: num(r, "resumed_pct")),
            ("proxy CPU ms/handshake ↓", lambda r: 1000 * num(r, "cpu_s") / num(r, "handshakes")
             if num(r, "handshakes") > 0 else None),
        ],
        note=f"rtmpgate runs with `--tls13-tickets {param(meta, 'GATE_TLS13_TICKETS')}` "
        "(its default, 0, disables TLS 1.3 resumption; 2 is what OpenSSL sends by default).",
    )
    # Latency: added over direct, per repetition.
    lat = [r for r in rows if r.get("workload") == "latency"]
    direct = {(r["variant"], r["rep"]): num(r, "p50_us") for r in lat if r["proxy"] == "direct" and r.get("ok") == "1"}
    dmed, _ = median_cell([r for r in lat if r["proxy"] == "direct"], lambda r: num(r, "p50_us"))
    dp99, _ = median_cell([r for r in lat if r["proxy"] == "direct"], lambda r: num(r, "p99_us"))
    table(
        "Latency (one connection, 256-byte ping-pong through the echo sink)",
        "latency",
        [
            ("p50 µs ↓", lambda r: num(r, "p50_us")),
            ("p99 µs ↓", lambda r: num(r, "p99_us")),
            ("mean µs ↓", lambda r: num(r, "mean_us")),
            ("added p50 vs direct µs ↓", lambda r: num(r, "p50_us") - direct.get((r["variant"], r["rep"]), float("nan"))),
        ],
        note=f"Direct to the sink (plain TCP, no proxy): p50 {fmt(dmed)} µs, p99 {fmt(dp99)} µs.",
    )
    hold_note = ("Each run on a fresh proxy process; RSS = VmRSS of the proxy's processes, sampled before connecting and once all N were established (TLS + RTMP handshake done, each connection echoing 16 bytes every few seconds); per connection = delta / established. "
                 "Stalled rows: the upstream floods every connection and the client never reads (a stalled player, zero window); RSS sampled 3 s after the last connection is up, when every buffer on the path is full: what the proxy holds per such connection, TLS library buffers included (kernel socket buffers are not in RSS).")
    if clamps:
        hold_note += (
            f" Clamped by the open-file limit ({meta.get('nofile')}; a proxy needs 2 per connection): "
            + ", ".join(c.replace(":", " → ") for c in sorted(set(clamps)))
            + "."
        )
    table(
        "Idle and stalled connections held (RTMPS, TLS 1.3)",
        "hold",
        [
            ("alive at end ↑", lambda r: num(r, "alive")),
            ("RSS KiB/conn ↓", lambda r: (num(r, "rss1_kib") - num(r, "rss0_kib")) / num(r, "established")
             if num(r, "established") > 0 and num(r, "rss1_kib") > 0 else None),
            ("RSS MiB total ↓", lambda r: num(r, "rss1_kib") / 1024 if num(r, "rss1_kib") > 0 else None),
        ],
        note=hold_note,
        any_ok=True,
    )
    # The hold cells must show shortfalls: count alive even when ok=0.
    fix_hold_alive(out, rows, proxies, peers)

    # RTMPT (rtmpgate only).
    rt = [r for r in rows if r.get("workload") == "rtmpt"]
    if rt:
        w("### RTMPT vs RTMP/RTMPS through rtmpgate (one session/connection)")
        w("")
        w("| variant | MB/s ↑ | requests/s | rtmpgate CPU s/GB ↓ | p50 µs ↓ | p99 µs ↓ |")
        w("|---|---|---|---|---|---|")
        labels = {
            "rtmpt_ffmpeg": "RTMPT push, ffmpeg style (1 request in flight)",
            "rtmpt_librtmp": f"RTMPT push, librtmp style (pipelined, {param(meta, 'RTMPT_DEPTH') or '4'} in flight)",
            "rtmpts_ffmpeg": "RTMPTS push, ffmpeg style",
            "rtmp_plain": "RTMP push via rtmpgate (plain)",
            "rtmps": "RTMPS push via rtmpgate (TLS 1.3)",
            "direct": "RTMP push direct to the sink (no proxy)",
            "lat_rtmpt": "one 256 B frame round trip, RTMPT (/send + /idle)",
            "lat_rtmpts": "one 256 B frame round trip, RTMPTS",
            "lat_rtmps": "one 256 B frame round trip, RTMPS",
            "lat_rtmp": "one 256 B frame round trip, RTMP via rtmpgate",
        }
        for v in labels:
            runs = [r for r in rt if r["variant"] == v]
            if not runs:
                continue
            mb, n1 = median_cell(runs, lambda r: num(r, "mbps"))
            rq, _ = median_cell(runs, lambda r: num(r, "req_per_sec"))
            cpu, _ = median_cell(
                runs,
                lambda r: num(r, "cpu_s") / (num(r, "bytes") / 1e9) if num(r, "bytes") > 0 and v != "direct" else None,
            )
            p50, n2 = median_cell(runs, lambda r: num(r, "p50_us"))
            p99, _ = median_cell(runs, lambda r: num(r, "p99_us"))
            if v.startswith("lat_"):
                w(f"| {labels[v]} | – | – | – | {fmt(p50)}{n2} | {fmt(p99)} |")
            else:
                rq_s = fmt(rq) if v.startswith("rtmpt") else "–"
                cpu_s = fmt(cpu) if v != "direct" else "–"
                w(f"| {labels[v]} | {fmt(mb)}{n1} | {rq_s} | {cpu_s} | – | – |")
        w("")

    push_tables(w, meta, rows, proxies, peers)

    w(f"Loadgen checks: {meta.get('checks', '?')}. Runtime {meta.get('runtime_s', '?')} s.")
    print("\n".join(out))


PUSH_PATHS = [
    ("direct", "direct rtmp://"),
    ("encoder_tls", "ffmpeg tls:// → sink"),
    ("gate_rtmp", "rtmpgate rtmp://"),
    ("gate_rtmps", "rtmpgate rtmps://"),
    ("haproxy_rtmps", "HAProxy"),
    ("stunnel_rtmps", "stunnel"),
]
# Pushes with no proxy: no proxy CPU to show.
NO_PROXY = ("direct", "encoder_tls")
PEER_PATHS = {"haproxy": "haproxy_rtmps", "stunnel": "stunnel_rtmps"}


def push_cpu_per_gb(r):
    if r.get("path") in NO_PROXY or num(r, "bytes") <= 0:
        return None
    return num(r, "cpu_s") / (num(r, "bytes") / 1e9)


def push_tables(w, meta, rows, proxies, peers):
    """The ffmpeg-driven push (workload push, bench/bulk_push.sh): one table
    per path and TLS version, then the Rust client's bulk rows next to it."""
    push = [r for r in rows if r.get("workload") == "push"]
    if not push and "push_params" not in meta:
        return
    w("### ffmpeg-driven RTMPS push (real encoder)")
    w("")
    if not push:
        if "push_missing" in meta:
            w(f"Not run: missing {meta.get('push_missing')} (`WORKLOADS=push` needs ffmpeg, nginx with "
              "libnginx-mod-rtmp, HAProxy and stunnel).")
        else:
            w("n/a: no push recorded (bench/bulk_push.sh failed before its first push; see the "
              "checks below and runs/push.*.log in the work dir).")
        w("")
        return
    rounds, secs = param(meta, "PUSH_ROUNDS", "push_params"), param(meta, "PUSH_SECS", "push_params")
    sizes = sorted({num(r, "bytes") for r in push if num(r, "bytes") > 0})
    size = f"{fmt(sizes[-1] / 1e6)} MB" if sizes else "?"
    w(
        f"`bench/bulk_push.sh`, once per TLS version: `ffmpeg -c copy` (no `-re`) pushes the same FLV "
        f"({size}, {secs} s of 1280x720@30 noisy H.264) as fast as it can into nginx-rtmp, directly, "
        "through rtmpgate (rtmp:// and rtmps://), HAProxy and stunnel (rtmps://, one RSA-2048 "
        "certificate), and, as the encoder's own TLS ceiling, with `-f flv tls://` into a sink that "
        "only decrypts (`bench/lib/tls_sink.py`: no RTMP, nothing forwarded; same "
        "certificate, every TLS terminator capped at the row's TLS version and checked with "
        "`openssl s_client`; the rtmp:// columns are plain in every row). Paths interleaved, the order "
        f"rotating each round; cells are medians of {rounds} round{'' if rounds == '1' else 's'}. The end-to-end view: ffmpeg (which "
        "also encrypts), the proxy and nginx share the cores. Ratio to direct = path / direct rtmp://; "
        "rtmpgate/peer = rtmpgate rtmps:// / peer; proxy CPU = utime+stime of the proxy process per GB "
        "pushed."
    )
    w("")
    have = {r.get("path") for r in push}
    cols = [(p, n) for p, n in PUSH_PATHS if p in have]
    pcols = [p for p in ["haproxy_rtmps", "stunnel_rtmps"] if p in have]
    names = dict(PUSH_PATHS)
    head = ["workload"] + [n for _, n in cols] + [f"rtmpgate/{names[p]}" for p in pcols]
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    variants = sorted({r["variant"] for r in push}, key=variant_key)
    for v in variants:
        tv = v[3:] if v.startswith("tls") else v
        mb, mbn, cpu, cpun = {}, {}, {}, {}
        for p, _ in cols:
            runs = [r for r in push if r["variant"] == v and r.get("path") == p]
            mb[p], mbn[p] = median_cell(runs, lambda r: num(r, "mbps"))
            cpu[p], cpun[p] = median_cell(runs, push_cpu_per_gb)
        g = "gate_rtmps"
        dash = ["–"] * len(pcols)
        w(f"| TLS {tv} MB/s ↑ | " + " | ".join(
            [fmt(mb[p]) + mbn[p] for p, _ in cols] + [ratio(mb.get(g), mb.get(q)) for q in pcols]) + " |")
        w(f"| TLS {tv} ratio to direct ↑ | " + " | ".join(
            [ratio(mb[p], mb.get("direct")) for p, _ in cols] + dash) + " |")
        w(f"| TLS {tv} proxy CPU s/GB ↓ | " + " | ".join(
            ["–" if p in NO_PROXY else fmt(cpu[p]) + cpun[p] for p, _ in cols]
            + [ratio(cpu.get(g), cpu.get(q)) for q in pcols]) + " |")
        if "haproxy_rtmps" in have:
            w(f"| TLS {tv} proxy CPU vs HAProxy ↓ | " + " | ".join(
                ["–" if p in NO_PROXY else ratio(cpu[p], cpu.get("haproxy_rtmps")) for p, _ in cols]
                + dash) + " |")
    w("")

    # Both views: the Rust load client's single-connection push (bulk) next
    # to ffmpeg's, per TLS version, same columns as the proxy tables.
    bulk = [r for r in rows if r.get("workload") == "bulk"]
    bulk_v = {}
    for v in sorted({r["variant"] for r in bulk}, key=variant_key):
        if v.startswith("tls") and v.endswith(".c1") and "-pull" not in v:
            bulk_v.setdefault(v[3:6], v)  # the first certificate's
    tvs = [v[3:] for v in variants if v.startswith("tls") and v[3:] in bulk_v]
    if not tvs:
        return
    w("### Both views: Rust load client vs ffmpeg, RTMPS push, one connection")
    w("")
    w(
        "Rust load client = the bulk rows above (examples/loadgen.rs, 64 KiB writes, into the sink; "
        "the proxy-only view). ffmpeg = the push table above (a real encoder into nginx-rtmp, all "
        "sharing the cores; RSA-2048). Ratios are rtmpgate / peer."
    )
    w("")
    head = ["workload"] + [NAMES[p] for p in proxies] + [f"rtmpgate/{NAMES[p]}" for p in peers]
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    for tv in tvs:
        bv, pv = bulk_v[tv], f"tls{tv}"
        for mname, bfun, pfun in [
            ("MB/s ↑", lambda r: num(r, "mbps"), lambda r: num(r, "mbps")),
            ("proxy CPU s/GB ↓",
             lambda r: num(r, "cpu_s") / (num(r, "bytes") / 1e9) if num(r, "bytes") > 0 else None,
             push_cpu_per_gb),
        ]:
            for label, src, fun, key in [
                (f"TLS {tv} Rust client → sink ({pretty_variant('bulk', bv)[8:]})", bulk, bfun, "proxy"),
                (f"TLS {tv} ffmpeg → nginx-rtmp", push, pfun, "path"),
            ]:
                cells, meds = [], {}
                for p in proxies:
                    want = p if key == "proxy" else PEER_PATHS.get(p, "gate_rtmps")
                    variant = bv if key == "proxy" else pv
                    runs = [r for r in src if r["variant"] == variant and r.get(key) == want]
                    m, n = median_cell(runs, fun)
                    meds[p] = m
                    cells.append(fmt(m) + n)
                rat = [ratio(meds.get("rtmpgate"), meds.get(p)) for p in peers]
                w(f"| {label} {mname} | " + " | ".join(cells + rat) + " |")
    w("")


def fix_hold_alive(out, rows, proxies, peers):
    """Re-renders 'alive at end' cells counting failed (short) runs too."""
    hold = [r for r in rows if r.get("workload") == "hold"]
    for i, line in enumerate(out):
        if " alive at end ↑ |" not in line:
            continue
        label = line[2 : line.index(" alive at end ↑ |")]
        v = next((x for x in {r["variant"] for r in hold} if pretty_variant("hold", x) == label), None)
        if v is None:
            continue
        cells, meds = [], {}
        for p in proxies:
            vals = [num(r, "alive") for r in hold if r["variant"] == v and r["proxy"] == p]
            vals = [x for x in vals if x == x]
            m = statistics.median(vals) if vals else None
            meds[p] = m
            cells.append(f"{m:,.0f} of {int(v[1:]):,}" if m is not None else "n/a")
        rat = [ratio(meds.get("rtmpgate"), meds.get(p)) for p in peers]
        out[i] = f"| {label} alive at end ↑ | " + " | ".join(cells + rat) + " |"


def param(meta, name, key="params"):
    for tok in meta.get(key, "").split():
        if tok.startswith(name + "="):
            return tok.split("=", 1)[1]
    return ""


def variant_key(v):
    # tls1.3.ecdsa.c1 → sort TLS 1.3 first, ecdsa first, conns ascending; nN by N.
    parts = v.split(".")
    if v.startswith("n") and v[1:].isdigit():
        return (0, int(v[1:]), "")
    if v.startswith("s") and v[1:].isdigit():
        return (0, 10**9 + int(v[1:]), "")
    tv = v[3:6] if v.startswith("tls") else ""
    rest = v[7:] if v.startswith("tls") else v
    conns = 0
    if ".c" in rest:
        rest, c = rest.rsplit(".c", 1)
        conns = int(c) if c.isdigit() else 0
    # Pull rows after the push rows of the same version and certificate.
    return (1, -float(tv or 0), rest.replace("-pull", "~pull") + f"{conns:06d}")


def pretty_variant(workload, v):
    if workload == "hold":
        if v.startswith("s"):
            return f"{int(v[1:]):,} stalled conns"
        return f"{int(v[1:]):,} conns"
    if v.startswith("tls"):
        tv = v[3:6]
        rest = v[7:]
        cert, conns = rest, ""
        if ".c" in rest:
            cert, c = rest.rsplit(".c", 1)
            conns = f", {c} conn" + ("s" if c != "1" else "")
        pull = cert.endswith("-pull")
        cert = cert.removesuffix("-pull")
        certname = {"ecdsa": "ECDSA P-256", "rsa": "RSA-2048"}.get(cert, cert)
        if pull:
            return f"TLS {tv} {certname}{conns}, pull (sink → client, a player's direction)"
        return f"TLS {tv} {certname}{conns}"
    return v


if __name__ == "__main__":
    main()
