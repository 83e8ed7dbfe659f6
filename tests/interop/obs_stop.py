#!/usr/bin/env python3
"""Stops OBS Studio's stream through obs-websocket 5 (OBS 28+), so that OBS
ends the stream cleanly and logs its "Total frames output" line (a TERM
makes it exit at once without it). For tests/interop/networks.sh.

  obs_stop.py PORT      # obs-websocket on 127.0.0.1:PORT, no authentication

Prints `ok StopStream` or `error: ...` (exit 1). A minimal WebSocket client
(RFC 6455: masked text frames from the client, unfragmented replies);
every socket operation has a timeout.
"""

import base64
import json
import os
import socket
import struct
import sys

TIMEOUT = 10


def fail(why):
    print(f"error: {why}")
    sys.exit(1)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            fail("obs-websocket closed the connection")
        buf += chunk
    return buf


def send_json(sock, obj):
    data = json.dumps(obj).encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    if len(data) < 126:
        head += bytes([0x80 | len(data)])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", len(data))
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_json(sock):
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(sock, 8))[0]
    if n > 1 << 20:
        fail(f"frame of {n} bytes")
    payload = recv_exact(sock, n)
    if b0 & 0x0F == 8:
        fail(f"obs-websocket closed: {payload[2:]!r}")
    return json.loads(payload)


def main():
    if len(sys.argv) != 2:
        fail(__doc__)
    port = int(sys.argv[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: obswebsocket.json\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk or len(head) > 8192:
            fail(f"no WebSocket upgrade: {head[:200]!r}")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        fail(f"no WebSocket upgrade: {head[:200]!r}")
    hello = recv_json(sock)
    if hello.get("op") != 0:
        fail(f"expected Hello, got {hello}")
    if "authentication" in hello.get("d", {}):
        fail("obs-websocket asks for authentication")
    send_json(sock, {"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": 0}})
    if recv_json(sock).get("op") != 2:
        fail("not Identified")
    send_json(sock, {"op": 6, "d": {"requestType": "StopStream", "requestId": "stop"}})
    while True:
        msg = recv_json(sock)
        if msg.get("op") == 7 and msg["d"].get("requestId") == "stop":
            status = msg["d"].get("requestStatus", {})
            if not status.get("result"):
                fail(f"StopStream refused: {status}")
            print("ok StopStream")
            return


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError) as err:
        fail(f"{type(err).__name__}: {err}")
