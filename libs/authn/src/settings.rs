//! Settings of a service that verifies tokens (catalog-order; auth verifies with its own keys).

use std::time::Duration;

use platform::config::{Problems, Profile, duration};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifierSettings {
    /// auth's `/.well-known/jwks.json`.
    pub auth_jwks_url: Option<String>,
    pub auth_issuer: String,
    pub auth_audience: String,
    /// Must match auth's: revocations are kept this long.
    #[serde(with = "duration")]
    pub access_token_ttl: Duration,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        VerifierSettings {
            auth_jwks_url: None,
            auth_issuer: "storefront-auth".into(),
            auth_audience: "storefront".into(),
            access_token_ttl: Duration::from_secs(15 * 60),
        }
    }
}

impl VerifierSettings {
    pub fn validate(&self, _profile: Profile, problems: &mut Problems) {
        match &self.auth_jwks_url {
            None => problems.add(
                "AUTH_JWKS_URL",
                "is required (auth's /.well-known/jwks.json, e.g. http://auth:8080/.well-known/jwks.json)",
            ),
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                problems.add("AUTH_JWKS_URL", "must be an http:// or https:// URL")
            }
            Some(_) => {}
        }
        if self.access_token_ttl.is_zero() {
            problems.add("ACCESS_TOKEN_TTL", "must be greater than zero");
        }
    }
}
