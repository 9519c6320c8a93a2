//! `image.thumbnail`: decode the uploaded original, resize it to each configured size with a
//! Lanczos3 filter (fitting inside a square box, never enlarging), encode, store under
//! deterministic keys and publish `image.processed`.
//!
//! Decoding is bounded: at most [`MAX_PIXELS`] and a capped allocation, so a small file declaring
//! a huge canvas (a decompression bomb) fails instead of exhausting memory. A file that does not
//! decode fails for good (dead-lettered, the image marked `failed`); storage or NATS trouble is
//! retried. CPU work runs on the blocking pool; the family's concurrency bounds how much at once.

use std::io::Cursor;
use std::sync::Arc;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, Limits};
use jobs::Topology;
use jobs::images::{
    ImageProcessed, ImageStore, MAX_PIXELS, PROCESSED_EVENT, ThumbnailJob, Variant,
};
use jobs::runtime::{Handler, Job, JobError, publish_event};
use uuid::Uuid;

use crate::settings::ThumbnailSize;

/// JPEG quality of the variants (photos without transparency).
const JPEG_QUALITY: u8 = 85;

pub struct Thumbnails {
    pub js: async_nats::jetstream::Context,
    pub topology: Topology,
    pub store: ImageStore,
    pub sizes: Arc<Vec<ThumbnailSize>>,
}

/// One encoded variant.
#[derive(Debug)]
pub struct Rendered {
    pub size: String,
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Handler for Thumbnails {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let task: ThumbnailJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Fail(format!("bad image.thumbnail payload: {e}")))?;
        let original = self
            .store
            .get(&jobs::images::original_key(task.item_id, task.image_id))
            .await
            .map_err(|e| JobError::Retry(format!("{e:#}")))?
            .ok_or_else(|| JobError::Fail("the original is not in the object store".into()))?;
        let sizes = self.sizes.clone();
        let rendered = tokio::task::spawn_blocking(move || render(&original, &sizes))
            .await
            .map_err(|e| JobError::Retry(format!("resizing stopped: {e}")))?
            .map_err(JobError::Fail)?;
        let mut variants = Vec::with_capacity(rendered.len());
        for r in rendered {
            self.store
                .put(
                    &jobs::images::variant_key(task.item_id, task.image_id, &r.size),
                    &r.bytes,
                )
                .await
                .map_err(|e| JobError::Retry(format!("{e:#}")))?;
            variants.push(Variant {
                size: r.size,
                width: r.width,
                height: r.height,
                content_type: r.content_type.to_owned(),
                bytes: r.bytes.len() as u64,
            });
        }
        let event = ImageProcessed {
            event_id: Uuid::now_v7(),
            job_id: job.id,
            item_id: task.item_id,
            image_id: task.image_id,
            variants,
        };
        // One event per job, however often the job runs.
        let message_id = format!("{}:{PROCESSED_EVENT}", job.id);
        publish_event(
            &self.js,
            &self.topology,
            PROCESSED_EVENT,
            &message_id,
            Some(job),
            &event,
        )
        .await
        .map_err(|e| JobError::Retry(format!("{e:#}")))?;
        Ok(())
    }
}

/// Decode `original` (JPEG, PNG or WebP, EXIF orientation applied) and make every size. An error
/// means the file will never decode.
pub fn render(original: &[u8], sizes: &[ThumbnailSize]) -> Result<Vec<Rendered>, String> {
    let source = decode(original)?;
    let has_alpha = source.color().has_alpha();
    // Variants are 8-bit RGB (JPEG) or RGBA (PNG, keeps transparency).
    let source = if has_alpha {
        DynamicImage::ImageRgba8(source.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(source.into_rgb8())
    };
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    sizes
        .iter()
        .map(|size| {
            let (width, height) = fit(source.width(), source.height(), size.max_edge);
            let pixel = if has_alpha {
                PixelType::U8x4
            } else {
                PixelType::U8x3
            };
            let mut target = Image::new(width, height, pixel);
            resizer
                .resize(&source, &mut target, &options)
                .map_err(|e| format!("resizing to {}: {e}", size.name))?;
            let mut bytes = Vec::new();
            let content_type = if has_alpha {
                PngEncoder::new(&mut bytes)
                    .write_image(
                        target.buffer(),
                        width,
                        height,
                        image::ExtendedColorType::Rgba8,
                    )
                    .map_err(|e| format!("encoding {}: {e}", size.name))?;
                "image/png"
            } else {
                JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
                    .write_image(
                        target.buffer(),
                        width,
                        height,
                        image::ExtendedColorType::Rgb8,
                    )
                    .map_err(|e| format!("encoding {}: {e}", size.name))?;
                "image/jpeg"
            };
            Ok(Rendered {
                size: size.name.clone(),
                width,
                height,
                content_type,
                bytes,
            })
        })
        .collect()
}

fn decode(original: &[u8]) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(original))
        .with_guessed_format()
        .map_err(|e| format!("unreadable image: {e}"))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    // The decoded pixels (up to 4 bytes each at 50 MP) plus the decoders' working memory.
    limits.max_alloc = Some(MAX_PIXELS * 4 + 64 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("not a supported image: {e}"))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "{w}×{h} is more than {MAX_PIXELS} pixels; refusing to decode"
        ));
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| format!("unreadable image metadata: {e}"))?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("corrupt image: {e}"))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// The largest size with the same aspect ratio inside `max_edge`×`max_edge`, never larger than
/// the original, at least 1×1.
pub fn fit(width: u32, height: u32, max_edge: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_edge {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(max_edge) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(max_edge).max(1)
    };
    (scale(width), scale(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> Vec<ThumbnailSize> {
        crate::settings::parse_sizes("thumb=128,small=320,medium=800").unwrap()
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn sizes_fit_the_box_keep_the_aspect_and_never_enlarge() {
        assert_eq!(fit(4000, 3000, 800), (800, 600));
        assert_eq!(fit(3000, 4000, 128), (96, 128));
        assert_eq!(fit(100, 50, 800), (100, 50));
        assert_eq!(fit(10_000, 1, 128), (128, 1));
    }

    #[test]
    fn a_photo_becomes_three_jpegs_of_the_configured_sizes() {
        let out = render(&jpeg(1200, 900), &sizes()).unwrap();
        let got: Vec<(&str, u32, u32)> = out
            .iter()
            .map(|r| (r.size.as_str(), r.width, r.height))
            .collect();
        assert_eq!(
            got,
            [
                ("thumb", 128, 96),
                ("small", 320, 240),
                ("medium", 800, 600)
            ]
        );
        for r in &out {
            assert_eq!(r.content_type, "image/jpeg");
            let decoded = image::load_from_memory(&r.bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (r.width, r.height));
        }
    }

    #[test]
    fn transparency_is_kept_as_png() {
        let img = image::RgbaImage::from_pixel(400, 400, image::Rgba([0, 0, 0, 0]));
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(img.as_raw(), 400, 400, image::ExtendedColorType::Rgba8)
            .unwrap();
        let out = render(&png, &sizes()).unwrap();
        assert!(out.iter().all(|r| r.content_type == "image/png"));
        let thumb = image::load_from_memory(&out[0].bytes).unwrap();
        assert!(thumb.color().has_alpha());
    }

    #[test]
    fn garbage_and_truncated_files_fail_without_panicking() {
        assert!(render(b"definitely not an image", &sizes()).is_err());
        // A JPEG cut off inside its headers, and a PNG cut off inside its pixel data (JPEG
        // decoders fill a cut-off scan with grey, as browsers do; PNG's checksums catch it).
        let photo = jpeg(640, 480);
        assert!(render(&photo[..40], &sizes()).is_err());
        let img = image::RgbImage::from_fn(300, 300, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(img.as_raw(), 300, 300, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(render(&png[..png.len() / 2], &sizes()).is_err());
    }

    #[test]
    fn a_declared_giant_canvas_is_refused_before_decoding() {
        // A valid PNG header declaring 60 000 × 60 000 pixels (3.6 GP), no pixel data.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(b"IHDR");
        ihdr.extend_from_slice(&60_000u32.to_be_bytes());
        ihdr.extend_from_slice(&60_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        let err = render(&png, &sizes()).unwrap_err();
        assert!(err.contains("pixels") || err.contains("limit"), "{err}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
