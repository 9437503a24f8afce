//! Images as kaizen carries them: `data:` URLs (`data:image/png;base64,…`, what the OpenAI chat
//! API sends) in tasks, messages and observations, each identified by the SHA-256 of its bytes.
//! Decoding pixels is not done here (that is `kaizen_tools::image`); this is identity and
//! transport only, so the data model stays light.

use base64::Engine;
use sha2::{Digest, Sha256};

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
