//! Tokens sent by e-mail (verify an address, reset a password): 256 random bits, base64url, used
//! once, stored only as a SHA-256 hash, each purpose with its lifetime.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    /// A reset link is a key to the account: short, so a mailbox read later (a shared computer, a
    /// forwarded message) is useless. A verification link only proves the address and may wait
    /// until the owner reads their mail the next day.
    pub fn ttl(self) -> Duration {
        match self {
            TokenPurpose::VerifyEmail => Duration::from_secs(24 * 3600),
            TokenPurpose::ResetPassword => Duration::from_secs(30 * 60),
        }
    }

    /// When a token issued at `now` stops working.
    pub fn expires_at(self, now: OffsetDateTime) -> OffsetDateTime {
        now + time::Duration::try_from(self.ttl()).unwrap_or(time::Duration::MAX)
    }

    /// As stored (`account_tokens.purpose`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
        }
    }

    /// The page of the site that takes the token (`{base}/{path}?token=…`).
    fn page(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify-email",
            TokenPurpose::ResetPassword => "reset-password",
        }
    }
}

/// A token as generated or presented. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountToken(String);

/// SHA-256 of an [`AccountToken`], the only form the database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountTokenHash(pub [u8; 32]);

const ENCODED_LEN: usize = 43;

impl AccountToken {
    pub fn generate() -> AccountToken {
        AccountToken(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    /// A token as a client sent it: anything that cannot be one of ours is refused unhashed.
    pub fn parse(raw: &str) -> Option<AccountToken> {
        let well_formed = raw.len() == ENCODED_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| AccountToken(raw.to_owned()))
    }

    pub fn hash(&self) -> AccountTokenHash {
        AccountTokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountToken([redacted])")
    }
}

/// Where the links in account e-mails point (`ACCOUNT_LINK_BASE_URL`): an `http(s)://` origin,
/// optionally with a path, without query or fragment; kept without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkBase(String);

impl LinkBase {
    pub fn parse(raw: &str) -> Result<LinkBase, String> {
        let trimmed = raw.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or("must start with https:// (or http:// outside prod)")?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || host.contains('@') {
            return Err("must name a host, without credentials".into());
        }
        if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must have no query, fragment or spaces".into());
        }
        Ok(LinkBase(trimmed.to_owned()))
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// The link an e-mail carries: `{base}/verify-email?token=…` or `{base}/reset-password?token=…`
    /// (the token is base64url, safe in a query as it is).
    pub fn link(&self, purpose: TokenPurpose, token: &AccountToken) -> String {
        format!("{}/{}?token={}", self.0, purpose.page(), token.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_unique_parseable_and_hash_stably() {
        let a = AccountToken::generate();
        let b = AccountToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), ENCODED_LEN);
        let parsed = AccountToken::parse(a.expose()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_ne!(a.hash(), b.hash());
        // The hash is SHA-256 of the text as sent, as the database expects it.
        assert_eq!(a.hash().0, <[u8; 32]>::from(Sha256::digest(a.expose())));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "short",
            &"a".repeat(42),
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &format!("{}+", "a".repeat(42)),
            "' OR 1=1 --",
        ] {
            assert!(AccountToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_reset_token_lives_30_minutes_and_a_verification_token_a_day() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            TokenPurpose::ResetPassword.expires_at(now) - now,
            time::Duration::minutes(30)
        );
        assert_eq!(
            TokenPurpose::VerifyEmail.expires_at(now) - now,
            time::Duration::hours(24)
        );
    }

    #[test]
    fn links_carry_the_token_on_the_purposes_page() {
        let base = LinkBase::parse("https://shop.example.com/account/").unwrap();
        let token = AccountToken::generate();
        assert_eq!(
            base.link(TokenPurpose::ResetPassword, &token),
            format!(
                "https://shop.example.com/account/reset-password?token={}",
                token.expose()
            )
        );
        assert!(
            base.link(TokenPurpose::VerifyEmail, &token)
                .starts_with("https://shop.example.com/account/verify-email?token=")
        );
        assert!(base.is_https());
        assert!(!LinkBase::parse("http://localhost:8080").unwrap().is_https());
    }

    #[test]
    fn link_bases_that_would_make_broken_or_misleading_links_are_refused() {
        for bad in [
            "",
            "shop.example.com",
            "ftp://shop.example.com",
            "https://",
            "https:///path",
            "https://user:pw@shop.example.com",
            "https://shop.example.com/?x=1",
            "https://shop.example.com/#top",
            "https://shop example.com",
        ] {
            assert!(LinkBase::parse(bad).is_err(), "{bad:?}");
        }
    }
}
