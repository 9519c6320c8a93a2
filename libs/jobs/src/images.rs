//! The contract of image jobs between catalog-order (takes uploads, serves the results) and the
//! worker (makes the thumbnails): the job payload, where each file lives in the object store
//! `{ns}_images`, and the `image.processed` event.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// Largest upload accepted (DESIGN §4).
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

    /// Store `bytes` under `key`, replacing what was there.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let mut reader = bytes;
        self.store()
            .await?
            .put(key, &mut reader)
            .await
            .map_err(|e| anyhow::anyhow!("storing {key}: {e}"))?;
        Ok(())
    }

    /// The object at `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        use async_nats::jetstream::object_store::GetErrorKind;
        use tokio::io::AsyncReadExt;
        let mut object = match self.store().await?.get(key).await {
            Ok(object) => object,
            Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!("reading {key}: {e}"),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
        Ok(Some(bytes))
    }
}
