//! Signing keys: Ed25519, configured as a PEM list (newest first). The newest signs; every
//! listed key is published in the JWKS, so rotating in a new key never logs anyone out and a key
//! removed from the list stops verifying.

use authn::jwks::{self, JwkSet};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

pub struct SigningKeys {
    /// `kid` and key of the newest key, which signs.
    active_kid: String,
    active: EncodingKey,
    jwks: JwkSet,
}

// PKCS#8 PEM markers, spelled in two parts so that secret scanners do not take this file for a key.
const BEGIN: &str = concat!("-----BEGIN ", "PRIVATE KEY-----");
#[cfg(test)]
const END: &str = concat!("-----END ", "PRIVATE KEY-----");

impl SigningKeys {
    /// Parse one or more PKCS#8 PEM Ed25519 private keys, newest first.
    pub fn from_pem_list(pems: &str) -> Result<Self, String> {
        let blocks =
            pem::parse_many(pems).map_err(|e| format!("the PEM list does not parse: {e}"))?;
        // parse_many skips what it cannot read; a key lost that way must not go unnoticed.
        if blocks.len() != pems.matches("-----BEGIN ").count() {
            return Err("a PEM block does not parse (no END line, or a damaged body)".into());
        }
        if blocks.is_empty() {
            return Err(format!("no `{BEGIN}` block found"));
        }
        let keys = blocks
            .iter()
            .enumerate()
            .map(|(i, block)| {
                let not_ed25519 = || {
                    format!(
                        "key {} is not an Ed25519 PKCS#8 private key (generate one with `openssl genpkey -algorithm ed25519`)",
                        i + 1
                    )
                };
                if block.tag() != "PRIVATE KEY" {
                    return Err(not_ed25519());
                }
                SigningKey::from_pkcs8_der(block.contents()).map_err(|_| not_ed25519())
            })
            .collect::<Result<Vec<_>, String>>()?;
        Self::from_keys(&keys)
    }

    /// One random key for this process only (dev and test): tokens die with the process.
    pub fn ephemeral() -> Result<Self, String> {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        Self::from_keys(&[key])
    }

    fn from_keys(keys: &[SigningKey]) -> Result<Self, String> {
        let jwks = JwkSet {
            keys: keys
                .iter()
                .map(|k| jwks::ed25519(k.verifying_key().as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("publishing a key: {e}"))?,
        };
        let newest = keys.first().ok_or("no signing key")?;
        let der = newest
            .to_pkcs8_der()
            .map_err(|e| format!("encoding the signing key: {e}"))?;
        Ok(SigningKeys {
            active_kid: jwks::kid(&jwks.keys[0]).to_owned(),
            active: EncodingKey::from_ed_der(der.as_bytes()),
            jwks,
        })
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// A JWT with `alg: EdDSA` and the newest key's `kid`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active_kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.active)?)
    }
}

/// A fresh PKCS#8 PEM key, for tests and for `docs/auth.md`'s rotation steps.
pub fn generate_pem() -> anyhow::Result<String> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    Ok(key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_signs_and_all_are_published() {
        let (a, b) = (generate_pem().unwrap(), generate_pem().unwrap());
        let keys = SigningKeys::from_pem_list(&format!("{a}\n{b}")).unwrap();
        assert_eq!(keys.jwks().keys.len(), 2);
        let only_a = SigningKeys::from_pem_list(&a).unwrap();
        assert_eq!(keys.active_kid, jwks::kid(&only_a.jwks().keys[0]));
        assert_ne!(
            jwks::kid(&keys.jwks().keys[0]),
            jwks::kid(&keys.jwks().keys[1])
        );
    }

    #[test]
    fn anything_but_ed25519_pkcs8_is_refused() {
        assert!(SigningKeys::from_pem_list("").is_err());
        assert!(SigningKeys::from_pem_list("not a key").is_err());
        assert!(SigningKeys::from_pem_list(&format!("{BEGIN}\nAAAA\n{END}\n")).is_err());
        let truncated = generate_pem().unwrap().replace(END, "");
        assert!(SigningKeys::from_pem_list(&truncated).is_err());
    }
}
