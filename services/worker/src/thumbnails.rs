//! `image.thumbnail`: decode the uploaded original (a JPEG at the smallest DCT scale that still
//! covers the largest size), resize it to each configured size with a Lanczos3 filter (fitting
//! inside a square box, never enlarging), encode, store under deterministic keys and publish
//! `image.processed`.
//!
//! Decoding is bounded: at most [`MAX_PIXELS`] and a capped allocation, so a small file declaring
//! a huge canvas (a decompression bomb) fails instead of exhausting memory. A file that does not
//! decode fails for good (dead-lettered, the image marked `failed`); storage or NATS trouble is
//! retried. CPU work runs on the blocking pool; the family's concurrency bounds how much at once.

use std::io::Cursor;
use std::sync::Arc;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
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

/// The widest or tallest original accepted, whichever decoder reads it.
const MAX_SIDE: u32 = 20_000;

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
///
/// A JPEG is decoded at the smallest DCT scale (1/8, 1/4 or 1/2) whose pixels still cover the
/// largest variant, as Pillow's `draft()` does: on a 4000×3000 photo the decode is most of the
/// work, and decoding at 1/4 skips most of the IDCT, colour conversion and the Lanczos input.
pub fn render(original: &[u8], sizes: &[ThumbnailSize]) -> Result<Vec<Rendered>, String> {
    match decode_scaled_jpeg(original, sizes) {
        Some(scaled) => variants(&scaled.pixels, &scaled.frame, sizes),
        None => render_full(original, sizes),
    }
}

/// The reference path: decode at full size, then resize. Anything the scaled path does not take
/// (PNG, WebP, CMYK or 12-bit JPEG, a JPEG too small to scale down, a file it cannot read) ends
/// here, so the full decoder's checks and error messages decide about every bad file.
fn render_full(original: &[u8], sizes: &[ThumbnailSize]) -> Result<Vec<Rendered>, String> {
    let source = decode(original)?;
    // Variants are 8-bit RGB (JPEG) or RGBA (PNG, keeps transparency).
    let source = if source.color().has_alpha() {
        DynamicImage::ImageRgba8(source.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(source.into_rgb8())
    };
    let frame = Frame {
        full: (source.width(), source.height()),
        extent: (f64::from(source.width()), f64::from(source.height())),
        orientation: Orientation::NoTransforms,
    };
    variants(&source, &frame, sizes)
}

/// What the pixels handed to [`variants`] stand for.
struct Frame {
    /// The original's size as stored (before orientation): the variants' sizes come from it.
    full: (u32, u32),
    /// The part of the pixels that shows the original: a scaled decode rounds a partial 8×8
    /// block up to a whole pixel, which is cropped away (as a fraction of a pixel) when resizing.
    extent: (f64, f64),
    /// Applied to each variant after resizing (cheaper than turning the larger source).
    orientation: Orientation,
}

/// Resize `source` (RGB8 or RGBA8) to every size and encode: JPEG q85, or PNG with alpha.
fn variants(
    source: &DynamicImage,
    frame: &Frame,
    sizes: &[ThumbnailSize],
) -> Result<Vec<Rendered>, String> {
    let has_alpha = source.color().has_alpha();
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(0.0, 0.0, frame.extent.0, frame.extent.1);
    sizes
        .iter()
        .map(|size| {
            let (width, height) = fit(frame.full.0, frame.full.1, size.max_edge);
            let pixel = if has_alpha {
                PixelType::U8x4
            } else {
                PixelType::U8x3
            };
            let mut target = Image::new(width, height, pixel);
            resizer
                .resize(source, &mut target, &options)
                .map_err(|e| format!("resizing to {}: {e}", size.name))?;
            let (width, height, pixels) = orient(
                width,
                height,
                target.into_vec(),
                has_alpha,
                frame.orientation,
            )
            .ok_or_else(|| format!("orienting {}", size.name))?;
            let (bytes, content_type) = if has_alpha {
                let mut png = Vec::new();
                PngEncoder::new(&mut png)
                    .write_image(&pixels, width, height, image::ExtendedColorType::Rgba8)
                    .map_err(|e| format!("encoding {}: {e}", size.name))?;
                (png, "image/png")
            } else {
                let jpeg = encode_jpeg(&pixels, width, height)
                    .map_err(|e| format!("encoding {}: {e}", size.name))?;
                (jpeg, "image/jpeg")
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

/// RGB8 `pixels` as a baseline JPEG of [`JPEG_QUALITY`] with libjpeg-turbo's defaults (4:2:0,
/// standard Huffman tables): what Pillow writes, at its speed.
fn encode_jpeg(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    std::panic::catch_unwind(|| {
        let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        // libjpeg-turbo's settings, not mozjpeg's slower size-optimising ones.
        compress.set_fastest_defaults();
        compress.set_size(width as usize, height as usize);
        compress.set_quality(f32::from(JPEG_QUALITY));
        let mut started = compress
            .start_compress(Vec::new())
            .map_err(|e| e.to_string())?;
        started.write_scanlines(pixels).map_err(|e| e.to_string())?;
        started.finish().map_err(|e| e.to_string())
    })
    // libjpeg's message, which mozjpeg's error handler unwinds with.
    .unwrap_or_else(|panic| Err(platform::telemetry::panic_message(&*panic)))
}

/// `pixels` (RGB8, or RGBA8 with `has_alpha`) turned by `orientation`, with the new width and
/// height. `None` only if the buffer does not match the size.
fn orient(
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    has_alpha: bool,
    orientation: Orientation,
) -> Option<(u32, u32, Vec<u8>)> {
    if orientation == Orientation::NoTransforms {
        return Some((width, height, pixels));
    }
    let mut image = if has_alpha {
        DynamicImage::ImageRgba8(image::RgbaImage::from_raw(width, height, pixels)?)
    } else {
        DynamicImage::ImageRgb8(image::RgbImage::from_raw(width, height, pixels)?)
    };
    image.apply_orientation(orientation);
    Some((image.width(), image.height(), image.into_bytes()))
}

/// A JPEG decoded at a reduced DCT scale, with what its pixels stand for.
struct ScaledJpeg {
    pixels: DynamicImage,
    frame: Frame,
}

/// Decode a baseline or progressive 8-bit YCbCr/RGB or grayscale JPEG at the smallest DCT scale
/// that still covers the largest of `sizes`. `None` for anything else, for a JPEG that would be
/// decoded at full size anyway, and for any error: the caller then takes the full path.
fn decode_scaled_jpeg(original: &[u8], sizes: &[ThumbnailSize]) -> Option<ScaledJpeg> {
    // JPEG's SOI marker and the first marker after it, as the full path's format guess.
    if !original.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return None;
    }
    // libjpeg reports a fatal error by unwinding out of its error handler (the mozjpeg crate's
    // way; it needs `panic = "unwind"`, the default): caught here, the full path then decides.
    std::panic::catch_unwind(|| scaled_jpeg(original, sizes))
        .ok()
        .flatten()
}

fn scaled_jpeg(original: &[u8], sizes: &[ThumbnailSize]) -> Option<ScaledJpeg> {
    use mozjpeg::{ColorSpace, Decompress, Marker};
    let mut decoder = Decompress::builder()
        .with_markers(&[Marker::APP(1)])
        .from_mem(original)
        .ok()?;
    if !matches!(
        decoder.color_space(),
        ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB | ColorSpace::JCS_GRAYSCALE
    ) {
        return None;
    }
    let width = u32::try_from(decoder.width()).ok()?;
    let height = u32::try_from(decoder.height()).ok()?;
    // Past the full path's limits: let it refuse the file with its own message.
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return None;
    }
    let largest = sizes.iter().map(|size| size.max_edge).max()?;
    let eighths = dct_eighths(width, height, fit(width, height, largest));
    if eighths == 8 {
        return None;
    }
    let scaled = |side: u32| (side * eighths).div_ceil(8);
    let (scaled_width, scaled_height) = (scaled(width), scaled(height));
    decoder.scale(u8::try_from(eighths).ok()?);
    // Read before decoding starts: the markers belong to the header.
    let orientation = decoder
        .markers()
        .find_map(|m| m.data.strip_prefix(b"Exif\0\0"))
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    // Grayscale comes out as RGB too (libjpeg converts), as the variants are RGB.
    let mut rgb = decoder.rgb().ok()?;
    if (rgb.width(), rgb.height()) != (scaled_width as usize, scaled_height as usize) {
        return None;
    }
    let pixels: Vec<u8> = rgb.read_scanlines().ok()?;
    // A scan cut short is filled with grey by libjpeg (a warning, as browsers show it).
    rgb.finish().ok()?;
    let pixels = image::RgbImage::from_raw(scaled_width, scaled_height, pixels)?;
    let eighth = |side: u32| f64::from(side) * f64::from(eighths) / 8.0;
    Some(ScaledJpeg {
        pixels: DynamicImage::ImageRgb8(pixels),
        frame: Frame {
            full: (width, height),
            extent: (eighth(width), eighth(height)),
            orientation,
        },
    })
}

/// The DCT scale, in eighths (1, 2, 4, or 8 for full size), at which a `width`×`height` JPEG
/// still covers `target` in both sides: the smallest such, so no variant is enlarged.
fn dct_eighths(width: u32, height: u32, target: (u32, u32)) -> u32 {
    [1, 2, 4]
        .into_iter()
        .find(|&eighths| {
            u64::from(width) * u64::from(eighths) >= u64::from(target.0) * 8
                && u64::from(height) * u64::from(eighths) >= u64::from(target.1) * 8
        })
        .unwrap_or(8)
}

fn decode(original: &[u8]) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(original))
        .with_guessed_format()
        .map_err(|e| format!("unreadable image: {e}"))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
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
    use image::codecs::jpeg::JpegEncoder;

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

    /// A photo-like JPEG: noise over gradients, softened (as `bench/thumbnail.sh` makes), so it
    /// has the fine detail that a scaled decode could lose.
    fn photo(width: u32, height: u32) -> Vec<u8> {
        let mut state = 0x2545_F491_u32;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 81) as i32 - 40
        };
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            let gx = (x * 255 / width) as i32;
            let gy = (y * 255 / height) as i32;
            let mut channel = |base: i32| (base + noise()).clamp(0, 255) as u8;
            image::Rgb([channel(gx), channel(gy), channel((gx + gy) / 2)])
        });
        let img = image::imageops::blur(&img, 1.0);
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    fn dimensions(rendered: &[Rendered]) -> Vec<(String, u32, u32)> {
        rendered
            .iter()
            .map(|r| (r.size.clone(), r.width, r.height))
            .collect()
    }

    /// Mean absolute difference per channel (0–255) between two encoded variants of one size.
    fn mean_difference(a: &Rendered, b: &Rendered) -> f64 {
        let a = image::load_from_memory(&a.bytes).unwrap().into_rgb8();
        let b = image::load_from_memory(&b.bytes).unwrap().into_rgb8();
        assert_eq!(a.dimensions(), b.dimensions());
        let total: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        total as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn a_jpeg_is_decoded_at_the_smallest_dct_scale_that_covers_the_largest_size() {
        let eighths = |w, h| dct_eighths(w, h, fit(w, h, 800));
        // 4000×3000 → 1000×750 at 1/4 covers 800×600; 1/8 (500×375) would not.
        assert_eq!(eighths(4000, 3000), 2);
        assert_eq!(eighths(6400, 4800), 1);
        assert_eq!(eighths(1600, 1200), 4);
        // 1/2 of 1599×1199 is 799.5 wide: short of 800, so full size.
        assert_eq!(eighths(1599, 1199), 8);
        assert_eq!(eighths(1000, 750), 8);
        // Both sides must cover: a wide strip is limited by its width, a tall one by its height.
        assert_eq!(eighths(6500, 300), 1);
        assert_eq!(eighths(300, 6500), 1);
        assert_eq!(eighths(640, 480), 8);
    }

    #[test]
    fn scaled_decoding_keeps_every_variant_size_of_the_full_decode() {
        let sizes = sizes();
        // (width, height, DCT scale in eighths that the scaled path should take; 8 = full path)
        for (width, height, eighths) in [
            (3200, 2400, 2),
            (1700, 1300, 4),
            (1601, 1199, 4),
            (900, 1700, 4),
            (6500, 300, 1),
            (1000, 750, 8),
            (1200, 900, 8),
        ] {
            let original = jpeg(width, height);
            let scaled = decode_scaled_jpeg(&original, &sizes);
            if eighths == 8 {
                assert!(
                    scaled.is_none(),
                    "{width}×{height} must be decoded at full size"
                );
            } else {
                let scaled = scaled.expect("a scaled decode");
                let expected = (
                    (width * eighths).div_ceil(8),
                    (height * eighths).div_ceil(8),
                );
                assert_eq!(
                    (scaled.pixels.width(), scaled.pixels.height()),
                    expected,
                    "{width}×{height}"
                );
                assert!(scaled.pixels.width() >= 800 || scaled.pixels.height() >= 800);
            }
            let ours = render(&original, &sizes).unwrap();
            let full = render_full(&original, &sizes).unwrap();
            assert_eq!(dimensions(&ours), dimensions(&full), "{width}×{height}");
            for (r, size) in ours.iter().zip(&sizes) {
                assert_eq!(
                    (r.width, r.height),
                    fit(width, height, size.max_edge),
                    "{width}×{height} {}",
                    size.name
                );
                let decoded = image::load_from_memory(&r.bytes).unwrap();
                assert_eq!((decoded.width(), decoded.height()), (r.width, r.height));
            }
        }
    }

    #[test]
    fn a_scaled_decode_looks_like_the_full_decode() {
        // 3200×2400 is decoded at 1/4 (800×600), the scale the benchmark's 4000×3000 takes.
        let original = photo(3200, 2400);
        let sizes = sizes();
        assert!(decode_scaled_jpeg(&original, &sizes).is_some());
        let ours = render(&original, &sizes).unwrap();
        let full = render_full(&original, &sizes).unwrap();
        let differences: Vec<(&str, f64)> = ours
            .iter()
            .zip(&full)
            .map(|(a, b)| (a.size.as_str(), mean_difference(a, b)))
            .collect();
        // Mean absolute difference per channel, of 255.
        assert!(
            differences.iter().all(|(_, d)| *d < 3.0),
            "{differences:.2?}"
        );
    }

    #[test]
    fn an_exif_rotated_jpeg_still_comes_out_rotated() {
        // Left half red, right half blue, stored 1600×1200 with EXIF orientation 6 ("rotate 90°
        // clockwise to display"): shown 1200×1600 with red on top.
        let img = image::RgbImage::from_fn(1600, 1200, |x, _| {
            if x < 800 {
                image::Rgb([220, 20, 20])
            } else {
                image::Rgb([20, 20, 220])
            }
        });
        // A big-endian TIFF header and one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
        let exif = [
            b'M', b'M', 0, 42, 0, 0, 0, 8, // header, first IFD at 8
            0, 1, // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // Orientation = 6
            0, 0, 0, 0, // no next IFD
        ];
        let mut original = Vec::new();
        let mut encoder = JpegEncoder::new_with_quality(&mut original, 90);
        encoder.set_exif_metadata(exif.to_vec()).unwrap();
        encoder
            .write_image(img.as_raw(), 1600, 1200, image::ExtendedColorType::Rgb8)
            .unwrap();
        let sizes = sizes();
        let scaled = decode_scaled_jpeg(&original, &sizes).expect("a scaled decode");
        assert_eq!(scaled.frame.orientation, Orientation::Rotate90);

        let out = render(&original, &sizes).unwrap();
        assert_eq!(
            dimensions(&out),
            dimensions(&render_full(&original, &sizes).unwrap())
        );
        let medium = &out[2];
        assert_eq!((medium.width, medium.height), (600, 800));
        let shown = image::load_from_memory(&medium.bytes).unwrap().into_rgb8();
        let top = shown.get_pixel(300, 100);
        let bottom = shown.get_pixel(300, 700);
        assert!(top[0] > 150 && top[2] < 100, "top should be red: {top:?}");
        assert!(
            bottom[2] > 150 && bottom[0] < 100,
            "bottom should be blue: {bottom:?}"
        );
    }

    #[test]
    fn a_grayscale_jpeg_becomes_three_jpegs() {
        let img =
            image::GrayImage::from_fn(1600, 1200, |x, y| image::Luma([((x + y) % 256) as u8]));
        let mut original = Vec::new();
        JpegEncoder::new_with_quality(&mut original, 90)
            .write_image(img.as_raw(), 1600, 1200, image::ExtendedColorType::L8)
            .unwrap();
        let sizes = sizes();
        assert!(decode_scaled_jpeg(&original, &sizes).is_some());
        let out = render(&original, &sizes).unwrap();
        assert_eq!(
            dimensions(&out),
            [
                ("thumb".to_owned(), 128, 96),
                ("small".to_owned(), 320, 240),
                ("medium".to_owned(), 800, 600)
            ]
        );
        let full = render_full(&original, &sizes).unwrap();
        for (a, b) in out.iter().zip(&full) {
            assert_eq!(a.content_type, "image/jpeg");
            let difference = mean_difference(a, b);
            assert!(difference < 3.0, "{}: {difference:.2}", a.size);
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
    fn a_jpeg_cut_short_on_the_scaled_path_is_refused_or_greyed_never_a_panic() {
        let photo = jpeg(1600, 1200);
        assert!(decode_scaled_jpeg(&photo, &sizes()).is_some());
        // Inside the headers: libjpeg's fatal error is caught; the full path refuses the file.
        assert!(decode_scaled_jpeg(&photo[..40], &sizes()).is_none());
        assert!(render(&photo[..40], &sizes()).is_err());
        // Inside the scan: the rest is grey (a warning to libjpeg), every variant is made.
        let cut = &photo[..photo.len() / 2];
        assert!(decode_scaled_jpeg(cut, &sizes()).is_some());
        let out = render(cut, &sizes()).unwrap();
        assert_eq!(
            dimensions(&out),
            dimensions(&render(&photo, &sizes()).unwrap())
        );
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

    #[test]
    fn a_jpeg_past_the_side_limit_is_refused_whichever_path_reads_it() {
        let original = jpeg(MAX_SIDE + 8, 8);
        assert!(decode_scaled_jpeg(&original, &sizes()).is_none());
        assert!(render(&original, &sizes()).is_err());
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
