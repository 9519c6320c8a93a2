//! Ed25519 public keys as a JSON Web Key Set (RFC 7517, RFC 8037).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub usage: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key; `kid` is its RFC 7638 thumbprint, so the same key always
    /// has the same id on every replica.
    pub fn ed25519(public_key: &[u8; 32]) -> Jwk {
        let x = URL_SAFE_NO_PAD.encode(public_key);
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            kid,
            alg: "EdDSA".into(),
            usage: "sig".into(),
        }
    }

    /// The verification key, if this JWK is an Ed25519 signing key.
    pub fn decoding_key(&self) -> Option<DecodingKey> {
        let is_ed25519 = self.kty == "OKP"
            && self.crv == "Ed25519"
            && self.alg == "EdDSA"
            && self.usage == "sig";
        if !is_ed25519 {
            return None;
        }
        DecodingKey::from_ed_components(&self.x).ok()
    }
}
