//! The contract of image jobs between catalog-order (takes uploads, serves the results) and the
//! worker (makes the thumbnails): the job payload, where each file lives in the object store
//! `{ns}_images`, and the `image.processed` event.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Family;

/// The family of image jobs (the worker serves it): decoding and resizing takes a while.
pub const FAMILY: Family = Family {
    name: "image",
    ack_wait: Duration::from_secs(15),
    timeout: Duration::from_secs(120),
    max_deliver: 5,
    max_ack_pending: 16,
};

pub const THUMBNAIL_KIND: &str = "image.thumbnail";
/// Event name under `{ns}.events.`.
pub const PROCESSED_EVENT: &str = "image.processed";

/// Payload of an `image.thumbnail` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailJob {
    pub item_id: Uuid,
    pub image_id: Uuid,
}

/// The uploaded file, as received.
pub fn original_key(item_id: Uuid, image_id: Uuid) -> String {
    format!("items/{item_id}/{image_id}/original")
}

/// One resized variant. Deterministic, so a job that runs twice overwrites, never duplicates.
pub fn variant_key(item_id: Uuid, image_id: Uuid, size: &str) -> String {
    format!("items/{item_id}/{image_id}/{size}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// `thumb`, `small`, `medium` (the worker's `THUMBNAIL_SIZES`).
    pub size: String,
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub bytes: u64,
}

/// Published once a job's variants are all stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageProcessed {
    pub event_id: Uuid,
    pub job_id: Uuid,
    pub item_id: Uuid,
    pub image_id: Uuid,
    pub variants: Vec<Variant>,
}

/// Largest upload accepted (docs/design.md §4).
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;
/// Largest image, in pixels, either side will decode: a small file can declare a huge canvas
/// (a decompression bomb); 50 MP is beyond any product photo.
pub const MAX_PIXELS: u64 = 50_000_000;

/// The object store `{ns}_images`, opened on first use (NATS may come up after the service, and
/// provisioning creates the store).
#[derive(Clone)]
pub struct ImageStore {
    js: async_nats::jetstream::Context,
    name: String,
    store: std::sync::Arc<tokio::sync::OnceCell<async_nats::jetstream::object_store::ObjectStore>>,
}

/// Why an object was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The store has reached its size limit (`NATS_IMAGES_MAX_BYTES`).
    #[error("the image store is full ({used} of {limit} bytes used)")]
    Full { used: u64, limit: u64 },
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// One object as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub name: String,
    pub size: usize,
    /// `SHA-256=<base64url>` of its bytes, as the store records it (see [`digest`]).
    pub digest: Option<String>,
    pub modified: Option<time::OffsetDateTime>,
}

/// The digest the object store records for `bytes`: `SHA-256=` and the URL-safe base64 (padded)
/// of their SHA-256.
pub fn digest(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(hash)
    )
}

/// Room each chunk message takes beyond its payload (subject, headers, index), generously: the
/// capacity check must not let a put start that the limit would stop halfway.
const CHUNK_OVERHEAD: u64 = 256;
const CHUNK_SIZE: u64 = 128 * 1024;

impl ImageStore {
    pub fn new(js: async_nats::jetstream::Context, topology: &crate::Topology) -> Self {
        ImageStore {
            js,
            name: topology.images_store(),
            store: Default::default(),
        }
    }

    async fn store(&self) -> anyhow::Result<&async_nats::jetstream::object_store::ObjectStore> {
        self.store
            .get_or_try_init(|| async {
                self.js
                    .get_object_store(&self.name)
                    .await
                    .map_err(|e| anyhow::anyhow!("opening object store {}: {e}", self.name))
            })
            .await
    }

    /// Store `bytes` under `key`, replacing what was there. Refused with [`PutError::Full`] when
    /// they would not fit under the store's size limit: checked first, because JetStream stops a
    /// put at the limit only after the chunks before it were written, and those chunks belong to
    /// no object (nothing could find and delete them).
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PutError> {
        let store = self.store().await?;
        self.check_room(bytes.len() as u64).await?;
        let mut reader = bytes;
        store.put(key, &mut reader).await.map_err(|e| {
            let text = e.to_string();
            // Another upload took the room between the check and this put.
            if text.contains("maximum bytes") || text.contains("insufficient") {
                PutError::Full { used: 0, limit: 0 }
            } else {
                PutError::Unavailable(anyhow::anyhow!("storing {key}: {e}"))
            }
        })?;
        Ok(())
    }

    async fn check_room(&self, len: u64) -> Result<(), PutError> {
        let mut stream = self
            .js
            .get_stream(format!("OBJ_{}", self.name))
            .await
            .map_err(|e| anyhow::anyhow!("opening object store {}: {e}", self.name))?;
        let info = stream
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("reading object store {}: {e}", self.name))?;
        let Ok(limit) = u64::try_from(info.config.max_bytes) else {
            return Ok(()); // -1: no limit
        };
        let used = info.state.bytes;
        let needed = len + (len / CHUNK_SIZE + 2) * CHUNK_OVERHEAD + 1024;
        if used + needed > limit {
            return Err(PutError::Full { used, limit });
        }
        Ok(())
    }

    /// The object at `key`, or `None` when there is none.
    ///
    /// Read chunk by chunk with direct gets (the store's stream allows them), not with
    /// async-nats's `ObjectStore::get`: that creates an ordered consumer on the server for every
    /// read, which stays 30 s after it; under a few hundred image reads a second the server's
    /// consumer limit was reached and every read failed (503) until they expired (found by the
    /// capacity benchmark). A direct get is one request and leaves nothing behind.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        use async_nats::jetstream::object_store::InfoErrorKind;
        let info = match self.store().await?.info(key).await {
            Ok(info) if !info.deleted => info,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == InfoErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!("reading {key}: {e}"),
        };
        // This store never makes links; an object that is one is not an image of ours.
        anyhow::ensure!(
            info.options.as_ref().is_none_or(|o| o.link.is_none()),
            "reading {key}: a link, not an object"
        );
        let stream = self
            .js
            .get_stream_no_info(format!("OBJ_{}", self.name))
            .await
            .map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
        let subject = format!("$O.{}.C.{}", self.name, info.nuid);
        let mut bytes = Vec::with_capacity(info.size);
        let mut next = 1;
        for _ in 0..info.chunks {
            let chunk = stream
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
                .map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
            bytes.extend_from_slice(&chunk.payload);
            next = chunk.sequence + 1;
        }
        // What was read is what was stored: the size and digest the store recorded.
        anyhow::ensure!(
            bytes.len() == info.size && info.digest.as_deref().is_none_or(|d| d == digest(&bytes)),
            "reading {key}: {} bytes that do not match the stored size {} or digest",
            bytes.len(),
            info.size
        );
        Ok(Some(bytes))
    }

    /// Delete the object at `key`; deleting one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        use async_nats::jetstream::object_store::DeleteErrorKind;
        match self.store().await?.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow::anyhow!("deleting {key}: {e}")),
        }
    }

    /// Every object in the store (deleted ones are not listed).
    pub async fn list(&self) -> anyhow::Result<Vec<StoredObject>> {
        use futures_util::TryStreamExt;
        let objects: Vec<_> = self
            .store()
            .await?
            .list()
            .await
            .map_err(|e| anyhow::anyhow!("listing object store {}: {e}", self.name))?
            .try_collect()
            .await
            .map_err(|e| anyhow::anyhow!("listing object store {}: {e}", self.name))?;
        Ok(objects
            .into_iter()
            .filter(|o| !o.deleted)
            .map(|o| StoredObject {
                name: o.name,
                size: o.size,
                digest: o.digest,
                modified: o.modified,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_what_the_object_store_records() {
        // sha256("hello") in URL-safe base64 with padding; the integration tests compare
        // `digest` with what a real store records.
        assert_eq!(
            digest(b"hello"),
            "SHA-256=LPJNul-wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
    }
}
