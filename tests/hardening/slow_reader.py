#!/usr/bin/env python3
"""Slow-read attack on rtmpgate's RTMPT listener, with real sessions: the
slow_read case of tests/hardening/run.sh.

Each of --conns connections (opened at --rate per second, receive buffer
--rcvbuf bytes, set before connect so the advertised window stays small):

  1. POST /open/1 (read at full speed): a real session, its id;
  2. POST /send/<id>/1 with --body-kb KiB (read at full speed): the echo
     upstream sends every byte back, so the session's buffer fills;
  3. --idles pipelined POST /idle/<id>/N in one write: each reply carries up
     to 64 KiB of the echoed bytes;
  4. reads the first reply's head at full speed and checks it is `200` with
     a Content-Length of at least --min-reply (a large reply, not a 405 or an
     empty poll), then reads --read-bytes every --read-interval seconds
     (default 1 byte/s).

Once every connection is set up, writes --ready (JSON: opened, large) and
keeps reading slowly for --secs more. Whether rtmpgate closed a connection
is judged by run.sh from rtmpgate's side (its metrics): the reader sees
the close only after the bytes queued before it, which at 1 byte/s is
days.

Prints one JSON line at the end:
  {"conns", "opened" (sessions opened), "large" (connections whose first
   pipelined reply was a large 200), "eof" (closes the reader saw), "held"
   (open from the reader's side at the end), "errors" (first few setup
   failures)}
Exit status 0 whatever rtmpgate did: run.sh judges the figures.
"""
import argparse
import asyncio
import json
import socket
import time


def request(path: str, body: bytes) -> bytes:
    head = (
        "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-fcs\r\n"
        "Content-Length: %d\r\n\r\n" % (path, len(body))
    )
    return head.encode() + body


async def read_head(loop, sock, limit=8192):
    """The response head, byte by byte (so nothing past it is consumed)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = await loop.sock_recv(sock, 1)
        if not b:
            raise ConnectionError("closed inside a response head")
        head += b
        if len(head) > limit:
            raise ValueError("response head too long")
    status = int(head.split(b" ", 2)[1])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length


async def read_exact(loop, sock, n):
    out = b""
    while len(out) < n:
        b = await loop.sock_recv(sock, n - len(out))
        if not b:
            raise ConnectionError("closed inside a response body")
        out += b
    return out


async def roundtrip(loop, sock, path, body):
    await loop.sock_sendall(sock, request(path, body))
    status, length = await read_head(loop, sock)
    data = await read_exact(loop, sock, length or 0)
    return status, data


async def setup(i, a, stats, payload):
    """Steps 1-4 up to the large reply's head; the socket, or None."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", a.port)), 10)
        status, body = await asyncio.wait_for(roundtrip(loop, sock, "/open/1", b"\0"), 10)
        sid = body.decode(errors="replace").strip()
        if status != 200 or not sid:
            raise RuntimeError("/open: HTTP %d %r" % (status, body[:60]))
        stats["opened"] += 1
        status, _ = await asyncio.wait_for(roundtrip(loop, sock, "/send/%s/1" % sid, payload), 10)
        if status != 200:
            raise RuntimeError("/send: HTTP %d" % status)
        # Let the echo come back into the session's buffer.
        await asyncio.sleep(0.5)
        idles = b"".join(request("/idle/%s/%d" % (sid, 2 + k), b"\0") for k in range(a.idles))
        await loop.sock_sendall(sock, idles)
        status, length = await asyncio.wait_for(read_head(loop, sock), 10)
        if status != 200 or (length or 0) < a.min_reply:
            raise RuntimeError("first pipelined /idle: HTTP %d, Content-Length %s (want >= %d)"
                               % (status, length, a.min_reply))
        stats["large"] += 1
        return sock
    except Exception as e:  # noqa: BLE001 - any setup failure is reported
        if len(stats["errors"]) < 5:
            stats["errors"].append("conn %d: %s: %s" % (i, type(e).__name__, e))
        sock.close()
        return None


async def hold(sock, a, stats, deadline):
    """Reads --read-bytes every --read-interval until the deadline or EOF."""
    loop = asyncio.get_running_loop()
    try:
        while time.monotonic() < deadline:
            try:
                b = await asyncio.wait_for(loop.sock_recv(sock, a.read_bytes), a.read_interval + 5)
            except asyncio.TimeoutError:
                # Nothing readable for a while: still open, keep holding.
                continue
            if not b:
                raise ConnectionError("EOF")
            await asyncio.sleep(a.read_interval)
        stats["held"] += 1
    except (ConnectionError, OSError):
        stats["eof"] += 1
    finally:
        sock.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=200)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--secs", type=float, default=45.0)
    p.add_argument("--rcvbuf", type=int, default=4096)
    p.add_argument("--body-kb", type=int, default=192)
    p.add_argument("--idles", type=int, default=4)
    p.add_argument("--min-reply", type=int, default=16384)
    p.add_argument("--read-bytes", type=int, default=1)
    p.add_argument("--read-interval", type=float, default=1.0)
    p.add_argument("--ready", required=True)
    a = p.parse_args()
    stats = {"conns": a.conns, "opened": 0, "large": 0, "eof": 0, "held": 0, "errors": []}
    payload = bytes(range(256)) * (a.body_kb * 4)
    tasks = []
    for i in range(a.conns):
        tasks.append(asyncio.create_task(setup(i, a, stats, payload)))
        await asyncio.sleep(1.0 / a.rate)
    socks = [s for s in await asyncio.gather(*tasks) if s is not None]
    with open(a.ready, "w") as f:
        json.dump({"opened": stats["opened"], "large": stats["large"]}, f)
    deadline = time.monotonic() + a.secs
    await asyncio.gather(*(hold(s, a, stats, deadline) for s in socks))
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
