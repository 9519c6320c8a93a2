//! The JWKS client over HTTPS: keys fetched from a TLS endpoint signed by a CA made for the test
//! verify a token, and the same endpoint is refused when that CA is not trusted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use authn::jwks::{Jwk, JwkSet};
use authn::revocation::RevocationList;
use authn::verifier::jwks_client;
use authn::{AuthError, Claims, Role, Verifier, VerifierConfig};
use axum::Router;
use axum::routing::get;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::http_client::{Trust, builder_with};
use testkit::tls::HttpsServer;
use uuid::Uuid;

const ISSUER: &str = "storefront-auth";
const AUDIENCE: &str = "storefront";

struct Keys {
    jwk: Jwk,
    encoding: EncodingKey,
}

fn keys() -> Keys {
    let signing = SigningKey::from_bytes(&[7u8; 32]);
    let jwk = authn::jwks::ed25519(signing.verifying_key().as_bytes()).unwrap();
    let der = signing.to_pkcs8_der().unwrap();
    Keys {
        jwk,
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
    }
}

fn token(keys: &Keys) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: Uuid::new_v4(),
        email: "ada@example.com".into(),
        role: Role::Customer,
        email_verified: true,
        sid: Uuid::new_v4(),
        jti: Uuid::new_v4(),
        iat: now,
        nbf: now,
        exp: now + 600,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(authn::jwks::kid(&keys.jwk).to_owned());
    jsonwebtoken::encode(&header, &claims, &keys.encoding).unwrap()
}

async fn jwks_endpoint(keys: &Keys) -> HttpsServer {
    let set = JwkSet {
        keys: vec![keys.jwk.clone()],
    };
    let router = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    HttpsServer::start(router).await
}

fn verifier(server: &HttpsServer, trust: &Trust) -> Verifier {
    let client = jwks_client(builder_with(trust).unwrap()).unwrap();
    Verifier::with_jwks_client(
        VerifierConfig::new(ISSUER, AUDIENCE),
        server.url("/.well-known/jwks.json"),
        client,
        RevocationList::new(Duration::from_secs(900)),
    )
}

#[tokio::test]
async fn keys_fetched_over_https_verify_a_token() {
    let keys = keys();
    let server = jwks_endpoint(&keys).await;
    assert!(server.base.starts_with("https://"));

    let verifier = verifier(&server, &Trust::with_extra_ca_file(&server.ca_file));
    let claims = verifier.verify(&token(&keys)).await.unwrap();
    assert_eq!(claims.role, Role::Customer);
    assert_eq!(claims.email, "ada@example.com");
}

#[tokio::test]
async fn an_endpoint_signed_by_an_untrusted_ca_is_refused() {
    let keys = keys();
    let server = jwks_endpoint(&keys).await;

    // The system bundle alone does not know the test CA: no keys, so no token verifies.
    let verifier = verifier(&server, &Trust::default());
    assert_eq!(
        verifier.verify(&token(&keys)).await.unwrap_err(),
        AuthError::KeysUnavailable
    );

    // And the failure is the certificate, not the endpoint.
    let client = builder_with(&Trust::default()).unwrap().build().unwrap();
    let err = client
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap_err();
    let chain = format!("{err:?}");
    assert!(
        chain.contains("InvalidCertificate(UnknownIssuer)"),
        "{chain}"
    );
}
