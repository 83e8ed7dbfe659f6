//! Plumbing shared by rtmpgate's stream wrappers.
//!
//! Owns [`forward_async_write!`]: the wrappers that watch or replay the read
//! side (`Rewind`, the RTMPT `Watched`) pass every write
//! straight through, and this writes that delegation once.

/// Implements `AsyncWrite` for a wrapper by forwarding every method to its
/// `inner` field (vectored writes included, so `writev` survives wrapping).
#[macro_export]
#[doc(hidden)]
macro_rules! forward_async_write {
    ($ty:ty $(, $bound:ident)?) => {
        impl$(<$bound: tokio::io::AsyncWrite + Unpin>)? tokio::io::AsyncWrite for $ty {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}
