//! A run's pictures, each stored once under its content hash: `images/<sha256>.png` (or `.jpg`)
//! beside `trajectories.jsonl`, whose lines name the file where the episode held a `data:` URL.
//! A scene shown in 100 episodes, and the same crop a model asks for again, are one file.
//! Loading puts a `data:` URL of the same picture bytes back (in canonical form: base64 without
//! whitespace, `image/jpeg` for JPEG), after checking the file still hashes to its name.

use kaizen_core::image::{content_hash, data_url, data_url_bytes};
use kaizen_core::Trajectory;
use std::path::Path;

/// The folder inside a run directory.
pub const IMAGES: &str = "images";

fn ext_of(mime: &str) -> Option<&'static str> {
    match mime {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpg"),
        _ => None,
    }
}

fn mime_of(ext: &str) -> Option<&'static str> {
    match ext {
        "png" => Some("image/png"),
        "jpg" => Some("image/jpeg"),
        _ => None,
    }
}

/// Every picture slot of an episode: the task's, each observation's, then the token record's
/// (the same pictures again, in placeholder order: stored once all the same).
fn slots(t: &mut Trajectory) -> impl Iterator<Item = &mut String> {
    let obs = t.turns.iter_mut().flat_map(|u| u.observations.iter_mut().flat_map(|o| o.images.iter_mut()));
    t.task.images.iter_mut().chain(obs).chain(t.token_pictures.iter_mut())
}

/// `t` as stored in the run at `dir`: each PNG or JPEG `data:` URL written to
/// `images/<hash>.<ext>` (once: a file already there is the same bytes) and replaced by that
/// relative path. Other URLs stay as they are.
pub fn store(dir: &Path, t: &Trajectory) -> Result<Trajectory, String> {
    let mut out = t.clone();
    for url in slots(&mut out) {
        let Ok((mime, bytes)) = data_url_bytes(url) else { continue };
        let Some(ext) = ext_of(&mime) else { continue };
        let hex = content_hash(url).trim_start_matches("sha256:").to_string();
        let name = format!("{IMAGES}/{hex}.{ext}");
        let path = dir.join(&name);
        if !path.exists() {
            std::fs::create_dir_all(dir.join(IMAGES)).map_err(|e| format!("creating {IMAGES}/: {e}"))?;
            kaizen_core::durable::write_atomic(&path, &bytes).map_err(|e| format!("writing {name}: {e}"))?;
        }
        *url = name;
    }
    Ok(out)
}

/// Puts back the `data:` URL of each stored picture of `t` (read from the run at `dir`). An
/// error names a missing file, or one whose bytes no longer hash to its name.
pub fn resolve(dir: &Path, t: &mut Trajectory) -> Result<(), String> {
    for url in slots(t) {
        let Some((hex, ext)) = url.strip_prefix("images/").and_then(|f| f.split_once('.')) else { continue };
        let (Some(mime), true) = (mime_of(ext), hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())) else {
            continue;
        };
        let bytes =
            std::fs::read(dir.join(url.as_str())).map_err(|e| format!("{}: {e}", dir.join(url.as_str()).display()))?;
        let back = data_url(mime, &bytes);
        if content_hash(&back) != format!("sha256:{hex}") {
            return Err(format!(
                "{}: its bytes no longer match its name (the file changed)",
                dir.join(url.as_str()).display()
            ));
        }
        *url = back;
    }
    Ok(())
}
