#!/usr/bin/env python3
"""A stand-in for a TCP load balancer with `send-proxy`, for the interop suite.

    proxy_forward.py LISTEN_PORT TARGET_PORT CLIENT_IP CLIENT_PORT

Accepts on 127.0.0.1:LISTEN_PORT; for every connection connects to
127.0.0.1:TARGET_PORT, writes a PROXY protocol v1 header claiming the client
is CLIENT_IP:CLIENT_PORT+n (n = 0, 1, ... per connection) and the address it
reached is 127.0.0.1:LISTEN_PORT, then copies bytes both ways (half-closes
passed on). One line per connection on stdout. Bounded by its caller
(`timeout`), and by a 5 s connect timeout to the target.
"""

import socket
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(client, n, listen_port, target_port, client_ip, client_port):
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port), timeout=5)
    except OSError as err:
        print(f"conn {n}: connect to 127.0.0.1:{target_port} failed: {err}", flush=True)
        client.close()
        return
    upstream.settimeout(None)
    header = f"PROXY TCP4 {client_ip} 127.0.0.1 {client_port + n} {listen_port}\r\n"
    try:
        upstream.sendall(header.encode("ascii"))
    except OSError as err:
        print(f"conn {n}: writing the PROXY header failed: {err}", flush=True)
        upstream.close()
        client.close()
        return
    print(f"conn {n}: sent {header.strip()!r}", flush=True)
    back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    back.start()
    pipe(client, upstream)
    back.join()
    upstream.close()
    client.close()
    print(f"conn {n}: closed", flush=True)


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    client_ip, client_port = sys.argv[3], int(sys.argv[4])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(16)
    print(f"listening on 127.0.0.1:{listen_port}, forwarding to 127.0.0.1:{target_port}", flush=True)
    n = 0
    while True:
        client, _ = srv.accept()
        threading.Thread(
            target=serve,
            args=(client, n, listen_port, target_port, client_ip, client_port),
            daemon=True,
        ).start()
        n += 1


if __name__ == "__main__":
    main()
