//! Webhook signatures, as Stripe signs its webhooks: the header
//! `Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Several
//! `v1=` may be present (a provider signing with an old and a new secret during a rotation) and
//! several secrets are accepted (ours during a rotation): any pair that matches will do. A
//! timestamp more than [`TOLERANCE`] away from now is refused, so a captured request cannot be
//! replayed later.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "payment-signature";

/// How far a signature's timestamp may be from now, either way.
pub const TOLERANCE: Duration = Duration::from_secs(300);

/// Why a signature is refused (each a 400: the sender must fix its request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Payment-Signature header is missing")]
    Missing,
    #[error("the Payment-Signature header is not t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature's timestamp is more than 300 s from now")]
    Stale,
    #[error("no v1 signature matches the body with any accepted secret")]
    Mismatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` signed with `secret` at `timestamp` (what a provider sends).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Check `header` against `body` at `now` (unix seconds) with every secret in `secrets`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
            // Other schemes (Stripe's v0, a future v2) are not ours to check.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(timestamp) > TOLERANCE.as_secs() {
        return Err(SignatureError::Stale);
    }
    let matches = secrets.iter().any(|secret| {
        signatures
            .iter()
            // `verify_slice` compares in constant time.
            .any(|s| mac(secret, timestamp, body).verify_slice(s).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment.succeeded"}"#;
    const NOW: i64 = 1_800_000_000;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_signature_made_with_an_accepted_secret_verifies() {
        let header = sign("old", NOW, BODY);
        assert_eq!(
            verify(Some(&header), BODY, &secrets(&["new", "old"]), NOW),
            Ok(())
        );
        assert_eq!(
            verify(Some(&header), BODY, &secrets(&["new"]), NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_known_answer_of_hmac_sha256() {
        // HMAC-SHA256("key", "1.x"), computed independently:
        // python3: hmac.new(b"key", b"1.x", hashlib.sha256).hexdigest()
        assert_eq!(
            sign("key", 1, b"x"),
            "t=1,v1=fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec"
        );
    }

    #[test]
    fn any_of_several_v1_signatures_may_match() {
        let good = sign("s", NOW, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v0=abc,v1={v1}", "00".repeat(32));
        assert_eq!(verify(Some(&header), BODY, &secrets(&["s"]), NOW), Ok(()));
    }

    #[test]
    fn a_changed_body_or_timestamp_does_not_verify() {
        let header = sign("s", NOW, BODY);
        assert_eq!(
            verify(Some(&header), b"{}", &secrets(&["s"]), NOW),
            Err(SignatureError::Mismatch)
        );
        let v1 = header.split_once(",v1=").unwrap().1;
        let moved = format!("t={},v1={v1}", NOW + 1);
        assert_eq!(
            verify(Some(&moved), BODY, &secrets(&["s"]), NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        for t in [NOW - 301, NOW + 301] {
            let header = sign("s", t, BODY);
            assert_eq!(
                verify(Some(&header), BODY, &secrets(&["s"]), NOW),
                Err(SignatureError::Stale)
            );
        }
        let header = sign("s", NOW - 300, BODY);
        assert_eq!(verify(Some(&header), BODY, &secrets(&["s"]), NOW), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            verify(None, BODY, &secrets(&["s"]), NOW),
            Err(SignatureError::Missing)
        );
        for header in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "garbage",
            "t=1;v1=00",
        ] {
            assert_eq!(
                verify(Some(header), BODY, &secrets(&["s"]), NOW),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }
}
