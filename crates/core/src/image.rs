//! Images as kaizen carries them: `data:` URLs (`data:image/png;base64,…`, what the OpenAI chat
//! API sends) in tasks, messages and observations, each identified by the SHA-256 of its bytes.
//! Pixels are decoded here too, with limits (`decode`): a corrupt or oversized picture is an
//! error, never a panic — the image tools and the vision model's input read them the same way.

use base64::Engine;
use image::{ImageFormat, ImageReader, RgbImage};
use sha2::{Digest, Sha256};
use std::io::Cursor;

/// The largest encoded picture kaizen reads (a longer `data:` URL is refused before decoding).
pub const MAX_IMAGE_BYTES: usize = 16 << 20;

/// A `data:` URL of `bytes` with media type `mime` (`image/png`).
pub fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The media type and bytes of a base64 `data:` URL; an error saying what is wrong otherwise.
pub fn data_url_bytes(url: &str) -> Result<(String, Vec<u8>), String> {
    let rest = url.strip_prefix("data:").ok_or_else(|| format!("not a data: URL ({})", preview(url)))?;
    let (header, payload) = rest.split_once(',').ok_or("a data: URL without a comma")?;
    let mime =
        header.strip_suffix(";base64").ok_or_else(|| format!("a data: URL that is not base64 ({})", preview(url)))?;
    // base64 holds 3 bytes in 4 characters: refuse an oversized picture before decoding it.
    if payload.len() > MAX_IMAGE_BYTES / 3 * 4 + 8 {
        return Err(format!("the image is over {MAX_IMAGE_BYTES} bytes"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| format!("a data: URL with bad base64: {e}"))?;
    Ok((mime.to_string(), bytes))
}

/// The image's identity: `sha256:` and the hex SHA-256 of its bytes — of the URL's text where
/// it is not a base64 `data:` URL (an `https:` image a remote server fetches itself).
pub fn content_hash(url: &str) -> String {
    let digest = match data_url_bytes(url) {
        Ok((_, bytes)) => Sha256::digest(&bytes),
        Err(_) => Sha256::digest(url.as_bytes()),
    };
    format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

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

fn preview(url: &str) -> String {
    let cut: String = url.chars().take(32).collect();
    if cut.len() < url.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
