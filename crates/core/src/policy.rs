//! The `Policy` trait: anything that turns a chat into sampled completions. The local
//! GGUF runtime and the remote OpenAI-compatible client implement it, so every method in
//! kaizen runs unchanged on either.

use crate::{Completion, Message, SamplingParams, ToolSpec};

#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub params: SamplingParams,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The request itself is wrong (bad parameter, over-long prompt): the caller must change it.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The backend could not be reached or answered badly.
    #[error("backend error: {0}")]
    Backend(String),
    /// The backend is up but turned the request away for load (HTTP 429, 503): another server,
    /// or the same one later, may take it.
    #[error("backend busy: {0}")]
    Busy(String),
}

pub trait Policy: Send + Sync {
    /// A short name for logs and tables (e.g. the model id).
    fn name(&self) -> &str;
    /// Samples `req.params.n` completions of the chat.
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError>;
}
