//! Keyset pagination: `?limit=` and an opaque, tamper-evident `?cursor=`, answered as
//! `{"items": [...], "next_cursor": "…" | null}`.
//!
//! A cursor is the sort key of the last row a client saw (any serde value, e.g. `(created_at, id)`)
//! as JSON, base64url-encoded and followed by an HMAC-SHA256 tag under `CURSOR_SECRET`. A cursor
//! that was edited, truncated or made by another deployment is a 400, never a query on garbage.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Problems, Profile, Secret};
use crate::problem::ApiError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// `CURSOR_SECRET`: signs list cursors. Required in prod (every replica must share it); dev and
/// test use a random one per process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CursorSettings {
    pub cursor_secret: Option<Secret>,
}

impl CursorSettings {
    pub fn validate(&self, profile: Profile, problems: &mut Problems) {
        match &self.cursor_secret {
            None if profile == Profile::Prod => problems.add(
                "CURSOR_SECRET",
                "is required in prod (32+ random characters, the same on every replica)",
            ),
            Some(secret) if profile == Profile::Prod && secret.expose().len() < 32 => {
                problems.add("CURSOR_SECRET", "must be at least 32 characters")
            }
            _ => {}
        }
    }

    /// The signer for these settings (a random key when none is configured outside prod).
    pub fn signer(&self) -> CursorSigner {
        match &self.cursor_secret {
            Some(secret) => CursorSigner::new(secret.expose().as_bytes()),
            None => CursorSigner::new(&rand_key()),
        }
    }
}

fn rand_key() -> [u8; 32] {
    rand::random()
}

#[derive(Clone)]
pub struct CursorSigner {
    mac: Hmac<Sha256>,
}

const TAG_LEN: usize = 16;

impl CursorSigner {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC hashes keys longer than a block anyway; hashing every key gives one fixed-size
        // constructor with no error path.
        let mut key = hmac::digest::Key::<Hmac<Sha256>>::default();
        key[..32].copy_from_slice(&Sha256::digest(secret));
        CursorSigner {
            mac: <Hmac<Sha256> as hmac::digest::KeyInit>::new(&key),
        }
    }

    pub fn encode<K: Serialize>(&self, key: &K) -> String {
        let payload = serde_json::to_vec(key).unwrap_or_default();
        let mut mac = self.mac.clone();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        let mut bytes = payload;
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode<K: DeserializeOwned>(&self, cursor: &str) -> Result<K, ApiError> {
        let invalid = || ApiError::bad_param("cursor", "is not a cursor this API issued");
        if cursor.len() > 1024 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        if bytes.len() <= TAG_LEN {
            return Err(invalid());
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| invalid())?;
        serde_json::from_slice(payload).map_err(|_| invalid())
    }
}

/// `?limit=&cursor=` as a handler receives them (flatten into the route's query struct).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageParams {
    /// The limit, checked against 1–100.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_param(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    /// The decoded cursor key, if a cursor was given.
    pub fn after<K: DeserializeOwned>(&self, signer: &CursorSigner) -> Result<Option<K>, ApiError> {
        self.cursor.as_deref().map(|c| signer.decode(c)).transpose()
    }
}

/// The `LIMIT` clause of a list query: `limit` rows plus one, the row that says another page
/// exists.
///
/// The number is written into the SQL text, not bound: PostgreSQL costs the generic plan of
/// `LIMIT $n` as if it returned a tenth of the rows, so it re-plans such a statement on every
/// execution (on the items list that cost the database 38 % of its throughput, bench/items.sh).
/// With the number in the text it plans the statement once per connection. It is a `u32`, so
/// the text is digits only; one statement per page size a client uses.
pub fn limit_sql(limit: u32) -> String {
    format!(" LIMIT {}", u64::from(limit) + 1)
}

/// One page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Build a page from `limit + 1` fetched rows: the extra row only says another page exists.
    pub fn from_rows<R, K: Serialize>(
        mut rows: Vec<R>,
        limit: u32,
        signer: &CursorSigner,
        key: impl Fn(&R) -> K,
        map: impl Fn(R) -> T,
    ) -> Page<T> {
        let limit = limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|last| signer.encode(&key(last)))
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_resists_tampering() {
        let signer = CursorSigner::new(b"k1");
        let cursor = signer.encode(&("2026-01-01T00:00:00Z", 42));
        let back: (String, i64) = signer.decode(&cursor).unwrap();
        assert_eq!(back, ("2026-01-01T00:00:00Z".to_owned(), 42));

        // Flip one character anywhere: refused.
        for i in 0..cursor.len() {
            let mut bytes = cursor.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(bytes).unwrap();
            if edited != cursor {
                assert!(signer.decode::<(String, i64)>(&edited).is_err(), "{edited}");
            }
        }
        // Another deployment's key: refused.
        assert!(
            CursorSigner::new(b"k2")
                .decode::<(String, i64)>(&cursor)
                .is_err()
        );
        for junk in ["", "x", "%%%", &"A".repeat(5000)] {
            assert!(signer.decode::<(String, i64)>(junk).is_err());
        }
    }

    #[test]
    fn limits_outside_1_to_100_are_refused() {
        let p = |limit| PageParams {
            limit,
            cursor: None,
        };
        assert_eq!(p(None).limit().unwrap(), 20);
        assert_eq!(p(Some(1)).limit().unwrap(), 1);
        assert_eq!(p(Some(100)).limit().unwrap(), 100);
        assert!(p(Some(0)).limit().is_err());
        assert!(p(Some(101)).limit().is_err());
    }

    #[test]
    fn the_limit_clause_asks_for_one_row_more() {
        assert_eq!(limit_sql(20), " LIMIT 21");
        assert_eq!(limit_sql(u32::MAX), " LIMIT 4294967296");
    }

    #[test]
    fn a_page_cursor_points_at_its_last_item_only_when_more_exist() {
        let signer = CursorSigner::new(b"k");
        let page = Page::from_rows(vec![1, 2, 3], 2, &signer, |r| *r, |r| r * 10);
        assert_eq!(page.items, vec![10, 20]);
        let key: i32 = signer.decode(page.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(key, 2);
        let last = Page::from_rows(vec![1, 2], 2, &signer, |r| *r, |r| r);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn prod_requires_a_long_cursor_secret() {
        let mut problems = Problems::default();
        CursorSettings::default().validate(Profile::Prod, &mut problems);
        assert!(!problems.is_empty());
        let mut problems = Problems::default();
        CursorSettings::default().validate(Profile::Dev, &mut problems);
        assert!(problems.is_empty());
    }
}
