//! Running a local LLM: the model behind `kaizen_core::Policy` with exact per-token log-probs
//! (`local_llm`), continuous batching of independent sequences (`sequence_batch`), a decoding
//! stream with stop strings (`stream`), sampling (`sampler`), the shared-prefix KV cache
//! (`prefix_cache`), and the MiniLM sentence embedder (`embedder`). The models' layers are in
//! `arch`, their hot loops in `kernels`.

pub mod embedder;
pub mod local_llm;
pub mod prefix_cache;
pub mod sampler;
pub mod sequence_batch;
mod stream;
