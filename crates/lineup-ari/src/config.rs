//! Connection settings for one Asterisk.

use crate::error::AriError;
use crate::ids::ApplicationName;
use std::fmt;

/// Default deadline for one REST request.
pub const REST_REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// Where an Asterisk's ARI is and who Lineup is there. No `Default`: every field is a decision.
#[derive(Clone)]
pub struct AriConfig {
    /// `http://host:port/ari` (with Asterisk's `prefix`, if set). Must not carry credentials.
    pub base_url: String,
    pub username: String,
    pub password: String,
    /// The Stasis applications whose events this connection receives.
    pub applications: Vec<ApplicationName>,
    /// Deadline for one REST request.
    pub request_timeout_ms: u64,
}

impl fmt::Debug for AriConfig {
    // Hand-written so a logged config never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AriConfig")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("applications", &self.applications)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

impl AriConfig {
    /// Checks the config and returns the base URL without a trailing slash.
    pub(crate) fn validated_base_url(&self) -> Result<String, AriError> {
        let url = self.base_url.trim_end_matches('/');
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| AriError::InvalidConfig("base_url must start with http://".into()))?;
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err(AriError::InvalidConfig("base_url has no host".into()));
        }
        if authority.contains('@') || url.contains('?') || url.contains('#') {
            // Credentials belong in the Authorization header, never in a URL that gets logged.
            return Err(AriError::InvalidConfig("base_url must not carry credentials, a query or a fragment".into()));
        }
        if self.username.is_empty() || self.password.is_empty() || self.username.contains(':') {
            return Err(AriError::InvalidConfig("username and password must be set; no ':' in username".into()));
        }
        if self.applications.is_empty() {
            return Err(AriError::InvalidConfig("at least one application is required".into()));
        }
        if self.request_timeout_ms == 0 {
            return Err(AriError::InvalidConfig("request_timeout_ms must be positive".into()));
        }
        Ok(url.to_string())
    }

    /// `ws://host:port/ari/events?app=a,b`: no credentials in it.
    pub(crate) fn events_url(&self) -> Result<String, AriError> {
        let base = self.validated_base_url()?;
        let applications: Vec<&str> = self.applications.iter().map(ApplicationName::as_str).collect();
        Ok(format!("ws://{}/events?app={}", &base["http://".len()..], applications.join(",")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_url: &str) -> AriConfig {
        AriConfig {
            base_url: base_url.into(),
            username: "lineup".into(),
            password: "s3cret".into(),
            applications: vec![ApplicationName::new("lineup").unwrap(), ApplicationName::new("lineup-login").unwrap()],
            request_timeout_ms: REST_REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }

    #[test]
    fn events_url_lists_applications_without_credentials() {
        let url = config("http://127.0.0.1:8088/ari/").events_url().unwrap();
        assert_eq!(url, "ws://127.0.0.1:8088/ari/events?app=lineup,lineup-login");
    }

    #[test]
    fn credentials_in_url_are_refused() {
        for bad in ["http://lineup:s3cret@127.0.0.1:8088/ari", "https://x/ari", "http://h/ari?api_key=a:b", "http://"] {
            assert!(matches!(config(bad).validated_base_url(), Err(AriError::InvalidConfig(_))), "{bad}");
        }
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let text = format!("{:?}", config("http://127.0.0.1:8088/ari"));
        assert!(!text.contains("s3cret"));
    }
}
