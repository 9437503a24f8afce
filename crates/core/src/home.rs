//! Where set-up puts what kaizen downloads once (model files, task data, venvs):
//! `$KAIZEN_HOME`, default `~/.cache/kaizen`.

use std::path::PathBuf;

pub fn kaizen_home() -> PathBuf {
    if let Some(h) = std::env::var_os("KAIZEN_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("kaizen")
}
