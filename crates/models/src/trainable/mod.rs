//! Policies that learn: differentiable models whose log-probs carry gradients (candle
//! autograd). A llama-architecture decoder (`lm`) trains from scratch (the `tiny` policy, on
//! a byte-level vocabulary) or as a frozen pretrained model with LoRA adapters (`lora`); it
//! saves as a GGUF file, so the whole inference runtime (episodes, batching, scoring,
//! serving) runs it like any other model.

mod causal_attention;
pub mod lm;
pub mod lora;
mod row_ops;
mod vmath;

pub use lm::{byte_vocab, LmConfig, TrainableLm};

/// Tests of the fused kernels: `a` and `b` agree elementwise within `tol`.
#[cfg(test)]
fn assert_close(a: &candle_core::Tensor, b: &candle_core::Tensor, tol: f32) {
    let flat = |t: &candle_core::Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).unwrap();
    let (a, b) = (flat(a), flat(b));
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < tol, "max difference {worst}");
}
pub use lora::LoraConfig;
