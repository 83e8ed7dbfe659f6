//! The admin HTTP listener: `/healthz`, `/readyz` and `/metrics`.
//!
//! Owns answering operators and orchestrators (Kubernetes probes,
//! Prometheus). It is off unless `--admin ADDR` is given, and should be bound
//! to a private address: it has no authentication.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::context::ServeContext;

/// Readiness probes the upstream with a TCP connect bounded by this, well
/// inside Kubernetes' default 1 s probe timeout.
const READY_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A probe or scrape must send its request head within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves admin requests until `stop` fires.
pub(crate) async fn serve(listener: TcpListener, ctx: Arc<ServeContext>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(%err, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                async move { Ok::<_, Infallible>(answer(&ctx, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%err, "admin connection failed");
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

async fn answer(ctx: &ServeContext, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        // Ready when some upstream accepts a connection (TLS included).
        "/readyz" => {
            if ctx.draining.load(Relaxed) {
                return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
            }
            match ctx.upstreams.probe(READY_CONNECT_TIMEOUT).await {
                Ok(_) => text(StatusCode::OK, "ready\n"),
                Err(err) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")),
            }
        }
        "/metrics" => {
            let mut res = text(StatusCode::OK, ctx.metrics.encode());
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
            res
        }
        _ => text(StatusCode::NOT_FOUND, "try /healthz, /readyz or /metrics\n"),
    }
}
