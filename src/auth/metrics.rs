//! The `rtmpgate_auth_*` metrics.
//!
//! Owns their names, labels, help texts and buckets. Does not own the
//! process registry: [`AuthMetrics::register`] adds them to the one the
//! caller serves (the process registry has the `rtmpgate` prefix, so the
//! names here go without it).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `rtmpgate_auth_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `publish` or `play`.
    pub call: &'static str,
    /// `allow` or `deny`.
    pub result: &'static str,
    /// `keys`, `hmac`, `webhook`, `cache`, `fail_open` or `no_rule`.
    pub rule: &'static str,
}

/// Labels of `rtmpgate_auth_webhook_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookErrorLabels {
    /// `timeout`, `saturated`, `connect`, `status` or `request`.
    pub reason: &'static str,
}

/// Webhook latency buckets, 1 ms to 10 s.
const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of the auth room; clones share the same values.
#[derive(Clone, Debug)]
pub struct AuthMetrics {
    /// Decisions by call, result and rule.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Time from sending a webhook request to its status (or failure).
    pub webhook_duration: Histogram,
    /// Webhook calls that got no usable answer, or a non-2xx one.
    pub webhook_errors: Family<WebhookErrorLabels, Counter>,
    /// Decisions served from the allow cache.
    pub cache_hits: Counter,
}

impl Default for AuthMetrics {
    fn default() -> Self {
        Self {
            decisions: Family::default(),
            webhook_duration: Histogram::new(DURATION_BUCKETS),
            webhook_errors: Family::default(),
            cache_hits: Counter::default(),
        }
    }
}

impl AuthMetrics {
    /// Adds the metrics to `registry` (expected to carry the `rtmpgate`
    /// prefix; counters get `_total` from `prometheus-client`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "auth_decisions",
            "Publish/play authorization decisions, by call, result and deciding rule",
            self.decisions.clone(),
        );
        registry.register(
            "auth_webhook_duration_seconds",
            "Time the auth webhook took to answer or fail",
            self.webhook_duration.clone(),
        );
        registry.register(
            "auth_webhook_errors",
            "Auth webhook calls without a 2xx answer, by reason",
            self.webhook_errors.clone(),
        );
        registry.register(
            "auth_cache_hits",
            "Authorization decisions served from the allow cache",
            self.cache_hits.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_the_process_registry() {
        let m = AuthMetrics::default();
        let mut reg = Registry::with_prefix("rtmpgate");
        m.register(&mut reg);
        m.decisions
            .get_or_create(&DecisionLabels {
                call: "publish",
                result: "allow",
                rule: "keys",
            })
            .inc();
        m.webhook_errors
            .get_or_create(&WebhookErrorLabels { reason: "timeout" })
            .inc();
        m.cache_hits.inc();
        m.webhook_duration.observe(0.002);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        for want in [
            r#"rtmpgate_auth_decisions_total{call="publish",result="allow",rule="keys"} 1"#,
            r#"rtmpgate_auth_webhook_errors_total{reason="timeout"} 1"#,
            "rtmpgate_auth_cache_hits_total 1",
            r#"rtmpgate_auth_webhook_duration_seconds_bucket{le="0.001"} 0"#,
            r#"rtmpgate_auth_webhook_duration_seconds_bucket{le="10.0"} 1"#,
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
