//! Where set-up put the model files: `$KAIZEN_HOME` (default `~/.cache/kaizen`), laid out as
//! `assets/models.lock` says. Every lookup that fails names the set-up command.

use std::path::PathBuf;

/// The set-up command a user runs to fetch missing files.
pub const SETUP_COMMAND: &str = "scripts/setup.sh";

/// The lock file, embedded so that the binary knows the layout without the source tree.
const MODELS_LOCK: &str = include_str!("../../../assets/models.lock");

/// One file of an installable model, as listed in `assets/models.lock`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub model: String,
    pub package: String,
    pub relative_path: String,
    pub sha256: String,
}

pub use kaizen_core::home::kaizen_home;

/// Every model file set-up installs, in lock-file order.
pub fn model_files() -> Vec<ModelFile> {
    MODELS_LOCK
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6).then(|| ModelFile {
                model: f[0].to_string(),
                package: f[1].to_string(),
                relative_path: f[4].to_string(),
                sha256: f[5].to_string(),
            })
        })
        .collect()
}

/// Short names users type, mapped to lock-file model names.
pub fn canonical_name(name: &str) -> &str {
    match name {
        "smollm2" | "smollm2-135m" => "smollm2-135m-instruct",
        "minilm" | "all-minilm" => "all-minilm-l6-v2",
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("model file {path} is missing; run `{SETUP_COMMAND}` to fetch it (KAIZEN_HOME={home})")]
    Missing { path: String, home: String },
    #[error("unknown model '{0}'; known: {1}")]
    Unknown(String, String),
}

/// The directory holding an installed model's files, checking that every file is present.
pub fn model_dir(name: &str) -> Result<PathBuf, HomeError> {
    model_dir_in(&kaizen_home(), name)
}

/// `model_dir` under an explicit home folder.
pub fn model_dir_in(home: &std::path::Path, name: &str) -> Result<PathBuf, HomeError> {
    let name = canonical_name(name);
    let files: Vec<ModelFile> = model_files().into_iter().filter(|f| f.model == name).collect();
    if files.is_empty() {
        let mut known: Vec<String> = model_files().into_iter().map(|f| f.model).collect();
        known.dedup();
        return Err(HomeError::Unknown(name.to_string(), known.join(", ")));
    }
    for f in &files {
        let p = home.join(&f.relative_path);
        if !p.is_file() {
            return Err(HomeError::Missing { path: p.display().to_string(), home: home.display().to_string() });
        }
    }
    let first = home.join(&files[0].relative_path);
    Ok(first.parent().map(PathBuf::from).unwrap_or_else(|| home.to_path_buf()))
}

/// The path of the one GGUF file of a model (for LLMs).
pub fn gguf_path(name: &str) -> Result<PathBuf, HomeError> {
    let name = canonical_name(name);
    let dir = model_dir(name)?;
    let f = model_files()
        .into_iter()
        .find(|f| f.model == name && f.relative_path.ends_with(".gguf"))
        .ok_or_else(|| HomeError::Unknown(name.to_string(), "no .gguf file listed".into()))?;
    let file = PathBuf::from(&f.relative_path);
    Ok(dir.join(file.file_name().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_lists_both_default_models() {
        let files = model_files();
        assert!(files.iter().any(|f| f.model == "smollm2-135m-instruct" && f.relative_path.ends_with(".gguf")));
        assert_eq!(files.iter().filter(|f| f.model == "all-minilm-l6-v2").count(), 3);
        assert!(files.iter().all(|f| f.sha256.len() == 64));
    }

    #[test]
    fn missing_model_names_setup_command() {
        // A KAIZEN_HOME that holds nothing: the error must tell the user what to run.
        let empty = std::env::temp_dir().join("kaizen-empty-home-test");
        let err = model_dir_in(&empty, "smollm2").unwrap_err().to_string();
        assert!(err.contains(SETUP_COMMAND), "{err}");
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn unknown_model_lists_known_ones() {
        let err = model_dir("gpt-17").unwrap_err().to_string();
        assert!(err.contains("smollm2-135m-instruct"), "{err}");
    }
}
