//! Policies that learn: differentiable models whose log-probs carry gradients (candle
//! autograd). `tiny` is a small llama-architecture transformer trained from scratch on a
//! byte-level vocabulary; it saves as a GGUF file, so the whole inference runtime (episodes,
//! batching, scoring, serving) runs it like any other model.

pub mod tiny;

pub use tiny::{byte_vocab, TinyConfig, TinyLm};
