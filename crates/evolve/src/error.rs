//! What can go wrong in a self-evolution run: one error type, each case saying what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvolveError {
    /// A recipe whose fields do not hold together (the message names the field).
    #[error("recipe: {0}")]
    Recipe(String),
    /// An env (or a file of tasks) that could not be opened or drawn from; `role` is the
    /// recipe field that names it.
    #[error("{role} ({spec}): {message}")]
    Env { role: String, spec: String, message: String },
    /// A run directory that is not (or no longer) what the operation needs.
    #[error("{path}: {what}")]
    Run { path: PathBuf, what: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    /// Running or recording episodes (`kaizen-rollout`).
    #[error("rollouts: {0}")]
    Rollout(String),
    /// A training stage (`kaizen-rl`).
    #[error(transparent)]
    Training(#[from] kaizen_rl::RlError),
    #[error("json: {0}")]
    Serde(#[from] serde_json::Error),
}

impl EvolveError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EvolveError {
        let path = path.into();
        move |source| EvolveError::Io { path, source }
    }

    /// A JSON file at `path` that does not parse as expected.
    pub fn json(path: impl Into<PathBuf>) -> impl FnOnce(serde_json::Error) -> EvolveError {
        let path = path.into();
        move |source| EvolveError::Json { path, source }
    }

    /// The env `spec`, named by the recipe's field `role`, could not be opened.
    pub fn env(role: &str, spec: &str) -> impl FnOnce(String) -> EvolveError {
        let (role, spec) = (role.to_string(), spec.to_string());
        move |message| EvolveError::Env { role, spec, message }
    }
}

pub type Result<T, E = EvolveError> = std::result::Result<T, E>;
