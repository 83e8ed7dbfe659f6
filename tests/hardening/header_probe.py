#!/usr/bin/env python3
"""header_probe.py PORT WAIT: connects to 127.0.0.1:PORT, sends one HTTP
request line (`POST /open/1 HTTP/1.1\\r\\n`) and nothing else, then waits up
to WAIT seconds. Prints `closed SECS ...` when the server closes (or resets)
the connection, `data SECS ...` when it answers instead, `open SECS` when it
does neither in time. Used by tests/hardening/run.sh to time rtmpgate's
RTMPT header-read timeout."""
import socket
import sys
import time

port, wait = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
t = time.monotonic()
s.sendall(b"POST /open/1 HTTP/1.1\r\n")
s.settimeout(wait)
try:
    d = s.recv(4096)
    print("closed" if not d else "data", round(time.monotonic() - t, 2), repr(d[:60]), flush=True)
except socket.timeout:
    print("open", round(time.monotonic() - t, 2), flush=True)
except OSError as e:
    print("closed", round(time.monotonic() - t, 2), repr(e), flush=True)
