//! Keeping chunk state in step after a length-changing `connect` rewrite.
//!
//! Owns one narrow fix-up. Compressed chunk headers (fmt 2 and 3) make a
//! new message inherit the previous message length on their chunk stream.
//! Once rtmpgate has re-encoded `connect` with another `tcUrl`, the
//! upstream remembers the new length where the client remembers the old
//! one, so the client's next message on that chunk stream could be cut
//! wrong. [`Rechunk`] parses the client's bytes until that next message
//! and re-encodes it with a full (fmt 0) header, after which both sides
//! agree again and bytes pass through untouched. Every other byte is
//! forwarded as it came.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use crate::rtmp::{ChunkError, ChunkReader, encode_message};

/// Give up watching after this much client input without a message on the
/// chunk stream: a client that never speaks there again cannot be hurt.
/// Encoders send their next command there (`releaseStream`) right after
/// `connect`'s answer, before any media; the bound keeps what one routed
/// connection can make rtmpgate hold (raw bytes plus the reader's partial
/// messages) near 2 × this.
pub(super) const WATCH_LIMIT: u64 = 256 * 1024;
/// Read size while watching.
const READ_CHUNK: usize = 16 * 1024;

/// Parsing state while watching.
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
}

/// The client stream as the relay reads it during the fix-up.
pub(crate) struct Rechunk<S> {
    inner: S,
    watch: Option<Watch>,
    /// Bytes ready for the relay.
    out: BytesMut,
    /// The bytes read before the watch began have been processed.
    primed: bool,
}

impl<S> Rechunk<S> {
    /// Watches chunk stream `csid`. `reader` has been fed every client byte
    /// so far; `raw` holds those from reader offset `raw_base` on that have
    /// not been forwarded yet.
    pub(crate) fn new(
        inner: S,
        reader: ChunkReader,
        csid: u32,
        raw: BytesMut,
        raw_base: u64,
    ) -> Self {
        Self {
            inner,
            watch: Some(Watch {
                reader,
                csid,
                raw,
                raw_base,
                started_at: raw_base,
            }),
            out: BytesMut::new(),
            primed: false,
        }
    }

    /// Moves what can be decided into `out`; ends the watch when done.
    fn process(&mut self) -> io::Result<()> {
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
            let full = encode_message(&rec.message, w.reader.chunk_size())
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

    /// Ends the watch: whatever is held is forwarded as it came.
    fn stop(&mut self) {
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
            self.process()?;
        }
        loop {
            if !self.out.is_empty() {
                let n = self.out.len().min(buf.remaining());
                buf.put_slice(&self.out[..n]);
                self.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            let this = &mut *self;
            let Some(w) = this.watch.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            let before = w.raw.len();
            w.raw.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut w.raw) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {
                    this.stop();
                    if this.out.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(_)) => {
                    w.reader.push(&w.raw[before..]);
                    this.process()?;
                }
            }
        }
    }
}

crate::forward_async_write!(Rechunk<S>, S);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::Message;
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
                let held = r.watch.as_ref().map_or(0, |w| w.raw.capacity());
                peak = peak.max(held);
            }
            writer.await.unwrap();
            assert!(r.watch.is_none(), "the watch ended");
            assert_eq!(got, want, "bytes passed unchanged");
            // 256 KiB of raw input plus a read chunk, whatever the limit was.
            assert!(peak <= 300 * 1024, "held {peak} bytes");
        }
    }
}
