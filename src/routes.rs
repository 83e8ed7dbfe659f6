//! Routing rules: which upstreams serve a connection, by the `app` and the
//! `tcUrl` host of its RTMP `connect`.
//!
//! Owns the rules as configured (`[[route]]` tables) and matching them;
//! nothing here touches a socket. Following a rule is
//! [`crate::routed`]'s job.

use crate::endpoint::UpstreamUrl;

/// One `[[route]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// `app` to match exactly (case-sensitive, as servers treat it);
    /// `None` matches any.
    pub app: Option<String>,
    /// Host of `tcUrl` to match (case-insensitive); `None` matches any.
    pub host: Option<String>,
    /// Upstreams for matching connections, in preference order.
    pub upstreams: Vec<UpstreamUrl>,
    /// Replace `tcUrl` in `connect` with this (for origins that key
    /// virtual hosts on it and know the public name not).
    pub tc_url: Option<String>,
}

impl RouteRule {
    /// Whether this rule applies to a `connect` with `app` and `host`.
    pub fn matches(&self, app: &str, host: Option<&str>) -> bool {
        let app_ok = self.app.as_deref().is_none_or(|a| a == app);
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        app_ok && host_ok
    }
}

/// The first rule matching `app`/`host`, in configuration order.
pub fn pick(rules: &[RouteRule], app: &str, host: Option<&str>) -> Option<usize> {
    rules.iter().position(|r| r.matches(app, host))
}

/// The part of an `app` used for matching: servers treat `live/sub` and
/// `live?key=…` as application `live`.
pub fn base_app(app: &str) -> &str {
    let end = app.find(['/', '?']).unwrap_or(app.len());
    &app[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(app: Option<&str>, host: Option<&str>) -> RouteRule {
        RouteRule {
            app: app.map(str::to_owned),
            host: host.map(str::to_owned),
            upstreams: vec!["rtmp://127.0.0.1".parse().unwrap()],
            tc_url: None,
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = [
            rule(Some("a"), Some("one.example")),
            rule(Some("a"), None),
            rule(Some("b"), None),
            rule(None, None),
        ];
        assert_eq!(pick(&rules, "a", Some("ONE.example")), Some(0));
        assert_eq!(pick(&rules, "a", Some("two.example")), Some(1));
        assert_eq!(pick(&rules, "a", None), Some(1));
        assert_eq!(pick(&rules, "b", None), Some(2));
        assert_eq!(pick(&rules, "c", None), Some(3));
        assert_eq!(pick(&rules[..3], "c", None), None);
    }

    #[test]
    fn base_app_strips_instance_and_query() {
        assert_eq!(base_app("live"), "live");
        assert_eq!(base_app("live/inst"), "live");
        assert_eq!(base_app("live?token=1"), "live");
    }
}
