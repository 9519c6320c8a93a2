use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// An opaque refresh token: 256 random bits, base64url (43 characters). Only its hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

/// SHA-256 of a refresh token, the only form the database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenHash(pub [u8; 32]);

const ENCODED_LEN: usize = 43;

impl RefreshToken {
    pub fn generate() -> RefreshToken {
        RefreshToken(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    /// A token as a client sent it: anything that cannot be one of ours is refused unhashed.
    pub fn parse(raw: &str) -> Option<RefreshToken> {
        let well_formed = raw.len() == ENCODED_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| RefreshToken(raw.to_owned()))
    }

    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_unique_parseable_and_hash_stably() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a, b);
        let parsed = RefreshToken::parse(a.expose()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            "' OR 1=1 --",
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
    }
}
