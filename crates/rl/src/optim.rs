//! AdamW whose state can be saved and restored (candle-nn's keeps its moments private), so a
//! checkpoint holds everything the next update depends on.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// candle-nn's and PyTorch's defaults.
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Updates taken so far (`t` in the bias corrections).
    pub step: usize,
    slots: Vec<Slot>,
}

impl AdamW {
    /// Optimises `vars` (named, so the state can be saved by name); moments start at zero.
    pub fn new(vars: &HashMap<String, Var>, cfg: AdamWConfig) -> Result<Self> {
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let slots = names
            .into_iter()
            .map(|n| {
                let var = vars[n].clone();
                let zeros = var.as_tensor().zeros_like()?;
                Ok(Slot { name: n.clone(), var, m: zeros.clone(), v: zeros })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { cfg, step: 0, slots })
    }

    /// One decoupled-weight-decay Adam update (Loshchilov & Hutter), for every variable with
    /// a gradient:
    ///
    /// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `m̂ = m / (1−β₁ᵗ)`, `v̂ = v / (1−β₂ᵗ)`,
    /// `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamWConfig { lr, beta1, beta2, eps, weight_decay } = self.cfg;
        let scale_m = 1.0 / (1.0 - beta1.powi(self.step as i32));
        let scale_v = 1.0 / (1.0 - beta2.powi(self.step as i32));
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            s.m = ((&s.m * beta1)? + (g * (1.0 - beta1))?)?;
            s.v = ((&s.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let update = ((&s.m * scale_m)? / ((&s.v * scale_v)?.sqrt()? + eps)?)?;
            let theta = ((s.var.as_tensor() * (1.0 - lr * weight_decay))? - (update * lr)?)?;
            s.var.set(&theta)?;
        }
        Ok(())
    }

    /// The moments by variable name (`NAME.m`, `NAME.v`), for saving.
    pub fn moments(&self) -> HashMap<String, Tensor> {
        self.slots
            .iter()
            .flat_map(|s| [(format!("{}.m", s.name), s.m.clone()), (format!("{}.v", s.name), s.v.clone())])
            .collect()
    }

    /// Restores moments saved by `moments` and the step count; every variable must be there
    /// with its shape.
    pub fn restore(&mut self, moments: &HashMap<String, Tensor>, step: usize) -> std::result::Result<(), String> {
        for s in &mut self.slots {
            for (suffix, slot) in [("m", &mut s.m), ("v", &mut s.v)] {
                let key = format!("{}.{suffix}", s.name);
                let t = moments.get(&key).ok_or_else(|| format!("optimizer state lacks {key}"))?;
                if t.dims() != slot.dims() {
                    return Err(format!("optimizer state {key} has shape {:?}, the model {:?}", t.dims(), slot.dims()));
                }
                *slot = t.clone();
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
#[path = "optim_tests.rs"]
mod tests;
