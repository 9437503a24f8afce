//! Models kaizen runs locally on candle — GGUF LLMs with exact per-token log-probs and the
//! MiniLM sentence embedder — and the OpenAI-compatible client for remote servers. Both LLM
//! backends implement `kaizen_core::Policy`.
//!
//! Not here: tools, environments, training (their own crates).

pub mod attention;
pub mod bert;
pub mod chat_template;
pub mod embedder;
pub mod gguf;
pub mod home;
pub mod llama;
pub mod local_llm;
pub mod parallel;
pub mod q8_matmul;
pub mod remote;
pub mod sampler;
pub mod sequence_batch;
pub mod spm;
mod stream;
pub mod tokenizer;
pub mod trainable;

pub use embedder::{cosine, Embedder};
pub use llama::WeightFormat;
pub use local_llm::{LlmError, LocalLlm, TokenEvent};
pub use remote::{Endpoint, OpenAiClient};
pub use sequence_batch::SequenceBatch;
