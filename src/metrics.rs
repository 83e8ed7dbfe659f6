//! Counters and gauges for everything an operator needs to see, in a
//! Prometheus registry (`prometheus-client`).
//!
//! Owns metric names, labels and help texts. Other modules record through
//! [`Metrics`]; exposition as text is [`Metrics::encode`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use std::sync::Arc;

use crate::app_metrics::AppMetrics;
use crate::auth::AuthMetrics;

/// Labels for per-listener connection counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// Listener URL scheme (rtmp, rtmps, rtmpt, rtmpts).
    pub listener: &'static str,
}

/// Labels for finished connections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// Protocol the connection turned out to speak.
    pub protocol: &'static str,
    /// Why it ended (see `connection::CloseReason`).
    pub reason: &'static str,
}

/// Labels for byte counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `client_to_upstream` or `upstream_to_client`.
    pub direction: &'static str,
}

/// Labels carrying a short failure reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Short, bounded reason string.
    pub reason: &'static str,
}

/// Labels for an outcome (ok or error).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels naming a configured limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The setting's name, e.g. `max_connections_per_client`.
    pub limit: &'static str,
}

/// Labels for RTMPT requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// open, send, idle, close, ident or other.
    pub verb: &'static str,
    /// HTTP status code of the reply.
    pub status: u16,
}

/// Labels for work shed while overloaded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    /// `accept` (an accept loop paused) or `rtmpt_open` (a 503 to `/open`).
    pub what: &'static str,
}

/// Label for per-upstream metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The upstream URL.
    pub upstream: String,
}

/// Label for the build info metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    /// Crate version.
    pub version: &'static str,
}

/// Every metric rtmpgate exports.
pub struct Metrics {
    registry: Registry,
    /// Connections accepted, by listener.
    pub accepted: Family<ListenerLabels, Counter>,
    /// Connections being served now, by listener.
    pub active: Family<ListenerLabels, Gauge>,
    /// Connections finished, by protocol and reason.
    pub closed: Family<CloseLabels, Counter>,
    /// Bytes relayed, by direction.
    pub bytes: Family<DirectionLabels, Counter>,
    /// Failed TLS handshakes, by reason.
    pub tls_failures: Family<ReasonLabels, Counter>,
    /// Failed upstream connects, by reason.
    pub upstream_failures: Family<ReasonLabels, Counter>,
    /// 1 while an upstream is considered healthy, 0 while held down.
    pub upstream_up: Family<UpstreamLabels, Gauge>,
    /// Time to connect to an upstream (TCP, PROXY header, TLS).
    pub upstream_connect_seconds: Histogram,
    /// Times a configured limit refused or delayed a client, by limit.
    pub limit_hits: Family<LimitLabels, Counter>,
    /// Certificate reloads, by result.
    pub tls_reloads: Family<ResultLabels, Counter>,
    /// RTMPT sessions open now.
    pub rtmpt_sessions_active: Gauge,
    /// RTMPT sessions ended, by reason.
    pub rtmpt_sessions_closed: Family<ReasonLabels, Counter>,
    /// RTMPT requests, by verb and reply status.
    pub rtmpt_requests: Family<RequestLabels, Counter>,
    /// RTMPT requests that arrived ahead of their turn and waited.
    pub rtmpt_reordered: Counter,
    /// Duplicate RTMPT requests answered from the cached reply.
    pub rtmpt_duplicates: Counter,
    /// RTMPT sessions closed because a sequence number never arrived.
    pub rtmpt_gaps: Counter,
    /// RTMPT requests naming a session that does not exist (or not for
    /// this client): guesses, expired sessions, misrouted requests.
    pub rtmpt_unknown_session: Counter,
    /// 1 while overloaded (new work shed), else 0 (see [`crate::overload`]).
    pub overloaded: Gauge,
    /// Bytes buffered on behalf of connections, as charged to the overload
    /// accounting.
    pub buffered_bytes: Gauge,
    /// Work shed while overloaded, by what.
    pub overload_shed: Family<ShedLabels, Counter>,
    /// Stream authorization (`rtmpgate_auth_*`), recorded by the authorizer.
    pub auth: AuthMetrics,
    /// Per-app bytes and active streams (`--metrics-per-app`).
    pub apps: Arc<AppMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rtmpgate");
        let m = Self {
            accepted: Family::default(),
            active: Family::default(),
            closed: Family::default(),
            bytes: Family::default(),
            tls_failures: Family::default(),
            upstream_failures: Family::default(),
            tls_reloads: Family::default(),
            limit_hits: Family::default(),
            upstream_up: Family::default(),
            // 1 ms … ~4 s: loopback sidecars to distant origins over TLS.
            upstream_connect_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 13),
            ),
            rtmpt_sessions_active: Gauge::default(),
            rtmpt_sessions_closed: Family::default(),
            rtmpt_requests: Family::default(),
            rtmpt_reordered: Counter::default(),
            rtmpt_duplicates: Counter::default(),
            rtmpt_gaps: Counter::default(),
            rtmpt_unknown_session: Counter::default(),
            overloaded: Gauge::default(),
            buffered_bytes: Gauge::default(),
            overload_shed: Family::default(),
            auth: AuthMetrics::default(),
            apps: Arc::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            m.accepted.clone(),
        );
        registry.register(
            "connections_active",
            "Client connections being served",
            m.active.clone(),
        );
        registry.register(
            "connections_closed",
            "Client connections finished, by protocol and close reason",
            m.closed.clone(),
        );
        registry.register("relayed_bytes", "Bytes relayed", m.bytes.clone());
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes with clients that failed",
            m.tls_failures.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Connections to the upstream that failed",
            m.upstream_failures.clone(),
        );
        registry.register(
            "upstream_up",
            "1 while an upstream is healthy, 0 while held down after a failure",
            m.upstream_up.clone(),
        );
        registry.register(
            "upstream_connect_seconds",
            "Time to connect to an upstream, TLS included",
            m.upstream_connect_seconds.clone(),
        );
        registry.register(
            "limit_hits",
            "Clients refused or delayed by a configured limit, by limit",
            m.limit_hits.clone(),
        );
        registry.register(
            "tls_reloads",
            "Certificate reloads (SIGHUP or file change), by result",
            m.tls_reloads.clone(),
        );
        registry.register(
            "rtmpt_sessions_active",
            "RTMPT sessions open",
            m.rtmpt_sessions_active.clone(),
        );
        registry.register(
            "rtmpt_sessions_closed",
            "RTMPT sessions ended, by reason",
            m.rtmpt_sessions_closed.clone(),
        );
        registry.register(
            "rtmpt_requests",
            "RTMPT HTTP requests, by verb and status",
            m.rtmpt_requests.clone(),
        );
        registry.register(
            "rtmpt_reordered_requests",
            "RTMPT requests that arrived early and waited for their turn",
            m.rtmpt_reordered.clone(),
        );
        registry.register(
            "rtmpt_duplicate_requests",
            "Duplicate RTMPT requests answered from the cached reply",
            m.rtmpt_duplicates.clone(),
        );
        registry.register(
            "rtmpt_sequence_gaps",
            "RTMPT sessions closed on a sequence gap that never filled",
            m.rtmpt_gaps.clone(),
        );
        registry.register(
            "rtmpt_unknown_session_requests",
            "RTMPT requests for a session that does not exist",
            m.rtmpt_unknown_session.clone(),
        );
        registry.register(
            "overloaded",
            "1 while overloaded: accepting paused, new RTMPT sessions refused",
            m.overloaded.clone(),
        );
        registry.register(
            "buffered_bytes",
            "Bytes buffered on behalf of connections (overload accounting)",
            m.buffered_bytes.clone(),
        );
        registry.register(
            "overload_shed",
            "Work shed while overloaded: accept loop pauses, RTMPT opens refused",
            m.overload_shed.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "rtmpgate version (value is 1)", build_info);
        m.auth.register(&mut registry);
        m.apps.register(&mut registry);
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts a hit of the named limit.
    pub fn limit_hit(&self, limit: &'static str) {
        self.limit_hits.get_or_create(&LimitLabels { limit }).inc();
    }

    /// Counts work shed while overloaded (`accept` or `rtmpt_open`).
    pub fn overload_shed(&self, what: &'static str) {
        self.overload_shed.get_or_create(&ShedLabels { what }).inc();
    }

    /// Counts an RTMPT session that ended.
    pub fn rtmpt_session_closed(&self, reason: &'static str) {
        self.rtmpt_sessions_active.dec();
        self.rtmpt_sessions_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts an RTMPT request by verb and status.
    pub fn rtmpt_request(&self, verb: &'static str, status: u16) {
        self.rtmpt_requests
            .get_or_create(&RequestLabels { verb, status })
            .inc();
    }

    /// Adds relayed byte counts once a connection ends.
    pub fn add_bytes(&self, up: u64, down: u64) {
        self.bytes
            .get_or_create(&DirectionLabels {
                direction: "client_to_upstream",
            })
            .inc_by(up);
        self.bytes
            .get_or_create(&DirectionLabels {
                direction: "upstream_to_client",
            })
            .inc_by(down);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::default();
        m.accepted
            .get_or_create(&ListenerLabels { listener: "rtmps" })
            .inc();
        m.add_bytes(10, 20);
        let text = m.encode();
        assert!(
            text.contains("rtmpgate_connections_accepted_total{listener=\"rtmps\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rtmpgate_relayed_bytes_total{direction=\"upstream_to_client\"} 20"),
            "{text}"
        );
    }
}
