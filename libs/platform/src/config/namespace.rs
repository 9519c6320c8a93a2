//! `NATS_NAMESPACE`'s value: the prefix of every NATS name, checked when the settings load and
//! used by everything that names a subject, stream, bucket or object store (`platform::nats`
//! names it too).

use std::fmt;

/// `NATS_NAMESPACE`: lets several deployments (or parallel tests) share one NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} must be 1–32 characters of a-z, A-Z, 0-9, _ or - (it prefixes subjects, streams and buckets)"
)]
pub struct InvalidNamespace(String);

impl Namespace {
    pub fn new(raw: &str) -> Result<Self, InvalidNamespace> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Namespace(raw.to_owned()))
        } else {
            Err(InvalidNamespace(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `jobs.image.thumbnail` → `storefront.jobs.image.thumbnail`
    pub fn subject(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.0)
    }

    /// `JOBS` → `STOREFRONT_JOBS` (stream names are upper-case by convention).
    pub fn stream(&self, name: &str) -> String {
        format!("{}_{name}", self.0.to_ascii_uppercase().replace('-', "_"))
    }

    /// `revocations` → `storefront_revocations` (KV buckets and object stores).
    pub fn bucket(&self, name: &str) -> String {
        format!("{}_{name}", self.0.replace('-', "_"))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefixes_every_name_kind() {
        let ns = Namespace::new("storefront").unwrap();
        assert_eq!(
            ns.subject("jobs.image.thumbnail"),
            "storefront.jobs.image.thumbnail"
        );
        assert_eq!(ns.stream("JOBS"), "STOREFRONT_JOBS");
        assert_eq!(ns.bucket("revocations"), "storefront_revocations");
        let dashed = Namespace::new("t-1").unwrap();
        assert_eq!(dashed.stream("DLQ"), "T_1_DLQ");
    }

    #[test]
    fn namespace_refuses_what_would_break_subjects() {
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(33)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?}");
        }
    }
}
