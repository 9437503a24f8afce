//! Models kaizen runs locally on candle — GGUF LLMs with exact per-token log-probs and the
//! MiniLM sentence embedder — and the OpenAI-compatible client for remote servers, alone or as a
//! pool (`server_pool`). Every LLM backend implements `kaizen_core::Policy`. Local models keep
//! the keys and values of prompt openings many sequences share (`prefix_cache`).
//!
//! Not here: tools, environments, training (their own crates).

pub mod arch;
pub mod home;
pub mod kernels;
pub mod remote;
pub mod runtime;
pub mod text;
pub mod trainable;

pub use arch::llama::WeightFormat;
pub use remote::server_pool::ServerPool;
pub use remote::{Endpoint, OpenAiClient};
pub use runtime::embedder::{cosine, Embedder};
pub use runtime::local_llm::{LlmError, LocalLlm, TokenEvent};
pub use runtime::sequence_batch::SequenceBatch;

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
