//! What every connection shares: the per-process state below the binary's
//! rooms.
//!
//! Owns [`ServeContext`] (configuration, metrics, the TLS acceptor, the
//! upstream pools, caps, overload accounting, the shutdown and drain
//! handles, the task tracker) and [`ClientAddrs`]. It is built once by
//! [`crate::server`] and read by the connection dispatcher, the routed path,
//! the RTMPT server and the admin endpoint. It imports only leaf rooms; the
//! RTMPT session table is the RTMPT room's own ([`crate::rtmpt::Rtmpt`]) and
//! is passed next to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authorizer;
use crate::config::Config;
use crate::limits::PerClient;
use crate::metrics::Metrics;
use crate::overload::Overload;
use crate::proxy_protocol;
use crate::routes::RouteRule;
use crate::upstream::{self, UpstreamStream, Upstreams};

/// What every connection task shares. Read-only after start.
pub(crate) struct ServeContext {
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tls: Option<TlsAcceptor>,
    /// Fires when the drain period is over: live relays close.
    pub(crate) abort: CancellationToken,
    /// Fires when a drain has no RTMPT session left to serve (or is over):
    /// idle HTTP keep-alive connections close. A child of `abort`.
    pub(crate) http_done: CancellationToken,
    /// Set once shutdown begins: readiness turns false.
    pub(crate) draining: AtomicBool,
    /// Live connections per client address.
    pub(crate) per_client: Arc<PerClient>,
    /// Process-wide load against the overload limits.
    pub(crate) overload: Arc<Overload>,
    /// The upstream servers and their health.
    pub(crate) upstreams: Upstreams,
    /// Routing rules, each with its own upstreams (empty: no routing).
    pub(crate) routes: Vec<(RouteRule, Upstreams)>,
    /// Every connection and RTMPT session task: the drain waits for all.
    pub(crate) tasks: TaskTracker,
    /// Source of connection ids for logs, unique across listeners.
    pub(crate) next_conn_id: AtomicU64,
    /// Stream authorization and stream-name logging.
    pub(crate) auth: Arc<Authorizer>,
}

/// A client connection's two ends, as used for logs, limits and PROXY
/// headers. `peer` is the real client: the PROXY header's source when a
/// trusted load balancer sent one.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddrs {
    /// The client.
    pub peer: SocketAddr,
    /// Our address the client connected to.
    pub local: SocketAddr,
}

impl ServeContext {
    /// Connects to the upstream for `client`, sending the configured PROXY
    /// header; counts failures.
    pub(crate) async fn connect_upstream(
        &self,
        client: ClientAddrs,
    ) -> Result<UpstreamStream, upstream::UpstreamError> {
        self.connect_route_upstream(&self.upstreams, client).await
    }

    /// Like [`Self::connect_upstream`], to one route's upstreams.
    pub(crate) async fn connect_route_upstream(
        &self,
        upstreams: &Upstreams,
        client: ClientAddrs,
    ) -> Result<UpstreamStream, upstream::UpstreamError> {
        let header = self
            .config
            .upstream_proxy_protocol
            .map(|v| proxy_protocol::encode(v, client.peer, client.local));
        upstreams.connect(header.as_deref(), &self.metrics).await
    }
}
