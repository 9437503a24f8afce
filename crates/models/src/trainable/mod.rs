//! Policies that learn: differentiable models whose log-probs carry gradients (candle
//! autograd). `tiny` is a small decoder-only transformer trained from scratch on bytes.

pub mod bytes;
pub mod tiny;

pub use bytes::ByteTokenizer;
pub use tiny::{TinyConfig, TinyLm};
