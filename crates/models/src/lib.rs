//! Models kaizen runs locally on candle — GGUF LLMs with exact per-token log-probs and the
//! MiniLM sentence embedder — and the OpenAI-compatible client for remote servers, alone or as a
//! pool (`server_pool`). Every LLM backend implements `kaizen_core::Policy`. Local models keep
//! the keys and values of prompt openings many sequences share (`prefix_cache`).
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
pub mod prefix_cache;
pub mod q8_matmul;
pub mod remote;
pub mod sampler;
pub mod sequence_batch;
pub mod server_pool;
pub mod spm;
mod stream;
pub mod tokenizer;
pub mod trainable;
pub mod vision;

pub use embedder::{cosine, Embedder};
pub use llama::WeightFormat;
pub use local_llm::{LlmError, LocalLlm, TokenEvent};
pub use remote::{Endpoint, OpenAiClient};
pub use sequence_batch::SequenceBatch;
pub use server_pool::ServerPool;

/// Keeps freed memory in the process instead of returning it to the kernel after every step:
/// decoding and training allocate and free the same large buffers (logits, activations,
/// gradients) each step, and glibc's default trimming made the kernel zero fresh pages for
/// them every time. Call once, before other threads start (the CLI's `main`, a test's setup).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}
