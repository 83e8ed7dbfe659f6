//! Webhook tests against a tiny hook server on 127.0.0.1:0: body fields,
//! statuses, timeout, unreachable hook, fail-open, cache, concurrency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::authorizer_tests::request;
use super::metrics::WebhookErrorLabels;
use super::webhook::form_body;
use super::*;

/// Bound on any one wait in these tests.
const BOUND: Duration = Duration::from_secs(10);

/// What the hook server saw.
#[derive(Default)]
struct Seen {
    /// (content-type, body) of each request.
    requests: Mutex<Vec<(String, String)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Seen {
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// A hook answering `status` after `delay`.
async fn hook(status: u16, delay: Duration) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let server_seen = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = server_seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let n = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        seen.max_in_flight.fetch_max(n, Ordering::SeqCst);
                        let ct = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let body = String::from_utf8(body.to_vec()).unwrap();
                        seen.requests.lock().unwrap().push((ct, body));
                        tokio::time::sleep(delay).await;
                        seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                        hyper::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from_static(b"ignored body")))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn settings(addr: SocketAddr) -> AuthSettings {
    AuthSettings {
        webhook_url: Some(format!("http://{addr}/on_publish")),
        timeout: Duration::from_secs(5),
        ..AuthSettings::default()
    }
}

async fn decide(a: &Authorizer, req: &AuthRequest) -> Decision {
    tokio::time::timeout(BOUND, a.authorize(req))
        .await
        .expect("bounded")
}

fn errors(a: &Authorizer, reason: &'static str) -> u64 {
    a.metrics()
        .webhook_errors
        .get_or_create(&WebhookErrorLabels { reason })
        .get()
}

#[test]
fn form_body_fields_exact() {
    let mut req = request(
        Call::Publish,
        "cam 1",
        &[
            ("token", "a&b=c"),
            ("x", "é"),
            ("name", "other"),
            ("addr", "1.2.3.4"),
        ],
    );
    req.flashver = "FMLE/3.0 (compatible; FMSc/1.0)".into();
    req.protocol = "rtmps";
    req.sni = Some("edge.test".into());
    assert_eq!(
        form_body(&req),
        "app=live&flashver=FMLE%2F3.0+%28compatible%3B+FMSc%2F1.0%29\
         &tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Flive&addr=127.0.0.1\
         &call=publish&name=cam+1&type=live&protocol=rtmps&sni=edge.test\
         &token=a%26b%3Dc&x=%C3%A9"
    );
    let req = request(Call::Play, "cam", &[]);
    assert!(form_body(&req).ends_with("&call=play&name=cam&type=live&protocol=rtmp&sni="));
}

#[tokio::test]
async fn statuses_decide() {
    for (status, allowed) in [
        (200, true),
        (204, true),
        (302, false),
        (403, false),
        (404, false),
    ] {
        let (addr, seen) = hook(status, Duration::ZERO).await;
        let a = Authorizer::build(&AuthSettings {
            fail_open: true, // a 3xx/4xx is an answer: fail-open does not apply
            ..settings(addr)
        })
        .unwrap();
        let d = decide(&a, &request(Call::Publish, "cam", &[("k", "v w")])).await;
        assert_eq!(d.allowed, allowed, "{status}: {d:?}");
        assert_eq!(d.rule, Rule::Webhook, "{status}");
        if !allowed {
            assert_eq!(d.reason, format!("webhook answered {status}"));
            assert_eq!(errors(&a, "status"), 1);
        }
        let got = seen.requests.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "application/x-www-form-urlencoded");
        let fields: Vec<(String, String)> = form_urlencoded::parse(got[0].1.as_bytes())
            .into_owned()
            .collect();
        assert!(fields.contains(&("call".into(), "publish".into())));
        assert!(fields.contains(&("k".into(), "v w".into())), "{fields:?}");
    }
}

#[tokio::test]
async fn server_error_denies_unless_fail_open() {
    let (addr, _) = hook(500, Duration::ZERO).await;
    let a = Authorizer::build(&settings(addr)).unwrap();
    let d = decide(&a, &request(Call::Publish, "cam", &[])).await;
    assert_eq!((d.allowed, d.rule), (false, Rule::Webhook));
    assert_eq!(d.reason, "webhook answered 500");
    let a = Authorizer::build(&AuthSettings {
        fail_open: true,
        ..settings(addr)
    })
    .unwrap();
    let d = decide(&a, &request(Call::Publish, "cam", &[])).await;
    assert_eq!((d.allowed, d.rule), (true, Rule::FailOpen));
    assert_eq!(d.reason, "webhook answered 500; fail-open");
    // A fail-open allow is not cached: the hook is asked again.
    let d = decide(&a, &request(Call::Publish, "cam", &[])).await;
    assert_eq!(d.rule, Rule::FailOpen);
}

#[tokio::test]
async fn timeout_denies_unless_fail_open() {
    let (addr, _) = hook(200, Duration::from_secs(3600)).await;
    for fail_open in [false, true] {
        let a = Authorizer::build(&AuthSettings {
            timeout: Duration::from_millis(200),
            fail_open,
            ..settings(addr)
        })
        .unwrap();
        let d = decide(&a, &request(Call::Publish, "cam", &[])).await;
        assert_eq!(d.allowed, fail_open, "{d:?}");
        assert!(d.reason.starts_with("webhook timed out"), "{d:?}");
        assert!(d.latency >= Duration::from_millis(190), "{d:?}");
        assert!(d.latency < Duration::from_secs(3), "{d:?}");
        assert_eq!(errors(&a, "timeout"), 1);
    }
}

#[tokio::test]
async fn unreachable_denies_unless_fail_open() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }; // closed: connections are refused
    for fail_open in [false, true] {
        let a = Authorizer::build(&AuthSettings {
            fail_open,
            ..settings(addr)
        })
        .unwrap();
        let d = decide(&a, &request(Call::Publish, "cam", &[])).await;
        assert_eq!(d.allowed, fail_open, "{d:?}");
        let rule = if fail_open {
            Rule::FailOpen
        } else {
            Rule::Webhook
        };
        assert_eq!(d.rule, rule);
        assert!(d.reason.starts_with("webhook unreachable"), "{d:?}");
        assert_eq!(errors(&a, "connect"), 1);
    }
}

#[tokio::test]
async fn cache_avoids_second_request_and_expires() {
    let (addr, seen) = hook(200, Duration::ZERO).await;
    let a = Authorizer::build(&AuthSettings {
        cache_ttl: Duration::from_millis(800),
        ..settings(addr)
    })
    .unwrap();
    let req = request(Call::Publish, "cam", &[("token", "t")]);
    assert_eq!(decide(&a, &req).await.rule, Rule::Webhook);
    let d = decide(&a, &req).await;
    assert_eq!((d.allowed, d.rule), (true, Rule::Cache));
    assert_eq!(seen.count(), 1);
    assert_eq!(a.metrics().cache_hits.get(), 1);
    let other = request(Call::Publish, "cam", &[("token", "u")]);
    assert_eq!(decide(&a, &other).await.rule, Rule::Webhook);
    assert_eq!(seen.count(), 2);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(decide(&a, &req).await.rule, Rule::Webhook);
    assert_eq!(seen.count(), 3);
}

#[tokio::test]
async fn denies_are_not_cached() {
    let (addr, seen) = hook(403, Duration::ZERO).await;
    let a = Authorizer::build(&settings(addr)).unwrap();
    let req = request(Call::Publish, "cam", &[]);
    assert!(!decide(&a, &req).await.allowed);
    assert!(!decide(&a, &req).await.allowed);
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn local_rule_allows_without_asking_the_hook() {
    let (addr, seen) = hook(403, Duration::ZERO).await;
    let dir = super::authorizer_tests::temp_dir("hook-keys");
    let keys = dir.join("keys");
    std::fs::write(&keys, "live/cam?key=k1\n").unwrap();
    let a = Authorizer::build(&AuthSettings {
        keys_file: Some(keys),
        ..settings(addr)
    })
    .unwrap();
    let d = decide(&a, &request(Call::Publish, "cam", &[("key", "k1")])).await;
    assert_eq!((d.allowed, d.rule), (true, Rule::Keys));
    assert_eq!(seen.count(), 0);
    let d = decide(&a, &request(Call::Publish, "cam", &[("key", "k2")])).await;
    assert_eq!(
        (d.allowed, d.rule),
        (false, Rule::Webhook),
        "the hook has the last word"
    );
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn in_flight_requests_are_bounded() {
    // One slot, answers after 300 ms: the second request waits for it.
    let (addr, seen) = hook(200, Duration::from_millis(300)).await;
    let a = Authorizer::build(&AuthSettings {
        max_in_flight: 1,
        ..settings(addr)
    })
    .unwrap();
    let (r1, r2) = (
        request(Call::Publish, "a", &[]),
        request(Call::Publish, "b", &[]),
    );
    let (d1, d2) = tokio::join!(decide(&a, &r1), decide(&a, &r2));
    assert!(d1.allowed && d2.allowed, "{d1:?} {d2:?}");
    assert_eq!(seen.max_in_flight.load(Ordering::SeqCst), 1);
    assert!(d1.latency.max(d2.latency) >= Duration::from_millis(550));

    // Saturated for the whole timeout: decided as a timeout.
    let (addr, seen) = hook(200, Duration::from_secs(3600)).await;
    for fail_open in [false, true] {
        let a = Authorizer::build(&AuthSettings {
            max_in_flight: 1,
            timeout: Duration::from_millis(300),
            fail_open,
            ..settings(addr)
        })
        .unwrap();
        let (d1, d2) = tokio::join!(decide(&a, &r1), decide(&a, &r2));
        let mut reasons = [d1.reason.clone(), d2.reason.clone()];
        reasons.sort();
        let suffix = if fail_open { "; fail-open" } else { "" };
        assert_eq!(
            reasons,
            [
                format!("webhook busy{suffix}"),
                format!("webhook timed out{suffix}")
            ]
        );
        assert_eq!((d1.allowed, d2.allowed), (fail_open, fail_open));
        assert_eq!(errors(&a, "saturated"), 1);
    }
    // One request per authorizer reached the hook; the other never left.
    assert_eq!(seen.count(), 2);
}
