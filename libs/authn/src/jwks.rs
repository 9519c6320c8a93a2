//! Ed25519 public keys as a JSON Web Key Set (RFC 7517, RFC 8037), in jsonwebtoken's JWK types.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
pub use jsonwebtoken::jwk::{Jwk, JwkSet};

/// The JWK of an Ed25519 public key (`use: sig`, `alg: EdDSA`); its `kid` is the RFC 7638
/// thumbprint, so the same key always has the same id on every replica.
pub fn ed25519(public_key: &[u8; 32]) -> Result<Jwk, jsonwebtoken::errors::Error> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    };
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256)?);
    Ok(jwk)
}

/// The key's `kid` ("" when it has none, which no token names).
pub fn kid(jwk: &Jwk) -> &str {
    jwk.common.key_id.as_deref().unwrap_or_default()
}

/// The verification key, if this JWK is an Ed25519 signing key (`use: sig`, `alg: EdDSA`).
pub fn decoding_key(jwk: &Jwk) -> Option<DecodingKey> {
    let is_ed25519 = matches!(&jwk.algorithm,
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519)
        && jwk.common.key_algorithm == Some(KeyAlgorithm::EdDSA)
        && jwk.common.public_key_use == Some(PublicKeyUse::Signature);
    if !is_ed25519 {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_jwk_reads_back_and_its_kid_is_the_rfc_7638_thumbprint() {
        use sha2::{Digest, Sha256};
        let public = [7u8; 32];
        let jwk = ed25519(&public).unwrap();
        let x = URL_SAFE_NO_PAD.encode(public);
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        assert_eq!(
            kid(&jwk),
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
        let wire = serde_json::to_value(JwkSet {
            keys: vec![jwk.clone()],
        })
        .unwrap();
        assert_eq!(wire["keys"][0]["use"], "sig");
        assert_eq!(wire["keys"][0]["alg"], "EdDSA");
        assert_eq!(wire["keys"][0]["kty"], "OKP");
        let back: JwkSet = serde_json::from_value(wire).unwrap();
        assert!(decoding_key(&back.keys[0]).is_some());
        // An encryption key, or one for another algorithm, never verifies a token.
        let mut other = jwk;
        other.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(decoding_key(&other).is_none());
    }
}
