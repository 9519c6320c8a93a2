//! Strict access-token verification.
//!
//! Pinned to EdDSA (a token naming any other algorithm — `none`, HS256 made with the public key —
//! is refused before any key is touched), `kid` required and known, `iss`, `aud`, `exp` and `nbf`
//! checked with a small leeway, and the session not revoked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};
use tracing::Instrument;

use crate::claims::Claims;
use crate::jwks::JwkSet;
use crate::revocation::RevocationList;

/// Tokens longer than this are refused unread (a 20 KB header is an attack, not a token).
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How long fetched keys are trusted before the JWKS is fetched again (so a removed key stops
    /// verifying everywhere within this time).
    pub jwks_ttl: Duration,
}

impl VerifierConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        VerifierConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            jwks_ttl: Duration::from_secs(300),
        }
    }
}

/// Why a token was refused. Every variant is a 401 for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed Authorization header")]
    MalformedHeader,
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm not accepted")]
    Algorithm,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("invalid token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issuer not accepted")]
    Issuer,
    #[error("token audience not accepted")]
    Audience,
    #[error("session revoked")]
    Revoked,
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

enum KeySource {
    /// Keys given once (the auth service verifies with its own).
    Static,
    /// Keys fetched from a JWKS URL, refreshed after `jwks_ttl` or on an unknown `kid`.
    Url {
        url: String,
        client: reqwest::Client,
    },
}

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

pub struct Verifier {
    config: VerifierConfig,
    validation: Validation,
    source: KeySource,
    cache: RwLock<KeyCache>,
    /// Serialises refreshes and remembers the last attempt, so a flood of tokens with made-up
    /// `kid`s cannot turn into a flood of JWKS fetches.
    last_refresh: Mutex<Option<Instant>>,
    revoked: RevocationList,
}

/// Minimum time between two JWKS fetches.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

impl Verifier {
    /// A verifier with a fixed key set.
    pub fn with_keys(config: VerifierConfig, keys: &JwkSet, revoked: RevocationList) -> Self {
        let verifier = Self::new(config, KeySource::Static, revoked);
        let mut cache = KeyCache {
            keys: HashMap::new(),
            fetched_at: Some(Instant::now()),
        };
        load(&mut cache, keys);
        Verifier {
            cache: RwLock::new(cache),
            ..verifier
        }
    }

    /// A verifier that fetches keys from `url` (auth's `/.well-known/jwks.json`, `http://` or
    /// `https://`) when first needed, with the process's HTTP client set-up
    /// ([`platform::http_client::builder`]: rustls, the system CAs plus `SSL_CERT_FILE`). Fails
    /// when that set-up does (an unreadable `SSL_CERT_FILE`).
    pub fn with_jwks_url(
        config: VerifierConfig,
        url: impl Into<String>,
        revoked: RevocationList,
    ) -> anyhow::Result<Self> {
        let client = jwks_client(platform::http_client::builder()?)?;
        Ok(Self::with_jwks_client(config, url, client, revoked))
    }

    /// Like [`Verifier::with_jwks_url`], fetching with `client` (see [`jwks_client`]).
    pub fn with_jwks_client(
        config: VerifierConfig,
        url: impl Into<String>,
        client: reqwest::Client,
        revoked: RevocationList,
    ) -> Self {
        Self::new(
            config,
            KeySource::Url {
                url: url.into(),
                client,
            },
            revoked,
        )
    }

    fn new(config: VerifierConfig, source: KeySource, revoked: RevocationList) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway.as_secs();
        Verifier {
            config,
            validation,
            source,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
            }),
            last_refresh: Mutex::new(None),
            revoked,
        }
    }

    pub fn revocations(&self) -> &RevocationList {
        &self.revoked
    }

    /// Verify a bearer token and return its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Algorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::Issuer,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::InvalidSignature => AuthError::Signature,
                ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
                _ => AuthError::Malformed,
            }
        })?;
        if self.revoked.contains(&data.claims.sid) {
            return Err(AuthError::Revoked);
        }
        Ok(data.claims)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        {
            let cache = self.cache.read().await;
            let fresh = match (&self.source, cache.fetched_at) {
                (KeySource::Static, _) => true,
                (KeySource::Url { .. }, Some(at)) => at.elapsed() < self.config.jwks_ttl,
                (KeySource::Url { .. }, None) => false,
            };
            if let Some(key) = cache.keys.get(kid)
                && fresh
            {
                return Ok(key.clone());
            }
            if matches!(self.source, KeySource::Static) {
                return Err(AuthError::UnknownKey);
            }
        }
        self.refresh().await;
        let cache = self.cache.read().await;
        match cache.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if cache.fetched_at.is_none() => Err(AuthError::KeysUnavailable),
            None => Err(AuthError::UnknownKey),
        }
    }

    async fn refresh(&self) {
        let KeySource::Url { url, client } = &self.source else {
            return;
        };
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        // A client span for the fetch, and its trace context on the request, so auth's side of it
        // joins the same trace.
        let span = tracing::info_span!("jwks fetch", otel.kind = "client", url = %url);
        let traceparent = platform::telemetry::traceparent_of(&span);
        let fetched = async {
            let mut request = client.get(url);
            if let Some(traceparent) = traceparent {
                request = request.header(platform::telemetry::TRACEPARENT, traceparent);
            }
            request
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        }
        .instrument(span)
        .await;
        match fetched {
            Ok(set) => {
                let mut cache = self.cache.write().await;
                cache.keys.clear();
                load(&mut cache, &set);
                cache.fetched_at = Some(Instant::now());
                tracing::debug!(keys = cache.keys.len(), "JWKS refreshed");
            }
            // Keep the keys we had: a blip at auth must not log everyone out.
            // With its causes: reqwest's message alone hides a TLS failure's reason.
            Err(e) => tracing::warn!(error = %chain(&e), url = %url, "JWKS fetch failed"),
        }
    }
}

/// The JWKS client made from a [`platform::http_client`] builder: a fetch gives up after 5 s
/// (the keys already held stay in use meanwhile).
pub fn jwks_client(builder: reqwest::ClientBuilder) -> anyhow::Result<reqwest::Client> {
    Ok(builder.timeout(Duration::from_secs(5)).build()?)
}

/// An error and its sources, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn load(cache: &mut KeyCache, set: &JwkSet) {
    for jwk in &set.keys {
        match crate::jwks::decoding_key(jwk) {
            Some(key) => {
                cache.keys.insert(crate::jwks::kid(jwk).to_owned(), key);
            }
            None => {
                tracing::warn!(kid = %crate::jwks::kid(jwk), "ignoring a JWK that is not an Ed25519 signing key")
            }
        }
    }
}
