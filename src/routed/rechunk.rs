//! Keeping chunk state in step after a length-changing `connect` rewrite.
//!
//! Owns one narrow fix-up. Compressed chunk headers (fmt 2 and 3) make a
//! new message inherit the previous message length on their chunk stream.
//! Once rtmpgate has re-encoded `connect` with another `tcUrl`, the
//! upstream remembers the new length where the client remembers the old
//! one, so the client's next message on that chunk stream could be cut
//! wrong. [`Rechunk`] parses the client's bytes until that next message
//! and re-encodes it with a header that carries its length (fmt 1 with the
//! client's timestamp delta, or fmt 0), after which both sides agree again
//! (length and the delta later fmt 3 headers inherit) and bytes pass
//! through untouched. Every other byte is
//! forwarded as it came. The decisions are [`Fixup`]'s, without I/O (the
//! `rtmp_rechunk` fuzz target drives it); [`Rechunk`] puts it on a stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use crate::rtmp::{ChunkError, ChunkReader, Message, encode_message};

/// A 24-bit timestamp field with this value means "see the extended one".
const EXTENDED: u32 = 0xFF_FFFF;

/// Give up watching after this much client input without a message on the
/// chunk stream (one ending later is not looked at, however the input was
/// read): a client that never speaks there again cannot be hurt.
/// Encoders send their next command there (`releaseStream`) right after
/// `connect`'s answer, before any media; the bound keeps what one routed
/// connection can make rtmpgate hold (raw bytes plus the reader's partial
/// messages) near 2 × this.
pub const WATCH_LIMIT: u64 = 256 * 1024;
/// Read size while watching.
const READ_CHUNK: usize = 16 * 1024;

/// Parsing state while watching.
#[derive(Debug)]
struct Watch {
    reader: ChunkReader,
    /// The chunk stream whose next message gets a full header.
    csid: u32,
    /// Client bytes read but not yet handed on, starting at `raw_base`.
    raw: BytesMut,
    /// Reader offset of `raw[0]`.
    raw_base: u64,
    /// Reader offset where watching began.
    started_at: u64,
    /// What the watched chunk stream's compressed headers inherited then
    /// (the same on both sides: `connect`'s timestamp and stream id).
    before: Option<(u32, u32, u32)>,
}

/// `msg` with a header that carries its length, leaving the upstream's
/// state for the chunk stream as the client's reader has it (`after`):
/// fmt 0 when the client's timestamp field was the absolute timestamp
/// (later fmt 3 headers inherit that field); else fmt 1 with the client's
/// delta when `before` and that delta give its timestamp; else fmt 0.
fn encode_in_step(
    msg: &Message,
    chunk_size: u32,
    before: Option<(u32, u32, u32)>,
    after: Option<(u32, u32, u32)>,
) -> Result<Vec<u8>, ChunkError> {
    let mut full = encode_message(msg, chunk_size)?;
    let (Some((_, ts0, sid0)), Some((delta, ts, sid))) = (before, after) else {
        return Ok(full);
    };
    let in_step = delta != ts.min(EXTENDED)
        && ts == msg.timestamp
        && ts0.wrapping_add(delta) == ts
        && sid == sid0
        && sid == msg.stream_id
        && delta < EXTENDED
        && ts < EXTENDED;
    if in_step {
        // fmt 0 → 1: the basic header's fmt bits, the delta in the
        // timestamp field, no message stream id.
        let basic = match msg.csid {
            0..64 => 1,
            64..320 => 2,
            _ => 3,
        };
        full[0] = (full[0] & 0x3f) | 0x40;
        full[basic..basic + 3].copy_from_slice(&delta.to_be_bytes()[1..]);
        full.drain(basic + 7..basic + 11);
    }
    Ok(full)
}

impl Watch {
    /// Hands the reader `raw` from `from` on, up to the watch limit: bytes
    /// past it are never parsed, so where the watch ends does not depend
    /// on how the input was split into reads.
    fn push(&mut self, from: usize) {
        let seen = self.raw_base + from as u64 - self.started_at;
        let room = WATCH_LIMIT.saturating_sub(seen);
        let n = (self.raw.len() - from).min(usize::try_from(room).unwrap_or(usize::MAX));
        self.reader.push(&self.raw[from..from + n]);
    }
}

/// The client stream as the relay reads it during the fix-up.
pub(crate) struct Rechunk<S> {
    inner: S,
    fix: Fixup,
    /// The bytes read before the watch began have been processed.
    primed: bool,
}

impl<S> Rechunk<S> {
    /// Watches chunk stream `csid`: see [`Fixup::new`].
    pub(crate) fn new(
        inner: S,
        reader: ChunkReader,
        csid: u32,
        raw: BytesMut,
        raw_base: u64,
    ) -> Self {
        Self {
            inner,
            fix: Fixup::new(reader, csid, raw, raw_base),
            primed: false,
        }
    }
}

/// The fix-up on bytes handed to it: what to forward, and whether it is
/// still watching.
#[derive(Debug)]
pub struct Fixup {
    watch: Option<Watch>,
    /// Bytes ready for the relay.
    out: BytesMut,
}

impl Fixup {
    /// Watches chunk stream `csid`. `reader` has been fed every client byte
    /// so far; `raw` holds those from reader offset `raw_base` on that have
    /// not been forwarded yet. Call [`Fixup::process`] once before feeding:
    /// the reader may hold the whole next message already.
    pub fn new(reader: ChunkReader, csid: u32, raw: BytesMut, raw_base: u64) -> Self {
        Self {
            watch: Some(Watch {
                before: reader.inherited(csid),
                reader,
                csid,
                raw,
                raw_base,
                started_at: raw_base,
            }),
            out: BytesMut::new(),
        }
    }

    /// Hands on client bytes read after the watch began.
    pub fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(w) = self.watch.as_mut() else {
            self.out.extend_from_slice(data);
            return Ok(());
        };
        let from = w.raw.len();
        w.raw.extend_from_slice(data);
        w.push(from);
        self.process()
    }

    /// Whether the watch goes on (else bytes pass through as they come).
    pub fn watching(&self) -> bool {
        self.watch.is_some()
    }

    /// Client bytes held back while watching.
    pub fn held(&self) -> usize {
        self.watch.as_ref().map_or(0, |w| w.raw.len())
    }

    /// Bytes ready for the relay.
    pub fn out(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Moves what can be decided into `out`; ends the watch when done.
    pub fn process(&mut self) -> io::Result<()> {
        let Some(w) = self.watch.as_mut() else {
            return Ok(());
        };
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        loop {
            let rec = match w.reader.next_message() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                // A message too long to hold while watching is media, not
                // the command the watch waits for: stop watching.
                Err(ChunkError::MessageTooLong { .. }) => {
                    tracing::debug!("long message while watching; watch ended");
                    self.stop();
                    return Ok(());
                }
                Err(e) => return Err(bad(e.to_string())),
            };
            let start = (rec.start - w.raw_base) as usize;
            let end = (rec.end - w.raw_base) as usize;
            if rec.message.csid != w.csid {
                // Another chunk stream's message is complete: everything up
                // to its end is final.
                self.out.extend_from_slice(&w.raw.split_to(end));
                w.raw_base = rec.end;
                continue;
            }
            if rec.interleaved {
                return Err(bad(
                    "chunks of the watched chunk stream are interleaved; cannot re-chunk".into(),
                ));
            }
            self.out.extend_from_slice(&w.raw[..start]);
            let after = w.reader.inherited(w.csid);
            let full = encode_in_step(&rec.message, w.reader.chunk_size(), w.before, after)
                .map_err(|e| bad(e.to_string()))?;
            self.out.extend_from_slice(&full);
            w.raw.advance(end);
            tracing::debug!(
                csid = w.csid,
                "re-chunked the message after the rewritten connect"
            );
            self.stop();
            return Ok(());
        }
        if w.raw_base + w.raw.len() as u64 - w.started_at > WATCH_LIMIT {
            tracing::debug!("no further message on the connect chunk stream; watch ended");
            self.stop();
        }
        Ok(())
    }

    /// Ends the watch (also at the client's EOF): whatever is held is
    /// forwarded as it came.
    pub fn stop(&mut self) {
        if let Some(w) = self.watch.take() {
            self.out.extend_from_slice(&w.raw);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rechunk<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.primed {
            // Bytes that came with `connect` are already in the reader:
            // decide on them before waiting for more input, which a client
            // that awaits an answer would never send.
            self.primed = true;
            self.fix.process()?;
        }
        loop {
            let out = &mut self.fix.out;
            if !out.is_empty() {
                let n = out.len().min(buf.remaining());
                buf.put_slice(&out[..n]);
                out.advance(n);
                return Poll::Ready(Ok(()));
            }
            let this = &mut *self;
            let Some(w) = this.fix.watch.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            let before = w.raw.len();
            w.raw.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut w.raw) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {
                    this.fix.stop();
                    if this.fix.out.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(_)) => {
                    w.push(before);
                    this.fix.process()?;
                }
            }
        }
    }
}

crate::forward_async_write!(Rechunk<S>, S);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn media(len: usize) -> Vec<u8> {
        let m = Message {
            csid: 6,
            timestamp: 0,
            type_id: 9,
            stream_id: 1,
            payload: vec![9u8; len].into(),
        };
        encode_message(&m, 128).unwrap()
    }

    /// A fix-up watching chunk stream 3 after a 20-byte command there,
    /// fed `input` in `piece`-byte reads, and what it forwards.
    fn fix_up(input: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let m = Message {
            csid: 3,
            timestamp: 0,
            type_id: 20,
            stream_id: 0,
            payload: vec![0u8; 20].into(),
        };
        let connect = encode_message(&m, 128).unwrap();
        let mut reader = ChunkReader::new(WATCH_LIMIT as u32);
        reader.push(&connect);
        reader.next_message().unwrap().unwrap();
        let mut fix = Fixup::new(reader, 3, BytesMut::new(), connect.len() as u64);
        fix.process().unwrap();
        for part in input.chunks(piece) {
            fix.feed(part).unwrap();
        }
        let watching = fix.watching();
        fix.stop();
        (fix.out().to_vec(), watching)
    }

    /// Found with the `rtmp_rechunk` fuzz target's split check: a message on the watched
    /// chunk stream ending past the watch limit was re-chunked or not
    /// depending on how the input was split into reads. Now only one that
    /// ends within the limit is, however it arrives.
    #[test]
    fn only_a_message_within_the_watch_limit_is_rechunked() {
        // The next command, with a fmt 2 header (inherits connect's length).
        let mut next = vec![0x83, 0, 0, 0];
        next.extend_from_slice(&[7u8; 20]);
        // 257 media messages end 237 bytes before the limit; 234 more
        // bytes of media put the 24-byte command across it.
        for (filler, rechunked) in [(0, true), (234, false)] {
            let mut input = media_messages(257);
            if filler > 0 {
                input.extend_from_slice(&media(filler));
            }
            input.extend_from_slice(&next);
            for piece in [input.len(), READ_CHUNK, 1000] {
                let (out, watching) = fix_up(&input, piece);
                assert_eq!(out != input, rechunked, "{filler}, {piece}-byte reads");
                assert!(!watching, "{filler}, {piece}-byte reads");
            }
        }
    }

    fn media_messages(n: usize) -> Vec<u8> {
        media(1000).repeat(n)
    }

    /// Found by the `rtmp_rechunk` fuzz target: the re-chunked message got
    /// a fmt 0 header, so a later fmt 3 message on that chunk stream took
    /// its absolute timestamp as the delta upstream (4106 became 8202).
    #[test]
    fn later_messages_keep_their_timestamps() {
        let m = |csid, timestamp, len| Message {
            csid,
            timestamp,
            type_id: 20,
            stream_id: 0,
            payload: vec![1u8; len].into(),
        };
        let connect = encode_message(&m(3, 4096, 20), 128).unwrap();
        // fmt 2 (delta 5, connect's length), then fmt 3: a new message
        // 5 ms later again.
        let mut input = encode_message(&m(6, 0, 300), 128).unwrap();
        input.extend_from_slice(&[0x83, 0, 0, 5]);
        input.extend_from_slice(&[2u8; 20]);
        input.push(0xc3);
        input.extend_from_slice(&[3u8; 20]);
        let timestamps = |rest: &[u8]| {
            let mut reader = ChunkReader::new(WATCH_LIMIT as u32);
            reader.push(&connect);
            reader.push(rest);
            let mut out = Vec::new();
            while let Some(r) = reader.next_message().unwrap() {
                out.push((r.message.csid, r.message.timestamp));
            }
            out
        };
        let want = vec![(3, 4096), (6, 0), (3, 4101), (3, 4106)];
        assert_eq!(timestamps(&input), want);
        let mut reader = ChunkReader::new(WATCH_LIMIT as u32);
        reader.push(&connect);
        reader.next_message().unwrap().unwrap();
        let mut fix = Fixup::new(reader, 3, BytesMut::new(), connect.len() as u64);
        fix.feed(&input).unwrap();
        fix.stop();
        let out = fix.out().to_vec();
        assert_ne!(out, input, "re-chunked");
        assert_eq!(timestamps(&out), want);
    }

    /// What a client can make a watching connection hold is bounded by the
    /// watch limit, however much it sends before speaking on the watched
    /// chunk stream: one long message, or many short ones.
    #[tokio::test]
    async fn the_watch_ends_within_its_limit() {
        for input in [media(2 * 1024 * 1024), media(1000).repeat(600)] {
            let (mut tx, rx) = tokio::io::duplex(64 * 1024);
            let mut reader = ChunkReader::new(WATCH_LIMIT as u32);
            reader.set_max_message_len(WATCH_LIMIT as u32);
            let mut r = Rechunk::new(rx, reader, 3, BytesMut::new(), 0);
            let want = input.clone();
            let writer = tokio::spawn(async move {
                tx.write_all(&input).await.unwrap();
            });
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut peak = 0;
            while got.len() < want.len() {
                let n = r.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
                let held = r.fix.watch.as_ref().map_or(0, |w| w.raw.capacity());
                peak = peak.max(held);
            }
            writer.await.unwrap();
            assert!(!r.fix.watching(), "the watch ended");
            assert_eq!(got, want, "bytes passed unchanged");
            // 256 KiB of raw input plus a read chunk, whatever the limit was.
            assert!(peak <= 300 * 1024, "held {peak} bytes");
        }
    }
}
