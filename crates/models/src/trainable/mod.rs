//! Policies that learn: differentiable models whose log-probs carry gradients (candle
//! autograd). A llama-architecture decoder (`lm`) trains from scratch (the `tiny` policy, on
//! a byte-level vocabulary) or as a frozen pretrained model with LoRA adapters (`lora`); it
//! saves as a GGUF file, so the whole inference runtime (episodes, batching, scoring,
//! serving) runs it like any other model.

mod causal_attention;
mod linear;
pub mod lm;
pub mod lora;
mod matmul;
mod row_ops;
mod vmath;

pub use lm::{byte_vocab, LmConfig, PolicyFileError, TrainableLm};
pub use lora::LoraConfig;

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod kernel_tests;
