//! What can go wrong in a training run: one error type, each case saying what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RlError {
    /// A recipe whose fields do not hold together (the message names the field).
    #[error("recipe: {0}")]
    Recipe(String),
    /// Settings or data that cannot run as given; the message says what to change.
    #[error("{0}")]
    Input(String),
    /// An env (or a file of tasks) that could not be opened or drawn from.
    #[error("{spec}: {message}")]
    Env { spec: String, message: String },
    /// A run directory that is not (or not yet) what the operation needs.
    #[error("{path}: {what}")]
    Run { path: PathBuf, what: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    /// A reward that could not score a step (a curriculum reward's executor, say).
    #[error("reward: {0}")]
    Reward(String),
    /// Recording or replaying episodes (`kaizen-rollout`).
    #[error("rollouts: {0}")]
    Rollout(String),
    #[error("the policy's weights file: {0}")]
    PolicyFile(#[from] kaizen_models::trainable::PolicyFileError),
    #[error("the inference runtime: {0}")]
    Llm(#[from] kaizen_models::LlmError),
    #[error("the model files: {0}")]
    Home(#[from] kaizen_models::home::HomeError),
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("json: {0}")]
    Serde(#[from] serde_json::Error),
}

impl RlError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RlError {
        let path = path.into();
        move |source| RlError::Io { path, source }
    }

    /// A JSON file at `path` that does not parse as expected.
    pub fn json(path: impl Into<PathBuf>) -> impl FnOnce(serde_json::Error) -> RlError {
        let path = path.into();
        move |source| RlError::Json { path, source }
    }

    /// An env spec that could not be opened, or a stream it could not give.
    pub fn env(spec: impl Into<String>) -> impl FnOnce(String) -> RlError {
        let spec = spec.into();
        move |message| RlError::Env { spec, message }
    }
}

pub type Result<T, E = RlError> = std::result::Result<T, E>;
