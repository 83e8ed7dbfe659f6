#!/usr/bin/env python3
"""A TLS sink for bench/bulk_push.sh's `encoder_tls` path: accepts on
127.0.0.1:PORT, completes a TLS handshake (one version, from the argument;
the client's cipher preference, no session tickets), reads until EOF and
discards, one connection at a time, for as long as it runs. One line per
connection on stdout: version, cipher, bytes.

It measures the encoder, not a proxy: ffmpeg `-f flv tls://` encrypts as
on an rtmps:// push, but nothing is forwarded and no RTMP is spoken, so a
push into it is the most any TLS terminator could let ffmpeg do here.

    tls_sink.py PORT CERT KEY 1.3|1.2
"""
import socket
import ssl
import sys


def main():
    port, cert, key, version = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    v = {"1.3": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}[version]
    ctx.minimum_version = ctx.maximum_version = v
    ctx.num_tickets = 0
    # AES-GCM with ECDHE for TLS 1.2, as the proxies negotiate with ffmpeg.
    ctx.set_ciphers("ECDHE+AESGCM")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    buf = bytearray(1 << 20)
    while True:
        conn, _ = srv.accept()
        total = 0
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
            name = f"{tls.version()} {tls.cipher()[0]}"
            while True:
                n = tls.recv_into(buf)
                if not n:
                    break
                total += n
        except (OSError, ssl.SSLError) as err:
            name = f"error {err}"
        finally:
            conn.close()
        print(f"tls_sink: {name} bytes={total}", flush=True)


if __name__ == "__main__":
    main()
