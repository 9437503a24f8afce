//! The hot loops, on CPU: kaizen's int8 matmul (`q8_matmul`: AVX-512 VNNI, AVX2 or portable,
//! chosen at run time, bit-identical results), decode attention over the KV cache
//! (`attention`), and the thread pool they split work over (`parallel`). The trainable model's
//! fused ops with their backward passes are in `trainable` (`row_ops`, `causal_attention`).

pub mod attention;
pub mod parallel;
pub mod q8_matmul;
