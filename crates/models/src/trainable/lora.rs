//! LoRA (low-rank adaptation): a frozen projection `W` `[out, in]` learns only through a
//! rank-r update, `y = x Wᵀ + s · (x Aᵀ) Bᵀ` with `A` `[r, in]`, `B` `[out, r]` and
//! `s = α / r`. `B` starts at zero, so training starts from the base model exactly; merging
//! for serving folds the update into the weight, `W' = W + s · B A`.

use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;

/// The projections LoRA can adapt (GGUF module names of a llama block).
pub const MODULES: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// The projections adapted unless a recipe says otherwise: the attention's four.
pub const DEFAULT_TARGETS: [&str; 4] = ["attn_q", "attn_k", "attn_v", "attn_output"];

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    /// Which projections of every block get adapters (`MODULES`).
    pub targets: Vec<String>,
}

impl LoraConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.rank == 0 {
            return Err("lora.rank must be at least 1".into());
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(format!("lora.alpha must be a positive number, got {}", self.alpha));
        }
        if self.targets.is_empty() {
            return Err(format!("lora.targets must name at least one of {}", MODULES.join(", ")));
        }
        for t in &self.targets {
            if !MODULES.contains(&t.as_str()) {
                return Err(format!("lora.targets: unknown module '{t}' (allowed: {})", MODULES.join(", ")));
            }
        }
        Ok(())
    }

    /// `s = α / r`.
    pub fn scale(&self) -> f64 {
        self.alpha as f64 / self.rank as f64
    }

    /// Whether `module` (e.g. `attn_q`) has adapters.
    pub fn adapts(&self, module: &str) -> bool {
        self.targets.iter().any(|t| t == module)
    }

    /// Whether the tensor `blk.N.module` has adapters.
    pub fn adapts_tensor(&self, prefix: &str) -> bool {
        prefix.starts_with("blk.") && prefix.rsplit('.').next().is_some_and(|m| self.adapts(m))
    }
}

pub fn a_name(prefix: &str) -> String {
    format!("{prefix}.lora_a")
}

pub fn b_name(prefix: &str) -> String {
    format!("{prefix}.lora_b")
}

/// `W' = W + s · B A`: the adapted weight, for serving.
pub fn merge(w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    w + (b.matmul(a)? * scale)?
}

/// Fresh adapters for every targeted projection of `layers` blocks of `base`: `A ~ N(0, 1/in)`
/// from a generator seeded by `seed`, `B = 0`.
pub fn init_adapters(
    lora: &LoraConfig,
    base: &HashMap<String, Tensor>,
    layers: usize,
    device: &Device,
    seed: u64,
) -> Result<VarMap> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let vars = VarMap::new();
    let mut data = vars.data().lock().map_err(|_| candle_core::Error::Msg("variables poisoned".into()))?;
    for l in 0..layers {
        for module in MODULES.iter().filter(|m| lora.adapts(m)) {
            let prefix = format!("blk.{l}.{module}");
            let w =
                base.get(&format!("{prefix}.weight")).ok_or_else(|| candle_core::Error::Msg(format!("no {prefix}")))?;
            let (out, inp) = w.dims2()?;
            let a = super::lm::normal(&mut rng, lora.rank * inp, 1.0 / (inp as f32).sqrt());
            data.insert(
                a_name(&prefix),
                candle_core::Var::from_tensor(&Tensor::from_vec(a, (lora.rank, inp), device)?)?,
            );
            data.insert(b_name(&prefix), candle_core::Var::zeros((out, lora.rank), candle_core::DType::F32, device)?);
        }
    }
    drop(data);
    Ok(vars)
}

#[cfg(test)]
#[path = "lora_tests.rs"]
mod tests;
