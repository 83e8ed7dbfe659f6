//! Merging the stream-authorization flags (`--auth-*`, `--log-stream-key`)
//! with the file into [`AuthSettings`]. Checking the webhook URL and
//! reading the files is the authorizer's, at start-up.

use std::time::Duration;

use super::ConfigError;
use super::file::FileConfig;
use crate::auth::{AuthSettings, LogKeyMode};
use crate::cli::AuthArgs;

/// Flags and environment over the file over the defaults.
pub(super) fn merge(cli: &AuthArgs, file: &FileConfig) -> Result<AuthSettings, ConfigError> {
    let d = AuthSettings::default();
    let log_stream_key = match (&cli.log_stream_key, &file.log_stream_key) {
        (Some(mode), _) => *mode,
        (None, Some(text)) => text
            .parse::<LogKeyMode>()
            .map_err(|why| ConfigError::Invalid {
                setting: "log_stream_key",
                why,
            })?,
        (None, None) => d.log_stream_key,
    };
    let settings = AuthSettings {
        webhook_url: cli.auth_webhook.clone().or(file.auth_webhook.clone()),
        timeout: duration(
            cli.auth_timeout,
            &file.auth_timeout,
            "auth_timeout",
            d.timeout,
        )?,
        fail_open: cli.auth_fail_open || file.auth_fail_open.unwrap_or(false),
        check_play: cli.auth_play || file.auth_play.unwrap_or(false),
        keys_file: cli.auth_keys.clone().or(file.auth_keys.clone()),
        hmac_secret_file: cli
            .auth_hmac_secret
            .clone()
            .or(file.auth_hmac_secret.clone()),
        cache_ttl: duration(
            cli.auth_cache_ttl,
            &file.auth_cache_ttl,
            "auth_cache_ttl",
            d.cache_ttl,
        )?,
        log_stream_key,
        max_in_flight: cli
            .auth_max_in_flight
            .or(file.auth_max_in_flight)
            .unwrap_or(d.max_in_flight),
    };
    if settings.timeout.is_zero() {
        return Err(ConfigError::Invalid {
            setting: "auth_timeout",
            why: "must be more than 0s; give e.g. 5s".into(),
        });
    }
    if settings.max_in_flight == 0 {
        return Err(ConfigError::Invalid {
            setting: "auth_max_in_flight",
            why: "must be at least 1".into(),
        });
    }
    Ok(settings)
}

fn duration(
    flag: Option<Duration>,
    file: &Option<String>,
    setting: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match (flag, file) {
        (Some(d), _) => Ok(d),
        (None, Some(text)) => humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
            setting,
            why: format!("`{text}` is not a duration ({e}); write e.g. 5s or 500ms"),
        }),
        (None, None) => Ok(default),
    }
}
