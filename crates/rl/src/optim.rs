//! AdamW whose state can be saved and restored (candle-nn's keeps its moments private), so a
//! checkpoint holds everything the next update depends on.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor, Var};
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
    /// The first and second moments stacked, `[2, numel]`: one tensor, so that one in-place
    /// pass updates both.
    mv: Tensor,
}

impl Slot {
    /// `m` and `v` in the variable's shape.
    fn halves(&self) -> Result<(Tensor, Tensor)> {
        let shape = self.var.shape();
        Ok((self.mv.get(0)?.reshape(shape)?, self.mv.get(1)?.reshape(shape)?))
    }
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
                let mv = Tensor::zeros((2, var.elem_count()), var.dtype(), var.device())?;
                Ok(Slot { name: n.clone(), var, mv })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { cfg, step: 0, slots })
    }

    /// One decoupled-weight-decay Adam update (Loshchilov & Hutter), for every variable with
    /// a gradient:
    ///
    /// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `m̂ = m / (1−β₁ᵗ)`, `v̂ = v / (1−β₂ᵗ)`,
    /// `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)`.
    ///
    /// On the CPU as two in-place passes per variable (`update_moments`, `update_params`);
    /// elsewhere in tensor ops.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamWConfig { lr, beta1, beta2, eps, weight_decay } = self.cfg;
        let scale_m = 1.0 / (1.0 - beta1.powi(self.step as i32));
        let scale_v = 1.0 / (1.0 - beta2.powi(self.step as i32));
        let c = Coefficients {
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            gain1: (1.0 - beta1) as f32,
            gain2: (1.0 - beta2) as f32,
            decay: (1.0 - lr * weight_decay) as f32,
            lr: lr as f32,
            scale_m: scale_m as f32,
            scale_v: scale_v as f32,
            eps: eps as f32,
        };
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            if s.var.device().is_cpu() && s.var.dtype() == DType::F32 {
                s.mv.inplace_op2(&g.contiguous()?.flatten_all()?, &Moments(c))?;
                s.var.as_tensor().inplace_op2(&s.mv, &Params(c))?;
                continue;
            }
            let (m, v) = s.halves()?;
            let m = ((m * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + eps)?)?;
            let theta = ((s.var.as_tensor() * (1.0 - lr * weight_decay))? - (update * lr)?)?;
            s.var.set(&theta)?;
            s.mv = Tensor::stack(&[m.flatten_all()?, v.flatten_all()?], 0)?;
        }
        Ok(())
    }

    /// The moments by variable name (`NAME.m`, `NAME.v`), for saving.
    pub fn moments(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for s in &self.slots {
            let (m, v) = s.halves()?;
            out.insert(format!("{}.m", s.name), m);
            out.insert(format!("{}.v", s.name), v);
        }
        Ok(out)
    }

    /// Restores moments saved by `moments` and the step count; every variable must be there
    /// with its shape.
    pub fn restore(&mut self, moments: &HashMap<String, Tensor>, step: usize) -> std::result::Result<(), String> {
        for s in &mut self.slots {
            let mut halves = Vec::with_capacity(2);
            for suffix in ["m", "v"] {
                let key = format!("{}.{suffix}", s.name);
                let t = moments.get(&key).ok_or_else(|| format!("optimizer state lacks {key}"))?;
                if t.dims() != s.var.dims() {
                    return Err(format!(
                        "optimizer state {key} has shape {:?}, the model {:?}",
                        t.dims(),
                        s.var.dims()
                    ));
                }
                halves.push(t.flatten_all().map_err(|e| e.to_string())?);
            }
            // A fresh tensor, not a view of the loaded ones: the update writes into it in place.
            s.mv = Tensor::stack(&halves, 0).map_err(|e| e.to_string())?;
        }
        self.step = step;
        Ok(())
    }
}

/// One step's constants, in f32 like the parameters.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    beta1: f32,
    beta2: f32,
    /// `1 − β₁`, `1 − β₂`, taken in f64: in f32, `1 − 0.999` is off by 1e-5 of itself.
    gain1: f32,
    gain2: f32,
    /// `1 − lr·λ`.
    decay: f32,
    lr: f32,
    /// `1 / (1−β₁ᵗ)`, `1 / (1−β₂ᵗ)`.
    scale_m: f32,
    scale_v: f32,
    eps: f32,
}

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, elementwise.
fn update_moments(m: &mut [f32], v: &mut [f32], g: &[f32], c: Coefficients) {
    for ((mi, vi), &gi) in m.iter_mut().zip(v.iter_mut()).zip(g) {
        *mi = c.beta1 * *mi + c.gain1 * gi;
        *vi = c.beta2 * *vi + c.gain2 * gi * gi;
    }
}

/// `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)`, `m̂ = m / (1−β₁ᵗ)`, `v̂ = v / (1−β₂ᵗ)`, elementwise.
fn update_params(theta: &mut [f32], m: &[f32], v: &[f32], c: Coefficients) {
    for ((t, &mi), &vi) in theta.iter_mut().zip(m).zip(v) {
        *t = *t * c.decay - c.lr * (mi * c.scale_m) / ((vi * c.scale_v).sqrt() + c.eps);
    }
}

/// The contiguous f32 data of one in-place op operand.
fn floats<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(x), Some((a, b))) => Ok(&x[a..b]),
        _ => candle_core::bail!("adamw: contiguous f32 tensors only"),
    }
}

fn floats_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(x), Some((a, b))) => Ok(&mut x[a..b]),
        _ => candle_core::bail!("adamw: contiguous f32 tensors only"),
    }
}

/// `update_moments` in place on the stacked `[m; v]`, given the gradient.
struct Moments(Coefficients);

impl InplaceOp2 for Moments {
    fn name(&self) -> &'static str {
        "kaizen-adamw-moments"
    }

    fn cpu_fwd(&self, mv: &mut CpuStorage, mvl: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        let (mv, g) = (floats_mut(mv, mvl)?, floats(g, gl)?);
        if mv.len() != 2 * g.len() {
            candle_core::bail!("adamw: {} moments for {} gradients", mv.len(), g.len());
        }
        let (m, v) = mv.split_at_mut(g.len());
        update_moments(m, v, g, self.0);
        Ok(())
    }
}

/// `update_params` in place on a variable, given its stacked `[m; v]`.
struct Params(Coefficients);

impl InplaceOp2 for Params {
    fn name(&self) -> &'static str {
        "kaizen-adamw-params"
    }

    fn cpu_fwd(&self, theta: &mut CpuStorage, tl: &Layout, mv: &CpuStorage, mvl: &Layout) -> Result<()> {
        let (theta, mv) = (floats_mut(theta, tl)?, floats(mv, mvl)?);
        if mv.len() != 2 * theta.len() {
            candle_core::bail!("adamw: {} moments for {} parameters", mv.len(), theta.len());
        }
        let (m, v) = mv.split_at(theta.len());
        update_params(theta, m, v, self.0);
        Ok(())
    }
}

#[cfg(test)]
#[path = "optim_tests.rs"]
mod tests;
