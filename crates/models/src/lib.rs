//! Models kaizen runs locally on candle, and the client for remote ones, in rooms by job:
//! `runtime` (GGUF LLMs with exact per-token log-probs, continuous batching, sampling, the
//! shared-prefix KV cache, the MiniLM sentence embedder), `kernels` (the int8 matmul, decode
//! attention, the thread pool), `text` (tokenizers, the chat template), `arch` (GGUF files, the
//! llama family's layers and KV cache, BERT, the picture input), `remote` (the OpenAI-compatible
//! client, alone or as a pool), and `trainable` (the decoder and LoRA adapters with gradients,
//! saved as GGUF for the runtime). Every LLM backend implements `kaizen_core::Policy`. Errors
//! are typed (`LlmError`, `EmbedderError`, `trainable::PolicyFileError`, …).
//!
//! Not here: tools, environments, the training loop (their own crates).

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
pub use runtime::embedder::{cosine, Embedder, EmbedderError};
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
