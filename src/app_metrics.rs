//! Per-application stream metrics, opt-in (`--metrics-per-app`) and
//! bounded: bytes and active streams labelled by the `connect` app only —
//! never by stream name, which is often the stream key.
//!
//! Owns [`AppMetrics`] (the two families, the cap on distinct apps, the
//! switch) and [`StreamGuard`] (an active stream, counted until dropped).
//! Registered by [`crate::metrics::Metrics`]; fed by the stream gate (active
//! streams) and the close of a connection or RTMPT session (bytes).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Distinct app labels at most; later apps are counted as [`OTHER_APP`].
pub const MAX_APPS: usize = 100;
/// The label of apps past [`MAX_APPS`] (and of streams without `connect`).
pub const OTHER_APP: &str = "_other";
/// Longest app label; longer names are cut.
const MAX_APP_LEN: usize = 64;

/// Labels of per-app byte counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppBytesLabels {
    /// The `connect` app (without its query).
    pub app: String,
    /// `client_to_upstream` or `upstream_to_client`.
    pub direction: &'static str,
}

/// Labels of the per-app active streams gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppStreamLabels {
    /// The `connect` app (without its query).
    pub app: String,
    /// `publish` or `play`.
    pub call: &'static str,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct AppMetrics {
    enabled: AtomicBool,
    bytes: Family<AppBytesLabels, Counter>,
    streams: Family<AppStreamLabels, Gauge>,
    seen: Mutex<HashSet<String>>,
}

/// One active stream in `rtmpgate_app_streams_active`; leaves it when
/// dropped.
#[derive(Debug)]
pub struct StreamGuard {
    gauge: Gauge,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl AppMetrics {
    /// Adds the families to `registry` (prefixed `rtmpgate`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "app_bytes",
            "Bytes relayed by connect app, counted when a connection or RTMPT session ends (--metrics-per-app)",
            self.bytes.clone(),
        );
        registry.register(
            "app_streams_active",
            "Publishes and plays going on now, by connect app (--metrics-per-app)",
            self.streams.clone(),
        );
    }

    /// Turns the per-app metrics on (off by default).
    pub fn enable(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }

    /// The label for `app`: its name without query, cut to a sane length,
    /// or [`OTHER_APP`] once [`MAX_APPS`] names were seen. `None` when off.
    fn label(&self, app: Option<&str>) -> Option<String> {
        if !self.enabled.load(Relaxed) {
            return None;
        }
        let Some(app) = app.map(|a| a.split('?').next().unwrap_or_default()) else {
            return Some(OTHER_APP.to_owned());
        };
        let app: String = app.chars().take(MAX_APP_LEN).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&app) {
            return Some(app);
        }
        if seen.len() >= MAX_APPS {
            return Some(OTHER_APP.to_owned());
        }
        seen.insert(app.clone());
        Some(app)
    }

    /// Counts a finished connection's bytes under its app.
    pub fn add_bytes(&self, app: Option<&str>, up: u64, down: u64) {
        let Some(app) = self.label(app) else {
            return;
        };
        for (direction, n) in [("client_to_upstream", up), ("upstream_to_client", down)] {
            self.bytes
                .get_or_create(&AppBytesLabels {
                    app: app.clone(),
                    direction,
                })
                .inc_by(n);
        }
    }

    /// Counts a stream of `app` as active until the guard drops.
    pub fn stream_started(&self, app: Option<&str>, call: &'static str) -> Option<StreamGuard> {
        let app = self.label(app)?;
        let gauge = self
            .streams
            .get_or_create(&AppStreamLabels { app, call })
            .clone();
        gauge.inc();
        Some(StreamGuard { gauge })
    }
}

/// Shared handle, as the gate keeps it.
pub type SharedAppMetrics = Arc<AppMetrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_bounded_when_on() {
        let m = AppMetrics::default();
        assert!(
            m.stream_started(Some("live"), "publish").is_none(),
            "off by default"
        );
        m.enable(true);
        let g = m
            .stream_started(Some("live?token=secret"), "publish")
            .unwrap();
        assert_eq!(g.gauge.get(), 1);
        assert_eq!(
            m.label(Some("live?x")).as_deref(),
            Some("live"),
            "query never a label"
        );
        drop(g);
        assert_eq!(
            m.streams
                .get_or_create(&AppStreamLabels {
                    app: "live".into(),
                    call: "publish"
                })
                .get(),
            0
        );
        for i in 0..MAX_APPS {
            m.label(Some(&format!("app{i}")));
        }
        assert_eq!(m.label(Some("one-too-many")).as_deref(), Some(OTHER_APP));
        assert_eq!(
            m.label(Some("app3")).as_deref(),
            Some("app3"),
            "seen apps keep their label"
        );
    }
}
