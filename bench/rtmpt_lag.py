#!/usr/bin/env python3
"""Helpers for bench/rtmpt.sh (python3 standard library only).

Subcommands:

  stamp OUT [IN]
      Reads a process's stderr on IN (a FIFO) or stdin and writes every line (\\r and \\n
      both end a line) to OUT prefixed with time.monotonic() taken when the
      bytes were read, and a final "<t> EOF" line when the writer exits.
      CLOCK_MONOTONIC is system-wide, so stamps from different stampers (one
      per ffmpeg) are directly comparable.

  frames --fps F --pub PUB.st [--settle S] NAME=PLAYER.st ...
      Matches publisher and player `showinfo` lines by frame index
      (round(pts_time * fps)) and prints one JSON object: frames the
      publisher emitted, and per player the frames decoded by the time the
      publisher exited, the lag of every steady-state frame (median, p95) and,
      per pair of players, the per-frame difference of their decode times;
      one JSON row per player and per pair (plus --tag key=value fields).
      See `frames()` for why this is robust.

  metric URL NAME
      Sum of every sample of the Prometheus counter NAME at URL (NAME may
      carry a label prefix: 'x_total{direction="a"').

  sessions --host H --port P --count N --sources K --ready FILE --stop FILE
      Opens N RTMPT sessions (POST /open/1) over N keep-alive HTTP
      connections spread over K loopback source addresses (127.0.0.2 ...),
      keeps them alive with an /idle every ~5 s (all idles of a round are
      written first, then all replies read, so a round takes about one
      long-poll), writes FILE when all are open and one idle round is done,
      and /closes them all once the stop FILE exists.

  table RESULTS.jsonl
      Prints the final table (medians over repetitions, targets).
"""

import http.client
import json
import os
import re
import socket
import statistics
import sys
import time
import urllib.request

SHOWINFO = re.compile(r"Parsed_showinfo.*?\bpts_time:\s*(-?[0-9.]+)")


def stamp(out_path, in_path=None):
    # Opening a FIFO blocks until its writer (the ffmpeg) opens it.
    fd = os.open(in_path, os.O_RDONLY) if in_path else sys.stdin.fileno()
    buf = b""
    with open(out_path, "w", buffering=1 << 16) as out:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except InterruptedError:
                continue
            now = time.monotonic()
            if not chunk:
                break
            buf += chunk.replace(b"\r", b"\n")
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line:
                    out.write("%.6f %s\n" % (now, line.decode("utf-8", "replace")))
        if buf:
            out.write("%.6f %s\n" % (time.monotonic(), buf.decode("utf-8", "replace")))
        out.write("%.6f EOF\n" % time.monotonic())


def load_stamps(path, fps):
    """frame index -> monotonic time of its first showinfo line; EOF time;
    first frame time; times of ffmpeg's RTMPT requests ("Opening '...'")."""
    frames, eof, first, requests = {}, None, None, []
    if not os.path.exists(path):
        return frames, eof, first, requests
    with open(path, errors="replace") as f:
        for line in f:
            t_s, _, rest = line.rstrip("\n").partition(" ")
            try:
                t = float(t_s)
            except ValueError:
                continue
            if rest == "EOF":
                eof = t
                continue
            if "Opening 'http" in rest:
                requests.append(t)
                continue
            m = SHOWINFO.search(rest)
            if m:
                k = round(float(m.group(1)) * fps)
                frames.setdefault(k, t)
                if first is None:
                    first = t
    return frames, eof, first, requests


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def frames(args):
    """Lag and completeness from stamped showinfo lines.

    Method (robust against the usual traps):
      * Publisher and players all run `-vf showinfo`; every line is stamped
        with time.monotonic() by a separate `stamp` process the moment it is
        read from the pipe. The publisher's line is printed when the frame
        leaves the lavfi source (real-time paced by -re), i.e. just before
        x264; the player's line when the frame leaves its decoder (-threads 1
        so no frame-threading delay). lag = t_player(k) - t_publisher(k).
        The encode time (a few ms) is in every player's figure alike.
      * Frames are matched by index k = round(pts_time * fps): the player
        runs with -copyts, so its pts are the FLV timestamps (ms) the
        publisher wrote (0.033 vs 0.0333 round to the same k).
      * ffmpeg probes the input before decoding anything (-analyzeduration)
        and then decodes the backlog in one burst; those frames measure the
        probe, not the path. Only frames the publisher emitted at least
        `settle` s after the player's first decoded frame count as steady
        state.
      * The RTMPT - RTMP difference is also computed per frame between two
        players of the same run (t_rtmpt(k) - t_rtmp(k)): it does not
        depend on the publisher's stamps at all.
      * "Decoded by publisher end": player frames whose showinfo line was
        stamped no later than the publisher's stderr EOF (process exit, after
        the last frame was sent and the stream closed).
    """
    pub, pub_eof, _, _ = load_stamps(args.pub, args.fps)
    pub_start = min(pub.values()) if pub else None
    tags = dict(t.split("=", 1) for t in (args.tag or []))
    rows = []
    players = {}
    for spec in args.players:
        name, path = spec.split("=", 1)
        fr, _, first, reqs = load_stamps(path, args.fps)
        # RTMPT only: requests while the publisher ran, and how many of them
        # followed a gap >= 60 ms (an empty /idle: long-poll, then ffmpeg's
        # 50 ms sleep before the next request).
        during = [t for t in reqs if pub_start is not None and pub_eof is not None and pub_start <= t <= pub_eof]
        slow = sum(1 for a, b in zip(during, during[1:]) if b - a >= 0.060)
        players[name] = (fr, first)
        by_end = sum(1 for t in fr.values() if pub_eof is not None and t <= pub_eof)
        lags = []
        if first is not None:
            lags = sorted(
                (t - pub[k]) * 1000.0
                for k, t in fr.items()
                if k in pub and pub[k] >= first + args.settle
            )
        rows.append({
            "test": "play",
            **tags,
            "player": name,
            "sent": len([k for k in pub if not args.sent or k < args.sent]),
            "decoded": len(fr),
            "first_k": min(fr) if fr else None,
            "by_end": by_end,
            "pct_by_end": 100.0 * by_end / args.sent if args.sent else None,
            "lag_n": len(lags),
            "lag_median_ms": statistics.median(lags) if lags else None,
            "lag_p95_ms": pct(lags, 95),
            "lag_max_ms": lags[-1] if lags else None,
            "requests": len(during),
            "slow_polls": slow,
            "pub_s": (pub_eof - pub_start) if pub_start is not None and pub_eof is not None else None,
        })
    for spec in args.pair or []:
        a, b = spec.split("-", 1)
        if a not in players or b not in players:
            continue
        fa, first_a = players[a]
        fb, first_b = players[b]
        if first_a is None or first_b is None:
            continue
        start = max(first_a, first_b) + args.settle
        diffs = sorted(
            (fa[k] - fb[k]) * 1000.0
            for k in fa
            if k in fb and k in pub and pub[k] >= start
        )
        rows.append({
            "test": "pair",
            **tags,
            "pair": spec,
            "n": len(diffs),
            "median_ms": statistics.median(diffs) if diffs else None,
            "p95_ms": pct(diffs, 95),
        })
    for r in rows:
        print(json.dumps(r))


def metric(url, name):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if ("{" in name and line.startswith(name)) or line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    print("%d" % total if total == int(total) else total)


def sessions(args):
    conns = []  # [conn, id, seq]
    failures = {}

    def post(conn, path):
        conn.request(
            "POST",
            path,
            body=b"\0",
            headers={"Content-Type": "application/x-fcs", "Content-Length": "1"},
        )

    t0 = time.monotonic()
    for i in range(args.count):
        src = "127.0.0.%d" % (2 + i % args.sources)
        c = http.client.HTTPConnection(args.host, args.port, timeout=30, source_address=(src, 0))
        try:
            post(c, "/open/1")
            r = c.getresponse()
            body = r.read()
        except OSError as e:
            failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
            continue
        if r.status != 200:
            failures[str(r.status)] = failures.get(str(r.status), 0) + 1
            continue
        conns.append([c, body.decode().strip(), 0, src])
        if args.fresh_conns:
            c.close()
    t_open = time.monotonic() - t0

    if args.fresh_conns:
        # Sessions outlive their HTTP connection (keyed by id): measure the
        # session alone. Well within the 30 s expiry, so no idles needed.
        with open(args.ready + ".tmp", "w") as f:
            json.dump({"opened": len(conns), "failures": failures, "open_s": round(t_open, 3)}, f)
        os.rename(args.ready + ".tmp", args.ready)
        while not os.path.exists(args.stop):
            time.sleep(0.1)
        closed = 0
        for s in conns:
            c = http.client.HTTPConnection(args.host, args.port, timeout=30, source_address=(s[3], 0))
            try:
                post(c, "/close/%s/0" % s[1])
                r = c.getresponse()
                r.read()
                closed += r.status == 200
            except OSError:
                pass
            c.close()
        print(json.dumps({"closed": closed}))
        return

    def idle_round():
        bad = 0
        live = []
        for s in conns:
            try:
                post(s[0], "/idle/%s/%d" % (s[1], s[2]))
                live.append(s)
            except OSError:
                bad += 1
        for s in live:
            try:
                r = s[0].getresponse()
                r.read()
                if r.status != 200:
                    bad += 1
            except OSError:
                bad += 1
            s[2] += 1
        return bad

    t1 = time.monotonic()
    bad = idle_round()
    t_idle = time.monotonic() - t1
    with open(args.ready + ".tmp", "w") as f:
        json.dump(
            {
                "opened": len(conns),
                "failures": failures,
                "open_s": round(t_open, 3),
                "idle_round_s": round(t_idle, 3),
                "idle_failures": bad,
            },
            f,
        )
    os.rename(args.ready + ".tmp", args.ready)
    last = time.monotonic()
    while not os.path.exists(args.stop):
        time.sleep(0.1)
        if time.monotonic() - last >= 5.0:
            idle_round()
            last = time.monotonic()
    closed = 0
    for s in conns:
        try:
            post(s[0], "/close/%s/%d" % (s[1], s[2]))
            r = s[0].getresponse()
            r.read()
            closed += r.status == 200
        except OSError:
            pass
        s[0].close()
    print(json.dumps({"closed": closed}))


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.1f"):
    return "n/a" if v is None else spec % v


def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]

    def sel(test, **kw):
        return [r for r in rows if r["test"] == test and all(r.get(k) == v for k, v in kw.items())]

    def vals(test, key, **kw):
        return [r.get(key) for r in sel(test, **kw)]

    def show(v, spec="%.1f"):
        return fmt(v, spec)

    def listing(vs, spec="%.1f"):
        return "[" + " ".join(fmt(v, spec) for v in vs) + "]"

    out = []
    add = out.append
    W = "%-62s %-24s %s"
    add(W % ("measure", "median [runs]", "target / verdict"))
    add("-" * 110)

    # 1. frames at publisher end (20 Mbit/s)
    for variant, label in (("rtmp", "(a) rtmp:// via rtmpgate"), ("rtmpt", "(b) rtmpt:// via rtmpgate"),
                           ("direct", "(c) rtmp:// direct to nginx"), ("rtmpt_lp20", "(d) rtmpt://, --rtmpt-long-poll 20ms")):
        v = vals("play", "pct_by_end", rate="20M", player=variant)
        if not v:
            continue
        m = med(v)
        verdict = ""
        if variant == "rtmpt":
            verdict = "target >= 95%: " + ("PASS" if m is not None and m >= 95 else "FAIL")
        add(W % ("1. 20M: % of 360 frames decoded at publisher end, " + label[:3], show(m) + " " + listing(v), label[4:] + "  " + verdict))
    sent = vals("play", "sent", rate="20M", player="rtmp")
    if sent:
        add(W % ("   frames the publisher emitted (of 360)", show(med(sent), "%.0f") + " " + listing(sent, "%.0f"), ""))

    # 2. lag
    for rate in ("1M", "20M"):
        for variant, label in (("rtmp", "rtmp via gate"), ("rtmpt", "rtmpt via gate"), ("direct", "rtmp direct"),
                               ("rtmpt_lp20", "rtmpt, long-poll 20ms")):
            mv = vals("play", "lag_median_ms", rate=rate, player=variant)
            pv = vals("play", "lag_p95_ms", rate=rate, player=variant)
            if not mv:
                continue
            extra = ""
            if variant.startswith("rtmpt"):
                rq = [r["requests"] / r["pub_s"] for r in sel("play", rate=rate, player=variant) if r.get("pub_s")]
                sp = [r["slow_polls"] / r["pub_s"] for r in sel("play", rate=rate, player=variant) if r.get("pub_s")]
                extra = "  req/s %s, empty-idle+sleep gaps/s %s" % (show(med(rq), "%.0f"), show(med(sp), "%.1f"))
            add(W % ("2. lag %-3s %-24s median / p95 ms" % (rate, label),
                     "%s / %s" % (show(med(mv)), show(med(pv))), listing(mv) + " / " + listing(pv) + extra))
        for variant, label in (("rtmpt", "rtmpt"), ("rtmpt_lp20", "rtmpt lp20")):
            # Per frame, same run: t_variant(k) - t_rtmp(k) (median, p95);
            # and the difference of the two players' median lags.
            pm = vals("pair", "median_ms", rate=rate, pair=variant + "-rtmp")
            pp = vals("pair", "p95_ms", rate=rate, pair=variant + "-rtmp")
            if not pm:
                continue
            dm = []
            for rep in sorted({r["rep"] for r in sel("play", rate=rate)}):
                a = sel("play", rate=rate, player=variant, rep=rep)
                b = sel("play", rate=rate, player="rtmp", rep=rep)
                if a and b and a[0]["lag_median_ms"] is not None and b[0]["lag_median_ms"] is not None:
                    dm.append(a[0]["lag_median_ms"] - b[0]["lag_median_ms"])
            m = med(pm)
            verdict = listing(pm) + " / " + listing(pp) + "; d(median lag) " + show(med(dm))
            if variant == "rtmpt":
                verdict += "; target <= 10: " + ("PASS" if m is not None and m <= 10 else "FAIL")
            add(W % ("2. lag %-3s %s - rtmp, per frame: median / p95 ms" % (rate, label),
                     "%s / %s" % (show(m), show(med(pp))), verdict))

    # 3. rtmpdump CPU
    for lp in ("200ms", "0s", "20ms"):
        c = vals("rtmpdump", "gate_cpu_pct", long_poll=lp)
        if not c:
            continue
        r = vals("rtmpdump", "req_per_s", long_poll=lp)
        cc = vals("rtmpdump", "client_cpu_pct", long_poll=lp)
        b = vals("rtmpdump", "bytes_per_reply", long_poll=lp)
        m = med(c)
        # A low CPU figure proves nothing if rtmpdump never played: every
        # run must have downloaded the stream (RTMPDUMP_MIN_KB) through
        # RTMPT requests, or the verdict fails.
        runs = sel("rtmpdump", long_poll=lp)
        short = [r.get("kbytes", 0) for r in runs
                 if (r.get("kbytes") or 0) < RTMPDUMP_MIN_KB or not (r.get("requests") or 0) > 0]
        if lp != "200ms":
            verdict = "(comparison)"
        elif short:
            verdict = "target < 3%%: FAIL (rtmpdump did not play: %d of %d runs downloaded < %d kB %s)" % (
                len(short), len(runs), RTMPDUMP_MIN_KB, listing(short, "%.0f"))
        else:
            verdict = "target < 3%: " + ("PASS" if m is not None and m < 3 else "FAIL")
        add(W % ("3. rtmpdump over rtmpt, long-poll %-5s: rtmpgate %% of a core" % lp, show(m, "%.2f") + " " + listing(c, "%.2f"), verdict))
        add(W % ("   requests/s | rtmpdump % core | avg bytes/reply", "%s | %s | %s" % (show(med(r), "%.0f"), show(med(cc), "%.1f"), show(med(b), "%.0f")),
                 listing(r, "%.0f")))

    # 4. bulk publish. Via rtmpgate, MB/s is the bytes rtmpgate relayed
    # upstream (its own counter) over the wall time, and a run counts only
    # if ffmpeg exited 0 and rtmpgate relayed at least BULK_MIN_RELAYED of
    # what was pushed; direct runs have no gateway counter (file bytes).
    bulk = {}
    for variant, label in (("direct", "rtmp:// direct to nginx"), ("rtmp", "rtmp:// via rtmpgate"),
                           ("rtmpt", "rtmpt:// via rtmpgate"), ("rtmpt_flush1", "rtmpt:// -rtmp_flush_interval 1")):
        runs = sel("bulk", variant=variant)
        if not runs:
            continue
        v = [bulk_mb_s(r) for r in runs]
        bulk[variant] = med(v) if all(x is not None for x in v) else None
        if bulk[variant] is None:
            add(W % ("4. bulk push, " + label, "FAIL", "%d of %d runs failed or relayed < %d%% of the bytes pushed: %s" % (
                sum(x is None for x in v), len(v), round(BULK_MIN_RELAYED * 100),
                " ".join("rc=%s relayed=%.0fMB pushed=%.0fMB" % (r.get("rc"), (r.get("gate_bytes_up") or 0) / 1e6,
                                                                 (r.get("pushed_bytes") or 0) / 1e6) for r in runs))))
        extra = "CPU%% gate %s nginx %s" % (show(med(vals("bulk", "gate_cpu_pct", variant=variant)), "%.0f"),
                                         show(med(vals("bulk", "nginx_cpu_pct", variant=variant)), "%.0f"))
        if variant != "direct":
            extra += ", gate CPU ms/MB %s" % show(med(vals("bulk", "gate_cpu_ms_per_mb", variant=variant)), "%.2f")
        if variant != "direct":
            gb = [r["gate_bytes_up"] / 1e6 for r in sel("bulk", variant=variant)]
            extra += ", relayed MB %s" % listing(gb, "%.0f")
            if variant.startswith("rtmpt"):
                extra += ", requests %s, kB/request %s" % (
                    show(med(vals("bulk", "requests", variant=variant)), "%.0f"),
                    show(med(vals("bulk", "kb_per_request", variant=variant)), "%.0f"))
        add(W % ("4. bulk push MB/s, " + label, show(bulk[variant]) + " " + listing(v), extra))
    for variant in ("rtmpt", "rtmpt_flush1"):
        if variant not in bulk:
            continue
        if bulk.get("rtmp") and bulk.get(variant) is not None:
            ratio = bulk[variant] / bulk["rtmp"]
            tgt = "target >= 0.9: " + ("PASS" if ratio >= 0.9 else "FAIL")
            add(W % ("4. ratio %s / rtmp (medians)" % variant, "%.2f" % ratio, tgt))
        else:
            add(W % ("4. ratio %s / rtmp (medians)" % variant, "n/a", "target >= 0.9: FAIL (a run above failed)"))
    for r in sel("bulk_file"):
        add(W % ("   bulk file MB (pushed %d times per run)" % r.get("passes", 1), show(r["mb"]), ""))

    # 5. idle sessions
    for r in sel("sessions"):
        mode = r.get("mode", "keepalive")
        if mode == "keepalive":
            add(W % ("5. rtmpgate VmRSS before / after %d sessions, MiB" % r["opened"],
                     "%.1f / %.1f" % (r["rss_before_kb"] / 1024.0, r["rss_after_kb"] / 1024.0),
                     "after 2nd idle round %.1f, after /close %.1f" % (r["rss_later_kb"] / 1024.0, r["rss_closed_kb"] / 1024.0)))
            add(W % ("5. bytes per idle RTMPT session (keep-alive conn each)", "%.0f" % r["bytes_per_session"],
                     "1 client + 1 upstream TCP conn each; nginx +%.0f B/session" % r["nginx_bytes_per_session"]))
        else:
            add(W % ("5. same, HTTP connection closed after /open", "%.0f" % r["bytes_per_session"],
                     "session task + upstream conn only (%d sessions, fresh rtmpgate)" % r["opened"]))
    print("\n".join(out))
    return sum("FAIL" in line for line in out)


# Phase 3: a run in which rtmpdump downloaded less than this did not play
# (1.5 Mbit/s for ~12 s is ~2,200 kB).
RTMPDUMP_MIN_KB = 500
# Phase 4: a run via rtmpgate counts only if it relayed at least this share
# of the bytes pushed (RTMP chunking makes the relayed count differ slightly
# from the FLV file size).
BULK_MIN_RELAYED = 0.9


def bulk_mb_s(r):
    """MB/s of one bulk run, or None when it does not count."""
    secs = r.get("seconds") or 0
    if r.get("rc") != 0 or secs <= 0:
        return None
    if r.get("variant") == "direct":
        return (r.get("pushed_bytes") or 0) / 1e6 / secs
    relayed, pushed = r.get("gate_bytes_up") or 0, r.get("pushed_bytes") or 0
    if pushed <= 0 or relayed < BULK_MIN_RELAYED * pushed:
        return None
    return relayed / 1e6 / secs


def selftest():
    """The verdicts can fail: rows from runs in which nothing was relayed
    or rtmpdump never played must give FAIL, good rows PASS."""
    import tempfile

    def run(rows):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("\n".join(json.dumps(r) for r in rows) + "\n")
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            fails = table(f.name)
        os.unlink(f.name)
        return fails, buf.getvalue()

    dump = lambda kb, req: {"test": "rtmpdump", "long_poll": "200ms", "rep": "1", "gate_cpu_pct": 0.1,
                            "client_cpu_pct": 0.1, "req_per_s": req / 10.0, "kbytes": kb, "requests": req,
                            "bytes_per_reply": 0}
    bulk = lambda v, relayed, rc=0: {"test": "bulk", "variant": v, "rep": "1", "rc": rc, "seconds": 10.0,
                                     "pushed_bytes": 1e9, "gate_bytes_up": relayed, "requests": 100,
                                     "gate_cpu_pct": 1, "nginx_cpu_pct": 1, "gate_cpu_ms_per_mb": 1}
    problems = []
    fails, text = run([dump(0, 0)])
    if not fails or "did not play" not in text:
        problems.append("rtmpdump that downloaded nothing passed the CPU verdict:\n" + text)
    fails, text = run([dump(2200, 300)])
    if fails:
        problems.append("a good rtmpdump run failed:\n" + text)
    fails, text = run([bulk("rtmp", 1.01e9), bulk("rtmpt", 0)])
    if not fails or "relayed < 90%" not in text:
        problems.append("a bulk run that relayed nothing was counted:\n" + text)
    fails, text = run([bulk("rtmp", 1.01e9), bulk("rtmpt", 1.0e9)])
    if fails or "101.0" not in text:
        problems.append("good bulk runs failed or MB/s is not relayed bytes / time:\n" + text)
    for p in problems:
        print("FAIL selftest: " + p)
    print("rtmpt_lag selftest: %s" % ("FAIL" if problems else "ok"))
    return 1 if problems else 0


def main():
    import argparse

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stamp")
    s.add_argument("out")
    s.add_argument("input", nargs="?")
    s = sub.add_parser("frames")
    s.add_argument("--fps", type=float, required=True)
    s.add_argument("--pub", required=True)
    s.add_argument("--sent", type=int, default=0)
    s.add_argument("--settle", type=float, default=1.0)
    s.add_argument("--pair", action="append")
    s.add_argument("--tag", action="append", help="key=value added to every row")
    s.add_argument("players", nargs="+")
    s = sub.add_parser("metric")
    s.add_argument("url")
    s.add_argument("name")
    s = sub.add_parser("sessions")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, default=1000)
    s.add_argument("--sources", type=int, default=20)
    s.add_argument("--ready", required=True)
    s.add_argument("--stop", required=True)
    s.add_argument("--fresh-conns", action="store_true",
                   help="one TCP connection per request, closed after it; no idle rounds")
    s = sub.add_parser("table")
    s.add_argument("results")
    s.add_argument("--strict", action="store_true", help="exit 1 if any verdict is FAIL")
    sub.add_parser("selftest", help="check that the table's verdicts can fail")
    a = p.parse_args()
    if a.cmd == "stamp":
        stamp(a.out, a.input)
    elif a.cmd == "frames":
        frames(a)
    elif a.cmd == "metric":
        metric(a.url, a.name)
    elif a.cmd == "sessions":
        sessions(a)
    elif a.cmd == "table":
        fails = table(a.results)
        if fails and a.strict:
            print("%d verdict(s) FAIL" % fails, file=sys.stderr)
            sys.exit(1)
    elif a.cmd == "selftest":
        sys.exit(selftest())


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
