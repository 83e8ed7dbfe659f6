//! The accept loops: one per listener.
//!
//! Each loop takes a permit from the connection cap *before* accepting,
//! backs off on accept errors (EMFILE) instead of spinning, and spawns one
//! task per connection in its own tracing span. While [`crate::overload`]
//! says overloaded it pauses too (clients wait in the backlog), unless RTMPT
//! sessions are alive: their clients may need new connections, so accepting
//! goes on and new streams are turned away after sniffing instead. Binding
//! and start-up are [`crate::server`]'s; what happens on a connection is
//! [`crate::connection`]'s.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::connection;
use crate::context::ServeContext;
use crate::endpoint::ListenUrl;
use crate::rtmpt::Rtmpt;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts on `listener` until `stop` fires.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    url: ListenUrl,
    ctx: Arc<ServeContext>,
    rtmpt: Arc<Rtmpt>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the cap: stop accepting; clients wait in the backlog.
                ctx.metrics.limit_hit("max_connections");
                tracing::warn!(
                    limit = "max_connections",
                    "connection cap reached; accepting paused"
                );
                tokio::select! {
                    p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
                    () = stop.cancelled() => return,
                }
            }
        };
        if ctx.overload.is_overloaded() && rtmpt.table.is_empty() {
            // Shed new work: clients wait in the backlog. (With RTMPT
            // sessions alive we go on accepting for their requests, and
            // `connection` turns new streams away.) The overload module logs
            // the transitions; this is one line per pause per listener.
            ctx.metrics.overload_shed("accept");
            tracing::debug!(listener = %url.scheme, "overloaded; accepting paused");
            tokio::select! {
                () = overload_paused(&ctx, &rtmpt) => {}
                () = stop.cancelled() => return,
            }
        }
        let accepted = tokio::select! {
            // Stop first: once shutdown starts, not one more accept.
            biased;
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(err) => {
                tracing::error!(%err, listener = %url.scheme, "accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        crate::net::tune_stream(&stream);
        // Looked at before this connection counts: the one that reaches the
        // mark is served, like the last permit of --max-connections.
        let overloaded = ctx.overload.is_overloaded();
        let counted = ctx.overload.connection();
        let id = ctx.next_conn_id.fetch_add(1, Relaxed) + 1;
        // `client` is filled in when a PROXY header names the real client.
        let span = tracing::info_span!(
            "conn",
            listener = %url.scheme,
            %peer,
            id,
            client = tracing::field::Empty
        );
        let ctx = Arc::clone(&ctx);
        let rtmpt = Arc::clone(&rtmpt);
        tracker.spawn(
            async move {
                connection::serve(ctx, rtmpt, stream, peer, url, overloaded).await;
                drop(counted);
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Returns once the overload is over, or once an RTMPT session exists (its
/// client may need a new connection), looking again every
/// [`crate::overload::RECHECK`].
async fn overload_paused(ctx: &ServeContext, rtmpt: &Rtmpt) {
    loop {
        let relieved = ctx.overload.relieved();
        if tokio::time::timeout(crate::overload::RECHECK, relieved)
            .await
            .is_ok()
            || !rtmpt.table.is_empty()
        {
            return;
        }
    }
}
