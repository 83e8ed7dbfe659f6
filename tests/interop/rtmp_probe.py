#!/usr/bin/env python3
"""An RTMP handshake through an HTTP proxy, for tests/interop/networks.sh.

Stands in for clients whose own proxy support cannot be used here (ffmpeg
5.1's TLS over CONNECT breaks after ~15 KB; ffmpeg's RTMPT gives up when a
proxy closes its connection after each reply). It sends C0+C1, reads
S0+S1+S2, checks S0 is version 3 and S2 echoes C1, sends C2, and prints one
line `ok MODE s0=3 s2_echoes_c1=yes requests=N connections=N`; any failure
prints `error: ...` and exits 1.

  rtmp_probe.py rtmps  PROXY_PORT TARGET_PORT CAFILE   # CONNECT, TLS, RTMP
  rtmp_probe.py rtmpts PROXY_PORT TARGET_PORT CAFILE   # CONNECT, TLS, RTMPT
  rtmp_probe.py rtmpt  PROXY_PORT TARGET_PORT          # RTMPT via the proxy

Everything is on 127.0.0.1; TLS verifies the certificate against CAFILE for
the name localhost. Over rtmpt every request opens a new connection to the
proxy (as tinyproxy closes the client connection after each reply); over
rtmpts one connection (the CONNECT tunnel) carries every request. Every
socket operation has a timeout.
"""

import os
import socket
import ssl
import struct
import sys
import time

TIMEOUT = 10
HOST = "127.0.0.1"


def fail(why):
    print(f"error: {why}")
    sys.exit(1)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            fail(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_head(sock):
    """Reads an HTTP response head; returns (status, headers, leftover)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            fail(f"connection closed inside a response head: {buf[:200]!r}")
        buf += chunk
        if len(buf) > 65536:
            fail("response head over 64 KB")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        fail(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers, rest


def connect_tunnel(proxy_port, target_port, cafile):
    sock = socket.create_connection((HOST, proxy_port), timeout=TIMEOUT)
    sock.sendall(
        f"CONNECT {HOST}:{target_port} HTTP/1.1\r\nHost: {HOST}:{target_port}\r\n\r\n".encode()
    )
    status, _, rest = read_head(sock)
    if status != 200:
        fail(f"proxy answered CONNECT with {status}")
    if rest:
        fail("bytes after the CONNECT reply before TLS")
    ctx = ssl.create_default_context(cafile=cafile)
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    tls.settimeout(TIMEOUT)
    return tls


def c0c1():
    c1 = struct.pack(">I", int(time.time()) & 0xFFFFFFFF) + b"\0\0\0\0" + os.urandom(1528)
    return b"\x03" + c1, c1


def check(s0s1s2, c1):
    if s0s1s2[0] != 3:
        fail(f"S0 is {s0s1s2[0]}, want 3")
    s2 = s0s1s2[1 + 1536 :]
    if s2 != c1:
        fail("S2 does not echo C1")


def probe_rtmps(proxy_port, target_port, cafile):
    tls = connect_tunnel(proxy_port, target_port, cafile)
    c01, c1 = c0c1()
    tls.sendall(c01)
    check(recv_exact(tls, 1 + 1536 + 1536), c1)
    tls.sendall(c1)  # C2: any 1536 bytes; C1 back is what clients send
    tls.close()
    return 0, 1


class Rtmpt:
    """RTMPT requests, over one socket (tunnel) or a new one each (proxy)."""

    def __init__(self, proxy_port, target_port, tunnel):
        self.proxy_port, self.target_port, self.tunnel = proxy_port, target_port, tunnel
        self.requests = 0
        self.connections = 1 if tunnel else 0

    def post(self, path, body=b""):
        if self.tunnel is not None:
            sock, target = self.tunnel, path
        else:
            sock = socket.create_connection((HOST, self.proxy_port), timeout=TIMEOUT)
            self.connections += 1
            target = f"http://{HOST}:{self.target_port}{path}"
        sock.sendall(
            (
                f"POST {target} HTTP/1.1\r\nHost: {HOST}:{self.target_port}\r\n"
                f"Content-Type: application/x-fcs\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        self.requests += 1
        status, headers, rest = read_head(sock)
        length = int(headers.get("content-length", "-1"))
        if length < 0:
            fail(f"{path}: reply without Content-Length ({status})")
        data = rest + recv_exact(sock, length - len(rest)) if length > len(rest) else rest[:length]
        if self.tunnel is None:
            sock.close()
        if status != 200:
            fail(f"{path}: HTTP {status}: {data[:200]!r}")
        return data


def probe_rtmpt(proxy_port, target_port, tunnel):
    t = Rtmpt(proxy_port, target_port, tunnel)
    sid = t.post("/open/1", b"\0").strip().decode("latin-1")
    if not sid:
        fail("/open/1 gave no session id")
    seq = 1
    c01, c1 = c0c1()
    got = t.post(f"/send/{sid}/{seq}", c01)[1:]
    deadline = time.time() + TIMEOUT
    while len(got) < 1 + 1536 + 1536:
        if time.time() > deadline:
            fail(f"only {len(got)} handshake bytes after {TIMEOUT} s of /idle")
        seq += 1
        got += t.post(f"/idle/{sid}/{seq}")[1:]
    check(got[: 1 + 1536 + 1536], c1)
    seq += 1
    t.post(f"/send/{sid}/{seq}", c1)
    seq += 1
    t.post(f"/close/{sid}/{seq}", b"\0")
    return t.requests, t.connections


def main():
    if len(sys.argv) < 4:
        fail(__doc__)
    mode, proxy_port, target_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if mode == "rtmps":
        reqs, conns = probe_rtmps(proxy_port, target_port, sys.argv[4])
    elif mode == "rtmpts":
        tls = connect_tunnel(proxy_port, target_port, sys.argv[4])
        reqs, conns = probe_rtmpt(proxy_port, target_port, tls)
        tls.close()
    elif mode == "rtmpt":
        reqs, conns = probe_rtmpt(proxy_port, target_port, None)
    else:
        fail(f"unknown mode {mode}")
    print(f"ok {mode} s0=3 s2_echoes_c1=yes requests={reqs} connections={conns}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ssl.SSLError, ValueError) as err:
        fail(f"{type(err).__name__}: {err}")
