//! Item images: accepting an upload (the original stored, the thumbnail job and the image row
//! recorded), listing an item's images, reading a ready size.

use jobs::images::{PutError, THUMBNAIL_KIND, ThumbnailJob, Variant};
use sqlx::PgPool;
use uuid::Uuid;

use crate::changes;
use crate::state::AppState;
use crate::store;
use crate::store::images::{ImageRow, NewImage};
use crate::usecases::idempotency::{Answer, Claimed, Keyed, Pending};
use crate::usecases::{Error, Origin};

/// The status an upload is answered with: accepted, its sizes are made by a job.
pub const ACCEPTED: u16 = 202;

/// An upload whose bytes were checked: an image of this type and canvas.
#[derive(Debug)]
pub struct Upload<'a> {
    pub bytes: &'a [u8],
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Accept `upload` as a new image of the active item `item_id`. The original is put into the
/// image store before the job commits, so the worker always finds it; when recording the job,
/// the row and the key then fails, the original is deleted again (the orphan sweep catches what
/// a crash between the two leaves). A full store refuses the upload before anything is written.
/// `render(job_id, image_id)` makes the answer's body, which the key stores.
pub async fn accept_upload(
    state: &AppState,
    owner_id: Uuid,
    item_id: Uuid,
    upload: &Upload<'_>,
    keyed: Keyed<'_>,
    origin: Origin<'_>,
    render: impl FnOnce(Uuid, Uuid) -> serde_json::Result<Vec<u8>>,
) -> Result<Answer, Error> {
    let mut tx = store::begin(&state.db).await?;
    if store::items::by_id(&mut *tx, item_id)
        .await?
        .is_none_or(|item| !item.active)
    {
        return Err(Error::NotFound(format!("no item {item_id}")));
    }
    let claimed = match keyed.claim(tx).await? {
        Claimed::Replay(answer) => return Ok(answer),
        Claimed::New(pending) => pending,
    };
    let image_id = Uuid::now_v7();
    let original = jobs::images::original_key(item_id, image_id);
    state
        .images
        .put(&original, upload.bytes)
        .await
        .map_err(|e| match e {
            PutError::Full { used, limit } => {
                tracing::error!(used, limit, "the image store is full: upload refused");
                Error::StorageFull
            }
            PutError::Unavailable(e) => {
                tracing::warn!(error = format!("{e:#}"), "storing an upload failed");
                Error::StorageUnavailable
            }
        })?;
    let recorded =
        record_upload(claimed, owner_id, item_id, image_id, upload, origin, render).await;
    if recorded.is_err() {
        // Nothing refers to the original now; remove it rather than leave it to the sweep.
        if let Err(e) = state.images.delete(&original).await {
            tracing::warn!(error = format!("{e:#}"), key = %original,
                "removing the original of a failed upload failed; the orphan sweep will");
        }
    } else {
        state.cache.changed(&[changes::IMAGES.to_owned()]);
    }
    recorded
}

/// The job, the image row and the idempotent answer of a stored upload, in its transaction.
async fn record_upload(
    mut claimed: Pending<'_>,
    owner_id: Uuid,
    item_id: Uuid,
    image_id: Uuid,
    upload: &Upload<'_>,
    origin: Origin<'_>,
    render: impl FnOnce(Uuid, Uuid) -> serde_json::Result<Vec<u8>>,
) -> Result<Answer, Error> {
    let payload =
        serde_json::to_value(ThumbnailJob { item_id, image_id }).map_err(Error::internal)?;
    let job_id = store::jobs::enqueue(
        claimed.tx(),
        THUMBNAIL_KIND,
        &payload,
        &store::jobs::Cause {
            owner_id: Some(owner_id),
            request_id: Some(origin.request_id),
            traceparent: origin.traceparent,
        },
    )
    .await?;
    store::images::insert(
        claimed.tx(),
        &NewImage {
            id: image_id,
            item_id,
            job_id,
            content_type: upload.content_type,
            width: upload.width,
            height: upload.height,
            bytes: upload.bytes.len(),
        },
    )
    .await?;
    let body = render(job_id, image_id).map_err(Error::internal)?;
    claimed.finish(ACCEPTED, body).await
}

/// The images of an active item, oldest first.
/// `db`: where public reads go (see `usecases::catalog`).
pub async fn of_item(db: &PgPool, item_id: Uuid) -> Result<Vec<ImageRow>, Error> {
    if store::items::by_id(db, item_id)
        .await?
        .is_none_or(|item| !item.active)
    {
        return Err(Error::NotFound(format!("no item {item_id}")));
    }
    Ok(store::images::of_item(db, item_id).await?)
}

/// The size `size` of a ready image (its description; [`variant_bytes`] reads its bytes).
pub async fn ready_variant(
    state: &AppState,
    item_id: Uuid,
    image_id: Uuid,
    size: &str,
) -> Result<Variant, Error> {
    let row = store::images::by_id(&state.db, item_id, image_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no image {image_id} of item {item_id}")))?;
    if row.status != "ready" {
        return Err(Error::NotFound(format!(
            "image {image_id} is {}, not ready",
            row.status
        )));
    }
    let mut variants = row.variants.0;
    let sizes: Vec<String> = variants.iter().map(|v| v.size.clone()).collect();
    match variants.iter().position(|v| v.size == size) {
        Some(i) => Ok(variants.swap_remove(i)),
        None => Err(Error::NotFound(format!(
            "no size `{size}`; there are {}",
            sizes.join(", ")
        ))),
    }
}

/// The bytes of a size that [`ready_variant`] found.
pub async fn variant_bytes(
    state: &AppState,
    item_id: Uuid,
    image_id: Uuid,
    size: &str,
) -> Result<Vec<u8>, Error> {
    state
        .images
        .get(&jobs::images::variant_key(item_id, image_id, size))
        .await
        .map_err(|e| {
            tracing::warn!(error = format!("{e:#}"), "reading an image failed");
            Error::StorageUnavailable
        })?
        .ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "image {image_id} {size} is ready but not stored"
            ))
        })
}
