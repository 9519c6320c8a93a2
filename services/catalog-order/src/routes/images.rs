//! Item images: an admin uploads one (multipart) and gets 202 with the job that makes its sizes;
//! anyone reads the list of an item's images and fetches a size once it is ready.
//!
//! The upload is checked by its bytes, not its name or declared type: JPEG, PNG or WebP, at most
//! [`MAX_UPLOAD_BYTES`], and a canvas of at most [`MAX_PIXELS`] (read from the header, so a small
//! file declaring a huge image is refused before anything decodes it).

use std::io::Cursor;

use authn::Admin;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jobs::images::{MAX_PIXELS, MAX_UPLOAD_BYTES};
use platform::ApiError;
use platform::extract::{Json, Path};
use platform::http::{RequestId, TraceParent};
use platform::problem::Problem;
use platform::replica::ReadPool;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::routes::idempotent::{self, idempotency_key};
use crate::state::AppState;
use crate::store::images::ImageRow;
use crate::usecases::idempotency::Keyed;
use crate::usecases::images::Upload;
use crate::usecases::{self, Origin};

/// Room for the multipart framing around the file itself.
pub const UPLOAD_BODY_LIMIT: usize = MAX_UPLOAD_BYTES + 64 * 1024;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadAccepted {
    /// Follow it at `GET /v1/jobs/{job_id}`.
    pub job_id: Uuid,
    pub image_id: Uuid,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantDto {
    pub size: String,
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageDto {
    pub id: Uuid,
    /// `processing`, `ready` or `failed`.
    pub status: String,
    pub width: i32,
    pub height: i32,
    /// Empty until `ready`.
    pub variants: Vec<VariantDto>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<ImageRow> for ImageDto {
    fn from(row: ImageRow) -> Self {
        ImageDto {
            variants: row
                .variants
                .0
                .iter()
                .map(|v| VariantDto {
                    size: v.size.clone(),
                    width: v.width,
                    height: v.height,
                    content_type: v.content_type.clone(),
                    url: format!("/v1/items/{}/images/{}/{}", row.item_id, row.id, v.size),
                })
                .collect(),
            id: row.id,
            status: row.status,
            width: row.width,
            height: row.height,
            created_at: row.created_at,
        }
    }
}

/// What the bytes of an upload are.
struct Sniffed {
    content_type: &'static str,
    width: u32,
    height: u32,
}

fn sniff(bytes: &[u8]) -> Result<Sniffed, ApiError> {
    let format = image::guess_format(bytes).ok();
    let content_type = match format {
        Some(image::ImageFormat::Jpeg) => "image/jpeg",
        Some(image::ImageFormat::Png) => "image/png",
        Some(image::ImageFormat::WebP) => "image/webp",
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "`file` is not a JPEG, PNG or WebP image (checked by content)".into(),
            ));
        }
    };
    let unreadable =
        || ApiError::invalid_field("file", format!("is not a readable {content_type}"));
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    reader.set_format(format.ok_or_else(unreadable)?);
    let (width, height) = reader.into_dimensions().map_err(|_| unreadable())?;
    if width == 0 || height == 0 {
        return Err(unreadable());
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ApiError::invalid_field(
            "file",
            format!("is {width}×{height}; at most {MAX_PIXELS} pixels are accepted"),
        ));
    }
    Ok(Sniffed {
        content_type,
        width,
        height,
    })
}

/// The one `file` part of the form.
async fn file_part(mut form: Multipart) -> Result<Vec<u8>, ApiError> {
    let mut file = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_large());
            }
            Err(e) => {
                return Err(ApiError::bad_param(
                    "body",
                    format!("not a readable multipart form: {}", e.body_text()),
                ));
            }
        };
        if field.name() != Some("file") {
            return Err(ApiError::invalid_field(
                field.name().unwrap_or("(unnamed part)"),
                "unknown part; send the image as the one part named `file`",
            ));
        }
        if file.is_some() {
            return Err(ApiError::invalid_field("file", "send one file per request"));
        }
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_param(
                    "body",
                    format!("the file part broke off: {}", e.body_text()),
                )
            }
        })?;
        file = Some(bytes);
    }
    let file = file.ok_or_else(|| ApiError::invalid_field("file", "is required"))?;
    if file.is_empty() {
        return Err(ApiError::invalid_field("file", "is empty"));
    }
    if file.len() > MAX_UPLOAD_BYTES {
        return Err(too_large());
    }
    Ok(file.to_vec())
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "images are at most {} MiB",
        MAX_UPLOAD_BYTES / (1024 * 1024)
    ))
}

/// `POST /v1/items/{id}/images` (admin, `multipart/form-data` with one part `file`) → 202.
#[utoipa::path(post, path = "/v1/items/{id}/images", operation_id = "uploadImage", tag = "catalog", params(("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and file")),
    request_body(content_type = "multipart/form-data", description = "One part named `file`: a JPEG, PNG or WebP of at most 10 MiB"),
    security(("bearer" = [])),
    responses((status = 202, body = UploadAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem),
        (status = 507, body = Problem, description = "The image store is at its size limit")))]
pub async fn upload(
    State(state): State<AppState>,
    Admin(admin): Admin,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
    Path(item_id): Path<Uuid>,
    headers: HeaderMap,
    form: Multipart,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let file = file_part(form).await?;
    let sniffed = sniff(&file)?;
    let mut hasher = Sha256::new();
    hasher.update(item_id.as_bytes());
    hasher.update(&file);
    let request_hash = hasher.finalize();

    let answer = usecases::images::accept_upload(
        &state,
        admin.id,
        item_id,
        &Upload {
            bytes: &file,
            content_type: sniffed.content_type,
            width: sniffed.width,
            height: sniffed.height,
        },
        Keyed {
            user_id: admin.id,
            key: key.as_deref(),
            request_hash: &request_hash,
        },
        Origin {
            request_id: &request_id,
            traceparent: traceparent.as_deref(),
        },
        |job_id, image_id| serde_json::to_vec(&UploadAccepted { job_id, image_id }),
    )
    .await?;
    Ok(idempotent::answer(answer))
}

/// `GET /v1/items/{id}/images`: an item's images and, once ready, the URLs of their sizes.
#[utoipa::path(get, path = "/v1/items/{id}/images", operation_id = "listImages", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<ImageDto>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    ReadPool(db): ReadPool,
    Path(item_id): Path<Uuid>,
) -> Result<Json<Vec<ImageDto>>, ApiError> {
    let images = usecases::images::of_item(&db, item_id).await?;
    Ok(Json(images.into_iter().map(ImageDto::from).collect()))
}

/// `GET /v1/items/{id}/images/{image_id}/{size}`: the bytes of one size. What a URL names never
/// changes, so it may be cached for a year; `ETag` answers revalidation with 304.
#[utoipa::path(get, path = "/v1/items/{id}/images/{image_id}/{size}", operation_id = "getImage", tag = "catalog",
    params(("id" = Uuid, Path), ("image_id" = Uuid, Path), ("size" = String, Path, description = "`thumb`, `small` or `medium`")),
    responses((status = 200, description = "The image", content_type = "image/jpeg"), (status = 304, description = "Not modified"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn serve(
    State(state): State<AppState>,
    Path((item_id, image_id, size)): Path<(Uuid, Uuid, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let variant = usecases::images::ready_variant(&state, item_id, image_id, &size).await?;
    let etag = format!("\"{image_id}-{size}\"");
    let cache = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(anyhow::Error::new(e)))?,
        ),
    ];
    if platform::cache::none_match(&headers, &cache[1].1) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let bytes = usecases::images::variant_bytes(&state, item_id, image_id, &size).await?;
    let content_type = HeaderValue::from_str(&variant.content_type)
        .map_err(|e| ApiError::internal(anyhow::Error::new(e)))?;
    Ok((
        StatusCode::OK,
        cache,
        [(header::CONTENT_TYPE, content_type)],
        bytes,
    )
        .into_response())
}
