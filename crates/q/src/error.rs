//! What can go wrong in Best-of-Q's library: one error type, each case saying what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QError {
    #[error("unknown features '{0}' (allowed: minilm, smollm2)")]
    UnknownFeatures(String),
    #[error("the Q-function reads features of {wanted}; installed are {installed}: retrain it")]
    FeaturesNotInstalled { wanted: String, installed: String },
    #[error("{path} was trained on features of {trained}, not {given}; retrain it with this embedder")]
    OtherFeatures { path: PathBuf, trained: String, given: String },
    #[error("{0} is not a kaizen Q-function (no config)")]
    NotAQFunction(PathBuf),
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Inputs of the wrong shape, or no data to train on.
    #[error("{0}")]
    Input(String),
    #[error("the embedder: {0}")]
    Embedder(#[from] kaizen_models::EmbedderError),
    #[error("the policy's features: {0}")]
    Llm(#[from] kaizen_models::LlmError),
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the Q-function's variables were poisoned by a panic")]
    Poisoned,
}

impl QError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> QError {
        let path = path.into();
        move |source| QError::Io { path, source }
    }
}

pub type Result<T, E = QError> = std::result::Result<T, E>;
