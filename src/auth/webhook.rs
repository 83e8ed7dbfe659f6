//! The nginx-rtmp compatible `on_publish`/`on_play` webhook client.
//!
//! Owns the request (a form POST), its bounds (one timeout over waiting for
//! a slot and the answer, a cap on requests in flight, a pooled keep-alive
//! client, a bounded body read) and classifying the outcome. Does not own
//! what an outcome means (`authorizer`: fail-open, cache).
//!
//! The body carries, form-encoded and in this order: `app`, `flashver`,
//! `tcurl`, `addr`, `call` (`publish`|`play`), `name`, `type=live`,
//! `protocol`, `sni` (empty without SNI), then every query argument of the
//! stream name as its own field, as nginx-rtmp appends them. An argument
//! named like one of those fields is left out, so a client cannot override
//! `name` or `addr` for a hook that reads the last value.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use super::metrics::AuthMetrics;
use super::{AuthError, AuthRequest, redact_url};

/// Most of a hook's answer body read (then ignored): enough for the usual
/// "OK" page, so the connection goes back to the pool; more is dropped.
const MAX_BODY: usize = 16 * 1024;
/// Idle keep-alive connections kept to the hook.
const MAX_IDLE: usize = 16;
/// How long an idle keep-alive connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Least time left for a request to be worth sending once a slot is free
/// (or 10% of the timeout, if that is less).
const MIN_REQUEST_TIME: Duration = Duration::from_millis(50);

/// Fields rtmpgate sets itself; query arguments with these names are dropped.
const OWN_FIELDS: [&str; 9] = [
    "app", "flashver", "tcurl", "addr", "call", "name", "type", "protocol", "sni",
];

/// Why the hook gave no 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookError {
    /// No status within the timeout.
    Timeout,
    /// Every in-flight slot stayed busy for the whole timeout.
    Saturated,
    /// The connection could not be made (refused, unreachable).
    Connect,
    /// The connection broke before a status arrived.
    Request,
    /// The hook answered with a status other than 2xx.
    Status(u16),
}

impl HookError {
    /// Metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            HookError::Timeout => "timeout",
            HookError::Saturated => "saturated",
            HookError::Connect => "connect",
            HookError::Request => "request",
            HookError::Status(_) => "status",
        }
    }

    /// Whether `fail_open` may turn this into an allow: the hook could not
    /// answer. A 3xx or 4xx is an answer and always denies.
    pub(crate) fn is_failure(self) -> bool {
        match self {
            HookError::Status(s) => s >= 500,
            _ => true,
        }
    }

    /// Short text for the log and the client.
    pub(crate) fn reason(self) -> String {
        match self {
            HookError::Timeout => "webhook timed out".into(),
            HookError::Saturated => "webhook busy".into(),
            HookError::Connect => "webhook unreachable".into(),
            HookError::Request => "webhook connection failed".into(),
            HookError::Status(s) => format!("webhook answered {s}"),
        }
    }
}

/// A configured hook.
#[derive(Debug)]
pub(crate) struct Webhook {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
    slots: Semaphore,
}

impl Webhook {
    /// Validates `url` (http only) and sets up the pooled client.
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        max_in_flight: usize,
    ) -> Result<Self, AuthError> {
        let bad = |reason: &str| AuthError::WebhookUrl {
            url: redact_url(url),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(AuthError::WebhookScheme {
                    url: redact_url(url),
                });
            }
            _ => return Err(bad("the scheme must be http://")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE.min(max_in_flight))
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            uri,
            timeout,
            slots: Semaphore::new(max_in_flight),
        })
    }

    /// Asks the hook about `req`. `Ok` is a 2xx.
    pub(crate) async fn ask(
        &self,
        req: &AuthRequest,
        metrics: &AuthMetrics,
    ) -> Result<(), HookError> {
        let deadline = Instant::now() + self.timeout;
        let _slot = match timeout_at(deadline, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(HookError::Saturated),
        };
        // A slot freed only as the deadline comes is as good as none: a
        // request sent with no time left would only time out.
        let least = (self.timeout / 10).min(MIN_REQUEST_TIME);
        if deadline.saturating_duration_since(Instant::now()) < least {
            return Err(HookError::Saturated);
        }
        let request = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(USER_AGENT, concat!("rtmpgate/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(form_body(req))))
            .map_err(|_| HookError::Request)?;
        let started = Instant::now();
        let answer = timeout_at(deadline, self.client.request(request)).await;
        metrics
            .webhook_duration
            .observe(started.elapsed().as_secs_f64());
        let response = match answer {
            Err(_) => return Err(HookError::Timeout),
            Ok(Err(e)) if e.is_connect() => return Err(HookError::Connect),
            Ok(Err(_)) => return Err(HookError::Request),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        // Read (and ignore) a bounded body so the connection can be reused;
        // a slow or large body only costs that connection.
        let _ = timeout_at(
            deadline,
            Limited::new(response.into_body(), MAX_BODY).collect(),
        )
        .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(HookError::Status(status.as_u16()))
        }
    }
}

/// The form body nginx-rtmp's `on_publish`/`on_play` would send, plus
/// `protocol` and `sni`.
pub(crate) fn form_body(req: &AuthRequest) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("app", &req.app)
        .append_pair("flashver", &req.flashver)
        .append_pair("tcurl", &req.tcurl)
        .append_pair("addr", &req.addr.to_string())
        .append_pair("call", req.call.as_str())
        .append_pair("name", &req.name)
        .append_pair("type", "live")
        .append_pair("protocol", req.protocol)
        .append_pair("sni", req.sni.as_deref().unwrap_or(""));
    for (k, v) in &req.args {
        if !OWN_FIELDS.contains(&k.as_str()) {
            form.append_pair(k, v);
        }
    }
    form.finish()
}
