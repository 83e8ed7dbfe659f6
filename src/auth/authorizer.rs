//! [`Authorizer`]: building the rules from [`AuthSettings`] and deciding.
//!
//! Owns the order in which rules are tried (see the module doc of
//! `auth`), counting decisions and the stream-key log form. Does not own
//! the rules' details (`keys`, `signed`, `webhook`, `cache`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use tokio::time::Instant;

use super::cache::{AllowCache, MAX_ENTRIES};
use super::keys::KeysFile;
use super::metrics::WebhookErrorLabels;
use super::metrics::{AuthMetrics, DecisionLabels};
use super::signed::{hex, verify};
use super::webhook::Webhook;
use super::{AuthError, AuthRequest, AuthSettings, Call, Decision, LogKeyMode, Rule, flags};

/// Decides publish/play requests; build once, share as `Arc<Authorizer>`.
pub struct Authorizer {
    check_play: bool,
    fail_open: bool,
    keys: Option<KeysFile>,
    hmac: Option<hmac::Key>,
    webhook: Option<Webhook>,
    cache: AllowCache,
    log_mode: LogKeyMode,
    /// Random per-process key of the stream-key log hash.
    log_key: hmac::Key,
    metrics: AuthMetrics,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("check_play", &self.check_play)
            .field("fail_open", &self.fail_open)
            .field("keys", &self.keys.as_ref().map(|k| k.current().len()))
            .field("hmac", &self.hmac.is_some())
            .field("webhook", &self.webhook.is_some())
            .field("log_mode", &self.log_mode)
            .finish_non_exhaustive()
    }
}

type Verdict = (bool, Rule, String);

fn allow(rule: Rule, reason: &str) -> Verdict {
    (true, rule, reason.to_owned())
}

fn read_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    let mut secret = std::fs::read(path).map_err(|source| AuthError::Read {
        flag: flags::HMAC_SECRET,
        path: path.to_path_buf(),
        source,
    })?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(AuthError::EmptySecret {
            path: path.to_path_buf(),
        });
    }
    Ok(secret)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Authorizer {
    /// Validates `settings` and reads the keys and secret files (blocking:
    /// call at start-up). Errors name the flag or file and what to do.
    pub fn build(settings: &AuthSettings) -> Result<Arc<Self>, AuthError> {
        Self::build_with(settings, AuthMetrics::default())
    }

    /// [`Authorizer::build`], recording into `metrics` (already registered
    /// by the caller).
    pub fn build_with(
        settings: &AuthSettings,
        metrics: AuthMetrics,
    ) -> Result<Arc<Self>, AuthError> {
        if settings.timeout.is_zero() {
            return Err(AuthError::Setting {
                flag: flags::TIMEOUT,
                reason: "must be more than zero, e.g. 5s",
            });
        }
        if settings.max_in_flight == 0 {
            return Err(AuthError::Setting {
                flag: flags::MAX_IN_FLIGHT,
                reason: "must be at least 1",
            });
        }
        let webhook = match &settings.webhook_url {
            Some(url) => Some(Webhook::new(url, settings.timeout, settings.max_in_flight)?),
            None => None,
        };
        let keys = settings
            .keys_file
            .as_deref()
            .map(KeysFile::load)
            .transpose()?;
        let hmac = match &settings.hmac_secret_file {
            Some(path) => Some(hmac::Key::new(hmac::HMAC_SHA256, &read_secret(path)?)),
            None => None,
        };
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(Arc::new(Self {
            check_play: settings.check_play,
            fail_open: settings.fail_open,
            keys,
            hmac,
            webhook,
            cache: AllowCache::new(settings.cache_ttl, MAX_ENTRIES),
            log_mode: settings.log_stream_key,
            log_key: hmac::Key::new(hmac::HMAC_SHA256, &seed),
            metrics,
        }))
    }

    /// Whether any rule is configured (otherwise everything is allowed).
    pub fn is_enabled(&self) -> bool {
        self.keys.is_some() || self.hmac.is_some() || self.webhook.is_some()
    }

    /// Whether `call` is checked at all; when not, the caller may skip
    /// building a request ([`Self::authorize`] would allow it).
    pub fn checks(&self, call: Call) -> bool {
        self.is_enabled() && (call == Call::Publish || self.check_play)
    }

    /// The metrics, for [`AuthMetrics::register`].
    pub fn metrics(&self) -> &AuthMetrics {
        &self.metrics
    }

    /// Re-reads the keys file if its contents changed (for the reload
    /// timer and SIGHUP). `Ok(true)`: new rules in force; `Ok(false)`: no
    /// keys file or no change; `Err`: the previous rules stay in force.
    pub async fn reload(&self) -> Result<bool, AuthError> {
        match &self.keys {
            Some(keys) => keys.reload().await,
            None => Ok(false),
        }
    }

    /// The stream name as it may appear in logs: as is, as a short keyed
    /// hash (`h:` + 12 hex digits, stable within this process), or not.
    pub fn log_name(&self, name: &str) -> Option<String> {
        match self.log_mode {
            LogKeyMode::Plain => Some(name.to_owned()),
            LogKeyMode::Off => None,
            LogKeyMode::Hash => {
                let tag = hmac::sign(&self.log_key, name.as_bytes());
                let digest = hex(tag.as_ref());
                Some(format!("h:{}", digest.get(..12).unwrap_or(&digest)))
            }
        }
    }

    /// Decides `req`; see the module doc for the order of the rules.
    pub async fn authorize(&self, req: &AuthRequest) -> Decision {
        let started = Instant::now();
        let (allowed, rule, reason) = self.decide(req).await;
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                call: req.call.as_str(),
                result: if allowed { "allow" } else { "deny" },
                rule: rule.as_str(),
            })
            .inc();
        Decision {
            allowed,
            rule,
            reason,
            latency: started.elapsed(),
        }
    }

    async fn decide(&self, req: &AuthRequest) -> Verdict {
        if req.call == Call::Play && !self.check_play {
            return allow(Rule::NoRule, "play not checked");
        }
        if !self.is_enabled() {
            return allow(Rule::NoRule, "auth off");
        }
        let mut local_deny: Option<(Rule, &'static str)> = None;
        if let Some(keys) = &self.keys {
            if keys.current().allows(&req.app, &req.name, req.arg("key")) {
                return allow(Rule::Keys, "key accepted");
            }
            local_deny = Some((Rule::Keys, "no matching key"));
        }
        if let Some(key) = &self.hmac {
            match (req.arg("expires"), req.arg("sig")) {
                (Some(expires), Some(sig)) => {
                    match verify(key, &req.app, &req.name, expires, sig, unix_now()) {
                        Ok(()) => return allow(Rule::Hmac, "signature accepted"),
                        Err(e) => local_deny = Some((Rule::Hmac, e.as_str())),
                    }
                }
                _ if local_deny.is_none() => {
                    local_deny = Some((Rule::Hmac, "no signature"));
                }
                _ => {}
            }
        }
        let Some(hook) = &self.webhook else {
            let (rule, reason) = local_deny.unwrap_or((Rule::NoRule, "not authorized"));
            return (false, rule, reason.to_owned());
        };
        if self.cache.hit(req) {
            self.metrics.cache_hits.inc();
            return allow(Rule::Cache, "cached webhook allow");
        }
        match hook.ask(req, &self.metrics).await {
            Ok(()) => {
                self.cache.insert(req);
                allow(Rule::Webhook, "webhook allowed")
            }
            Err(err) => {
                self.metrics
                    .webhook_errors
                    .get_or_create(&WebhookErrorLabels {
                        reason: err.label(),
                    })
                    .inc();
                if self.fail_open && err.is_failure() {
                    tracing::warn!(
                        call = req.call.as_str(),
                        app = %req.app,
                        stream = self.log_name(&req.name).as_deref().unwrap_or("-"),
                        reason = %err.reason(),
                        "auth webhook failed; allowing because fail-open is on"
                    );
                    (true, Rule::FailOpen, format!("{}; fail-open", err.reason()))
                } else {
                    (false, Rule::Webhook, err.reason())
                }
            }
        }
    }
}
