//! Verifying Storefront access tokens (DESIGN §5), for every service that accepts them.
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
pub mod verifier;

pub use claims::{Claims, Role};
pub use extract::{Admin, CurrentUser};
pub use verifier::{AuthError, Verifier, VerifierConfig};
