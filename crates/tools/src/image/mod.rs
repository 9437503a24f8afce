//! Images a model looks at: decoding with limits (a corrupt or oversized picture is an error,
//! never a panic), the pure pixel operations (`ops`), and the image tools an episode calls on
//! its picture — `crop`, `zoom`, `rotate` (`ImageTools`) — each answering with the new image.

pub mod ops;
mod tools;

pub use ops::PixelBox;
pub use tools::{ImageTools, IMAGE_TOOLS};

use image::{ImageFormat, ImageReader, RgbImage};
use kaizen_core::image::{data_url, data_url_bytes};
use std::io::Cursor;

pub use kaizen_core::image::MAX_IMAGE_BYTES;
/// The widest (and tallest) image kaizen decodes; with it, at most 4096² = 16.8 M pixels.
pub const MAX_SIDE: u32 = 4096;

/// The pixels of a PNG or JPEG `data:` URL, as 8-bit RGB (alpha dropped). Errors name what is
/// wrong: not a data URL, not PNG or JPEG, over `MAX_IMAGE_BYTES` or `MAX_SIDE`, corrupt.
pub fn decode_url(url: &str) -> Result<RgbImage, String> {
    let (mime, bytes) = data_url_bytes(url)?;
    decode(&mime, &bytes)
}

/// The pixels of PNG or JPEG `bytes` whose declared media type is `mime`.
pub fn decode(mime: &str, bytes: &[u8]) -> Result<RgbImage, String> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!("the image is {} bytes; the limit is {MAX_IMAGE_BYTES}", bytes.len()));
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => return Err(format!("{mime} holds {other:?}; kaizen reads PNG and JPEG")),
        None => return Err(format!("{mime}: not an image kaizen can read (PNG or JPEG)")),
    }
    let (w, h) = reader.into_dimensions().map_err(|e| format!("a corrupt image: {e}"))?;
    if w > MAX_SIDE || h > MAX_SIDE || w == 0 || h == 0 {
        return Err(format!("the image is {w}×{h} pixels; kaizen reads 1 to {MAX_SIDE} on each side"));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    Ok(reader.decode().map_err(|e| format!("a corrupt image: {e}"))?.to_rgb8())
}

/// `image` as a PNG `data:` URL. The same pixels always give the same bytes (one encoder, fixed
/// settings), so the same picture has one content hash. An empty picture (PNG has none) is an
/// error, as is anything the encoder refuses.
pub fn png_url(image: &RgbImage) -> Result<String, String> {
    if image.width() == 0 || image.height() == 0 {
        return Err(format!("a {}×{} picture has no pixels to encode", image.width(), image.height()));
    }
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).map_err(|e| format!("encoding a PNG: {e}"))?;
    Ok(data_url("image/png", &bytes))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
