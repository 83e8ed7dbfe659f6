#!/usr/bin/env python3
"""Writes the seeds of rtmpt_ordering, rtmpt_framing and rtmp_rechunk
(fuzz/seeds/<target>/): `python3 fuzz/make_seeds.py`. The other targets'
seeds are hand-made files."""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


# --- rtmpt_ordering: (kind, arg) pairs --------------------------------------
# kind % 4: 0/1 request (0x10 idle, 0x20 may park, 0x80 wild number),
# 2 release a parked idle, 3 time passes (arg x 40 ms).
def req(offset, idle=False, park=False):
    kind = (0x10 if idle else 0) | (0x20 if park else 0)
    return [kind, (offset << 2) & 0xFF]


RELEASE = [2, 0]


def wait(ms):
    return [3, ms // 40]


write("rtmpt_ordering", "in_order", req(0) + req(0, idle=True) + req(0) + req(0) + wait(200))
write("rtmpt_ordering", "reordered_and_duplicate",
      req(1) + req(0) + req(-1) + req(-2) + req(2) + req(1) + req(0) + wait(400))
write("rtmpt_ordering", "red5_from_one", req(1) + wait(120) + req(0) + req(-1) + req(0))
write("rtmpt_ordering", "gap_never_fills", req(0) + req(1) + wait(1000) + wait(4040))
write("rtmpt_ordering", "parked_idle",
      req(0, idle=True, park=True) + req(0, idle=True, park=True) + RELEASE + req(0) + wait(80))
write("rtmpt_ordering", "too_far_and_wild",
      req(0) + req(4) + req(3) + req(3) + [0xBC, 0xFF] + [0x80, 0x07] + wait(5040))

# --- rtmpt_framing: split byte, then client bytes ----------------------------
FCS = "Content-Type: application/x-fcs\r\n"


def post(path, body=b"", extra=""):
    head = "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%sContent-Length: %d\r\n\r\n" % (
        path, FCS, extra, len(body))
    return head.encode() + body


librtmp = (post("/open/1", b"\0") + post("/idle/4xK9a/0", b"\0")
           + post("/send/4xK9a/1", b"\x03" + b"\x01" * 1536) + post("/close/4xK9a/2", b"\0"))
write("rtmpt_framing", "librtmp_session", [0x80] + list(librtmp))
pipelined = (post("/idle/abc/1", b"\0") + post("/send/abc/2", b"\r\n\r\nPOST / HTTP/1.1\r\n\r\n")
             + post("/idle/abc/3", b"\0"))
write("rtmpt_framing", "pipelined_idle_send_idle", [0x83] + list(pipelined))
chunked = (b"POST /send/a/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
           + post("/idle/a/2", b"\0"))
write("rtmpt_framing", "chunked_stops_counting", [0x85] + list(chunked))
oversized = post("/idle/abc/1", b"\0", "X-Pad: " + "a" * (16 * 1024 + 100) + "\r\n") + post("/idle/abc/2")
write("rtmpt_framing", "oversized_head", [0x03] + list(oversized))
big = post("/send/abc/5", bytes(range(256)) * 192) + post("/idle/abc/6", b"\0")
write("rtmpt_framing", "48k_body", [0x0F] + list(big))


# --- rtmp_rechunk: split byte, watch byte, then the client's chunk stream ----
def chunk_header(fmt, csid, ts=0, length=0, type_id=0, sid=0):
    out = bytes([(fmt << 6) | csid])
    if fmt <= 2:
        out += ts.to_bytes(3, "big")
    if fmt <= 1:
        out += length.to_bytes(3, "big") + bytes([type_id])
    if fmt == 0:
        out += struct.pack("<I", sid)
    return out


def message(fmt, csid, payload, type_id=20, ts=0, sid=0, chunk=128):
    out = chunk_header(fmt, csid, ts, len(payload), type_id, sid)
    for i in range(0, max(len(payload), 1), chunk):
        if i:
            out += chunk_header(3, csid)
        out += payload[i:i + chunk]
    return out


def amf_str(s):
    return b"\x02" + struct.pack(">H", len(s)) + s.encode()


def amf_num(n):
    return b"\x00" + struct.pack(">d", n)


def command(name, txn, *args):
    return amf_str(name) + amf_num(txn) + b"".join(args)


def obj(**kv):
    out = b"\x03"
    for k, v in kv.items():
        out += struct.pack(">H", len(k)) + k.encode() + amf_str(v)
    return out + b"\x00\x00\x09"


connect = command("connect", 1, obj(app="live", type="nonprivate",
                                     tcUrl="rtmp://example.com:1935/live"))
NULL = b"\x05"
release = command("releaseStream", 2, NULL, amf_str("stream"))
fcpublish = command("FCPublish", 3, NULL, amf_str("stream"))
create = command("createStream", 4, NULL)
set_chunk = message(0, 2, struct.pack(">I", 4096), type_id=1)

ffmpeg = (set_chunk + message(0, 3, connect, chunk=4096) + message(1, 3, release, chunk=4096)
          + message(1, 3, fcpublish, chunk=4096) + message(1, 3, create, chunk=4096))
write("rtmp_rechunk", "ffmpeg_publish", [0x8F, 0] + list(ffmpeg))
write("rtmp_rechunk", "ffmpeg_publish_other_stream", [0x05, 1] + list(ffmpeg))
# The case the re-chunker exists for: the next command inherits connect's
# length (fmt 2) and comes in 128-byte chunks.
same_len = command("releaseStream", 2, NULL, amf_str("x"))
same_len += amf_str("p" * (len(connect) - len(same_len) - 3))
assert len(same_len) == len(connect)
# connect at 4096 ms: a fmt 0 re-encoding would give the fmt 3 message after
# it 8202 ms upstream instead of 4106 (found by the fuzz target).
inherits = (message(0, 3, connect, ts=4096) + message(0, 6, b"\x09" * 300, type_id=9, sid=1)
            + message(2, 3, same_len, ts=5) + message(3, 3, same_len))
write("rtmp_rechunk", "fmt2_inherits_connect_length", [0x81, 0] + list(inherits))
# Media on another chunk stream past the watch limit (256 KiB), no command.
media = message(0, 4, b"\x08" * 128, type_id=8, sid=1)
media += message(3, 4, b"\x08" * 128, type_id=8) * 2100
write("rtmp_rechunk", "watch_limit", [0x3F, 0] + list(message(0, 3, connect) + media))
