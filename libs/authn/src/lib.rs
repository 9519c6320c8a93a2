//! Verifying Storefront access tokens (docs/design.md §5), for every service that accepts them.
//!
//! - [`claims`]: what a token says (`iss aud sub role sid jti iat nbf exp`) and the roles.
//! - [`jwks`]: the public keys as a JWK Set (served by auth, fetched by the others).
//! - [`verifier`]: strict verification — EdDSA only, `kid` required, issuer, audience, expiry,
//!   not-before, revocation.
//! - [`revocation`]: the NATS KV bucket `{ns}_revocations` and the watcher that keeps every
//!   verifier's list of revoked sessions current within a second.
//! - [`extract`]: axum extractors `CurrentUser` and `Admin`.

pub mod claims;
pub mod extract;
pub mod jwks;
pub mod revocation;
pub mod settings;
pub mod verifier;

pub use claims::{Claims, Role};
pub use extract::{Admin, CurrentUser};
pub use verifier::{AuthError, Verifier, VerifierConfig};

use std::sync::Arc;

use platform::config::NatsSettings;
use platform::nats::Namespace;
use platform::shutdown::Shutdown;

/// A verifier for a service other than auth: keys from `AUTH_JWKS_URL`, revocations watched in
/// the NATS KV bucket until shutdown.
pub async fn remote_verifier(
    settings: &settings::VerifierSettings,
    nats: async_nats::Client,
    nats_settings: &NatsSettings,
    shutdown: &Shutdown,
) -> anyhow::Result<Arc<Verifier>> {
    let namespace = Namespace::new(&nats_settings.nats_namespace)?;
    let url = settings
        .auth_jwks_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("AUTH_JWKS_URL is not set"))?;
    let revoked = revocation::RevocationList::new(settings.access_token_ttl);
    let js = async_nats::jetstream::new(nats);
    let bucket = revocation::bucket(
        &js,
        &namespace,
        settings.access_token_ttl,
        nats_settings.nats_replicas,
    )
    .await?;
    revocation::spawn_watcher(bucket, revoked.clone(), shutdown);
    Ok(Arc::new(Verifier::with_jwks_url(
        VerifierConfig::new(&settings.auth_issuer, &settings.auth_audience),
        url,
        revoked,
    )?))
}
