#!/usr/bin/env python3
"""A small nginx-rtmp `on_publish` compatible stream-key webhook.

Allows a stream when its name, or its `key` argument, is in an allow list;
answers 204 (allow) or 403 (deny); logs one line per decision to stderr,
showing keys only as their first 3 characters and their length. Python 3
standard library only.

Run it (binds 127.0.0.1:8080 unless told otherwise):

    python3 examples/auth_webhook.py --keys /etc/rtmpgate/stream-keys.txt
    python3 examples/auth_webhook.py --listen 127.0.0.1:9000 s3cret other-key
    AUTH_WEBHOOK_KEYS="s3cret,other-key" python3 examples/auth_webhook.py

The keys file has one key per line (`#` comments, blank lines ignored) and
is re-read when it changes. Point rtmpgate at it:

    rtmpgate --listen rtmps://0.0.0.0:443 --upstream rtmp://origin:1935 \
        --auth-webhook http://127.0.0.1:8080/on_publish

An encoder then publishes rtmps://gate/live/s3cret (the stream name is the
key) or rtmps://gate/live/cam?key=s3cret (the `key` argument is). The same
hook serves nginx-rtmp directly:

    application live {
        live on;
        on_publish http://127.0.0.1:8080/on_publish;
    }

Both send a form POST with call, app, name, addr, tcurl and the stream
name's query arguments; nginx-rtmp and rtmpgate treat any 2xx as allow.
The hook has no authentication of its own: keep it on a private address.
"""

import argparse
import hmac
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

# nginx-rtmp's and rtmpgate's forms are a few hundred bytes; more is refused.
MAX_BODY = 8 * 1024
# Each read from a client waits at most this long.
SOCKET_TIMEOUT = 5.0
# Connections served at once; more are closed at accept.
MAX_CONNECTIONS = 64


def redact(value):
    """First 3 characters and the length: enough to tell keys apart in a
    log, not enough to use one."""
    if value is None:
        return "-"
    return f"{value[:3]}...(len={len(value)})"


class AllowList:
    """Keys from argv/env, plus a file re-read when its mtime changes."""

    def __init__(self, fixed, path):
        self.fixed = set(fixed)
        self.path = path
        self.lock = threading.Lock()
        self.mtime = None
        self.from_file = set()
        if path:
            self._reload()

    def _reload(self):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as e:
            # Keep the last good list; a missing file is not "allow all".
            log(f"keys file {self.path}: {e.strerror}; keeping {len(self.from_file)} keys")
            return
        if mtime == self.mtime:
            return
        with open(self.path, encoding="utf-8") as f:
            keys = {
                line.strip()
                for line in f
                if line.strip() and not line.lstrip().startswith("#")
            }
        self.mtime, self.from_file = mtime, keys
        log(f"keys file {self.path}: {len(keys)} keys")

    def contains(self, candidate):
        if not candidate:
            return False
        with self.lock:
            if self.path:
                self._reload()
            keys = self.fixed | self.from_file
        # Compare every key in constant time, so timing says nothing about
        # how much of a guess matched.
        found = False
        for key in keys:
            found |= hmac.compare_digest(key.encode(), candidate.encode())
        return found


def log(msg):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    print(f"{stamp} auth_webhook: {msg}", file=sys.stderr, flush=True)


class Hook(BaseHTTPRequestHandler):
    # Keep-alive, so rtmpgate's pooled client reuses one connection.
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT
    server_version = "auth_webhook"
    sys_version = ""
    allow = None  # set by main()

    def log_message(self, format, *args):
        # The default access line names no decision; ours does (decide()).
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 204:
            self.wfile.write(body)

    def do_GET(self):
        self.close_connection = True
        self.answer(405, b"POST the on_publish form\n")

    def do_POST(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            return self.answer(411, b"Content-Length required\n")
        if int(length) > MAX_BODY:
            # Not read: the connection is closed instead.
            self.close_connection = True
            return self.answer(413, b"form too large\n")
        raw = self.rfile.read(int(length))
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        except (UnicodeDecodeError, ValueError):
            self.close_connection = True
            return self.answer(400, b"not a form\n")
        self.decide(form)

    def decide(self, form):
        # The first value: rtmpgate never lets a query argument repeat its
        # own fields, and nginx-rtmp puts its own fields first.
        def first(k):
            v = form.get(k)
            return v[0] if v else None

        name, key = first("name"), first("key")
        if self.allow.contains(name):
            allowed, why = True, "name"
        elif self.allow.contains(key):
            allowed, why = True, "key"
        else:
            allowed, why = False, "not in the allow list"
        log(
            f"{'allow' if allowed else 'deny'} call={first('call') or '-'} "
            f"app={first('app') or '-'} name={redact(name)} key={redact(key)} "
            f"addr={first('addr') or '-'} by={why}"
        )
        if allowed:
            self.answer(204)
        else:
            self.answer(403, b"denied\n")


class Server(ThreadingHTTPServer):
    """One thread per connection, at most MAX_CONNECTIONS of them."""

    daemon_threads = True
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def main():
    p = argparse.ArgumentParser(description="nginx-rtmp on_publish style stream-key webhook")
    p.add_argument("--listen", default=os.environ.get("AUTH_WEBHOOK_LISTEN", "127.0.0.1:8080"),
                   help="HOST:PORT to bind (default 127.0.0.1:8080)")
    p.add_argument("--keys", default=os.environ.get("AUTH_WEBHOOK_KEYS_FILE"),
                   help="file of allowed keys, one per line (re-read when it changes)")
    p.add_argument("key", nargs="*", help="allowed keys (also AUTH_WEBHOOK_KEYS, comma-separated)")
    args = p.parse_args()
    fixed = list(args.key)
    fixed += [k.strip() for k in os.environ.get("AUTH_WEBHOOK_KEYS", "").split(",") if k.strip()]
    if not fixed and not args.keys:
        p.error("no keys: give KEY arguments, --keys FILE or AUTH_WEBHOOK_KEYS")
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        p.error(f"--listen {args.listen}: want HOST:PORT")
    Hook.allow = AllowList(fixed, args.keys)
    host = host.strip("[]")
    if ":" in host:
        Server.address_family = socket.AF_INET6
    server = Server((host, int(port)), Hook)
    bound = server.server_address
    log(f"listening on {bound[0]}:{bound[1]}, {len(fixed)} keys from argv/env"
        + (f", keys file {args.keys}" if args.keys else ""))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
