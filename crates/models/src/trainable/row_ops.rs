//! The decoder's elementwise and per-row ops — RMSNorm, rotary embedding, the SwiGLU gate, the
//! log-probs of the targets — each as one CPU op with its own backward pass. In plain candle
//! ops they are three to ten elementwise passes each way (RoPE's on strided halves of pairs,
//! the slowest path candle has; SiLU's through libm's scalar `expf`), run on every layer of
//! every training step. Devices other than the CPU take those plain ops.

use super::vmath::exp;
use crate::kernels::parallel::{for_chunks, Fresh, Parts};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// The f32 data of a contiguous CPU input of kernel `op`.
pub(super) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(x) = s else { candle_core::bail!("{op}: f32 only") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&x[a..b]),
        None => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}

/// `y = x / rms(x) ∘ w` over the last axis, `rms(x) = √(mean(x²) + ε)`; differentiable in
/// `x` and `w`. Backward, with `x̂ = x / rms` and `n` the row length:
/// `∂x = (w∘g − x̂ · mean(w∘g∘x̂)) / rms`, `∂w = Σ_rows g∘x̂`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return candle_nn::ops::rms_norm_slow(x, w, eps);
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps })
}

struct RmsNorm {
    eps: f32,
}

/// `1 / rms` of one row.
fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let sq: f32 = row.iter().map(|v| v * v).sum();
    1.0 / (sq / row.len() as f32 + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "kaizen-rms-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (f32_slice(xs, xl, self.name())?, f32_slice(ws, wl, self.name())?);
        let n = w.len();
        if xl.shape().dims().last() != Some(&n) {
            candle_core::bail!("rms norm: weight {:?} does not fit input {:?}", wl.shape(), xl.shape());
        }
        let mut out = Fresh::new(x.len());
        let dst = out.shared();
        for_chunks(x.len() / n, x.len() * 3, |rows| {
            for r in rows {
                let row = &x[r * n..(r + 1) * n];
                let inv = inv_rms(row, self.eps);
                // SAFETY: row r of the output belongs to this iteration only.
                let y = unsafe { dst.slots(r * n, n) };
                for ((yi, xi), wi) in y.iter_mut().zip(row).zip(w) {
                    yi.write(xi * inv * wi);
                }
            }
        });
        // SAFETY: the rows cover the output (its length is a multiple of n, checked above).
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // One op gives ∂x and, when w trains, ∂w as partial sums (one per part of the rows).
        let weight_grad = w.track_op();
        let flat = x.apply_op3_no_bwd(w, &g.contiguous()?, &RmsNormGrad { eps: self.eps, weight_grad })?;
        let (len, n) = (x.elem_count(), w.elem_count());
        let dx = flat.narrow(0, 0, len)?.reshape(x.shape())?;
        let dw = if weight_grad {
            Some(flat.narrow(0, len, flat.elem_count() - len)?.reshape(((), n))?.sum(0)?.reshape(w.shape())?)
        } else {
            None
        };
        Ok((Some(dx), dw))
    }
}

/// RMSNorm's backward: `∂x`, then (if `weight_grad`) `∂w` summed over each part of the rows,
/// one `[n]` row per part, flattened one after the other.
struct RmsNormGrad {
    eps: f32,
    weight_grad: bool,
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "kaizen-rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) =
            (f32_slice(xs, xl, self.name())?, f32_slice(ws, wl, self.name())?, f32_slice(gs, gl, self.name())?);
        let (n, len) = (w.len(), x.len());
        // One part per thread, each with its own ∂w partial sum (summed by the caller).
        let parts = Parts::per_thread(len / n.max(1));
        let partials = if self.weight_grad { parts.count() * n } else { 0 };
        let mut out = Fresh::new(len + partials);
        let dst = out.shared();
        parts.run(len * 8, |part, rows| {
            let mut dw = vec![0f32; if self.weight_grad { n } else { 0 }];
            for r in rows {
                let (xr, gr) = (&x[r * n..(r + 1) * n], &g[r * n..(r + 1) * n]);
                let inv = inv_rms(xr, self.eps);
                // SAFETY: row r of ∂x belongs to this part only.
                let dx = unsafe { dst.slots(r * n, n) };
                // mean(w∘g∘x̂), with x̂ = x · inv.
                let mean = xr.iter().zip(gr).zip(w).map(|((xi, gi), wi)| wi * gi * xi).sum::<f32>() * inv / n as f32;
                for (((d, xi), gi), wi) in dx.iter_mut().zip(xr).zip(gr).zip(w) {
                    d.write((wi * gi - xi * inv * mean) * inv);
                }
                for ((acc, xi), gi) in dw.iter_mut().zip(xr).zip(gr) {
                    *acc += gi * xi * inv;
                }
            }
            if self.weight_grad {
                // SAFETY: partial row `part` belongs to this part only.
                let slots = unsafe { dst.slots(len + part * n, n) };
                for (s, &v) in slots.iter_mut().zip(&dw) {
                    s.write(v);
                }
            }
        });
        // SAFETY: the parts cover every row of ∂x and write one partial row each.
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), Shape::from(len + partials)))
    }
}

/// Interleaved RoPE with `cos, sin: [T, D/2]` on `x`, rows of one or more `D`-wide heads with
/// row `r` at position `r mod T` — packed tokens `[B·T, H·D]` or heads `[B, H, T, D]` alike:
/// each pair `(x_2i, x_2i+1)` of a head at position t turns by the angle whose cosine and sine
/// are `cos[t, i]`, `sin[t, i]`: `(x₀ c − x₁ s, x₀ s + x₁ c)`. Differentiable in `x`; its
/// backward turns the gradient back by the opposite angle (a rotation's transpose is its
/// inverse).
pub fn rope_i(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return plain_rope_i(x, cos, sin);
    }
    x.contiguous()?.apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope { inverse: false })
}

/// `rope_i` in plain candle ops, for devices other than the CPU.
fn plain_rope_i(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let r = RopeRows::of(x.shape(), cos.shape(), sin.shape())?;
    let pairs = x.reshape((r.rows / r.t, r.t, r.width / r.d, r.d / 2, 2))?;
    let (x0, x1) = (pairs.narrow(4, 0, 1)?, pairs.narrow(4, 1, 1)?);
    let cos = cos.reshape((1, r.t, 1, r.d / 2, 1))?;
    let sin = sin.reshape((1, r.t, 1, r.d / 2, 1))?;
    let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
    let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
    Tensor::cat(&[r0, r1], 4)?.reshape(x.shape())
}

/// `rope_i`'s sizes: `rows` rows `width` wide, heads `d` wide, positions cycling every `t` rows.
struct RopeRows {
    rows: usize,
    width: usize,
    t: usize,
    d: usize,
}

impl RopeRows {
    fn of(x: &Shape, cos: &Shape, sin: &Shape) -> Result<Self> {
        let (t, half) = cos.dims2()?;
        let width = x.dims().last().copied().unwrap_or(0);
        let (d, rows) = (2 * half, x.elem_count() / width.max(1));
        if sin != cos || d == 0 || width % d != 0 || (rows > 0 && (t == 0 || rows % t != 0)) {
            candle_core::bail!("rope: x {x:?} with cos {cos:?}, sin {sin:?}");
        }
        Ok(RopeRows { rows, width, t, d })
    }
}

struct Rope {
    /// Turn by `−θ` (the backward pass).
    inverse: bool,
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "kaizen-rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, cos, sin) =
            (f32_slice(xs, xl, self.name())?, f32_slice(cs, cl, self.name())?, f32_slice(ss, sl, self.name())?);
        let RopeRows { rows, width, t, d } = RopeRows::of(xl.shape(), cl.shape(), sl.shape())?;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = Fresh::new(x.len());
        let dst = out.shared();
        for_chunks(rows, x.len() * 3, |rows| {
            for r in rows {
                // SAFETY: row r of the output belongs to this iteration only.
                let y = unsafe { dst.slots(r * width, width) };
                let ti = r % t;
                let (c, s) = (&cos[ti * d / 2..(ti + 1) * d / 2], &sin[ti * d / 2..(ti + 1) * d / 2]);
                for (yh, xh) in y.chunks_exact_mut(d).zip(x[r * width..(r + 1) * width].chunks_exact(d)) {
                    for (i, (yp, xp)) in yh.chunks_exact_mut(2).zip(xh.chunks_exact(2)).enumerate() {
                        let s = sign * s[i];
                        yp[0].write(xp[0] * c[i] - xp[1] * s);
                        yp[1].write(xp[0] * s + xp[1] * c[i]);
                    }
                }
            }
        });
        // SAFETY: the rows cover the output (rows · width = its length, the last axis being width).
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = g.contiguous()?.apply_op3_no_bwd(cos, sin, &Rope { inverse: !self.inverse })?;
        Ok((Some(dx), None, None))
    }
}

/// The SwiGLU gate `silu(a) ∘ b`, `silu(a) = a σ(a)`; differentiable in both. Backward:
/// `∂a = g ∘ b ∘ σ(a)(1 + a(1 − σ(a)))`, `∂b = g ∘ silu(a)`.
pub fn swiglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !a.device().is_cpu() {
        return candle_nn::ops::silu(a)? * b;
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, SwiGlu)
}

struct SwiGlu;

/// Elements per work item of the elementwise ops.
const CHUNK: usize = 4096;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "kaizen-swiglu"
    }

    fn cpu_fwd(&self, as_: &CpuStorage, al: &Layout, bs: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (f32_slice(as_, al, self.name())?, f32_slice(bs, bl, self.name())?);
        if al.shape() != bl.shape() {
            candle_core::bail!("swiglu: {:?} and {:?} differ", al.shape(), bl.shape());
        }
        let mut out = Fresh::new(a.len());
        let dst = out.shared();
        for_chunks(a.len().div_ceil(CHUNK), a.len() * 8, |chunks| {
            for c in chunks {
                let r = c * CHUNK..((c + 1) * CHUNK).min(a.len());
                // SAFETY: chunk c of the output belongs to this iteration only.
                let y = unsafe { dst.slots(r.start, r.len()) };
                gate::forward(&a[r.clone()], &b[r], y);
            }
        });
        // SAFETY: the chunks cover the output.
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), al.shape().clone()))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = a.apply_op3_no_bwd(b, &g.contiguous()?, &SwiGluGrad)?;
        let n = a.elem_count();
        Ok((Some(both.narrow(0, 0, n)?.reshape(a.shape())?), Some(both.narrow(0, n, n)?.reshape(a.shape())?)))
    }
}

/// SwiGLU's backward: `[∂a; ∂b]` flattened one after the other.
struct SwiGluGrad;

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "kaizen-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b, g) =
            (f32_slice(as_, al, self.name())?, f32_slice(bs, bl, self.name())?, f32_slice(gs, gl, self.name())?);
        let n = a.len();
        if bl.shape() != al.shape() || gl.shape() != al.shape() {
            candle_core::bail!("swiglu: {:?}, {:?} and ∂ {:?} differ", al.shape(), bl.shape(), gl.shape());
        }
        let mut out = Fresh::new(2 * n);
        let dst = out.shared();
        for_chunks(n.div_ceil(CHUNK), n * 12, |chunks| {
            for c in chunks {
                let r = c * CHUNK..((c + 1) * CHUNK).min(n);
                // SAFETY: chunk c of both halves of the output belongs to this iteration only.
                let (da, db) = unsafe { (dst.slots(r.start, r.len()), dst.slots(n + r.start, r.len())) };
                gate::backward(&a[r.clone()], &b[r.clone()], &g[r], da, db);
            }
        });
        // SAFETY: the chunks cover both halves (a, b and g have n floats each, checked above).
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), Shape::from(2 * n)))
    }
}

/// `log softmax(z / T)` at each row's target: `z: [N, V]` logits, `targets: [N]` (u32) →
/// `[N]`; `T ≤ 0` counts as 1. Differentiable in `z`:
/// `∂z_j = (g / T) · (1[j = target] − softmax(z / T)_j)`. One op each way instead of
/// log-softmax's five over the whole `[N, V]` and their gradients — a 49k vocabulary makes
/// each of those a 200 MB tensor for a 1k-token batch.
pub fn target_logprobs(logits: &Tensor, targets: &Tensor, temperature: f32) -> Result<Tensor> {
    let t = crate::runtime::sampler::logprob_temperature(temperature);
    if !logits.device().is_cpu() {
        let z = if t != 1.0 { (logits / t as f64)? } else { logits.clone() };
        return candle_nn::ops::log_softmax(&z, candle_core::D::Minus1)?
            .gather(&targets.contiguous()?.unsqueeze(1)?, 1)?
            .squeeze(1);
    }
    logits.contiguous()?.apply_op2(&targets.contiguous()?, TargetLogprobs { temperature: t })
}

struct TargetLogprobs {
    temperature: f32,
}

/// `(max z, log Σ e^{(z − max)/T})` of one row: its log-partition is `max / T + lse`.
fn log_partition(row: &[f32], t: f32) -> (f32, f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let sum: f32 = row.iter().map(|&x| exp((x - max) / t)).sum();
    (max, sum.ln())
}

/// The logits and targets of `TargetLogprobs` and its gradient op, checked.
fn rows_and_targets<'a>(
    zs: &'a CpuStorage,
    zl: &Layout,
    ts: &'a CpuStorage,
    tl: &Layout,
    op: &str,
) -> Result<(&'a [f32], &'a [u32], usize)> {
    let z = f32_slice(zs, zl, op)?;
    let (n, v) = zl.shape().dims2()?;
    let (CpuStorage::U32(t), Some((a, b))) = (ts, tl.contiguous_offsets()) else {
        candle_core::bail!("{op}: targets must be contiguous u32");
    };
    let t = &t[a..b];
    if t.len() != n || t.iter().any(|&id| id as usize >= v) {
        candle_core::bail!("{op}: {} targets for {n} rows of {v} logits, or a target out of range", t.len());
    }
    Ok((z, t, v))
}

impl CustomOp2 for TargetLogprobs {
    fn name(&self) -> &'static str {
        "kaizen-target-logprobs"
    }

    fn cpu_fwd(&self, zs: &CpuStorage, zl: &Layout, ts: &CpuStorage, tl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (z, targets, v) = rows_and_targets(zs, zl, ts, tl, self.name())?;
        let temp = self.temperature;
        let mut out = Fresh::new(targets.len());
        let dst = out.shared();
        for_chunks(targets.len(), z.len() * 4, |rows| {
            for r in rows {
                let row = &z[r * v..(r + 1) * v];
                let (max, lse) = log_partition(row, temp);
                // SAFETY: entry r belongs to this iteration only.
                let slot = unsafe { dst.slots(r, 1) };
                slot[0].write((row[targets[r] as usize] - max) / temp - lse);
            }
        });
        // SAFETY: the rows cover the output, one entry each.
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), Shape::from(targets.len())))
    }

    fn bwd(&self, z: &Tensor, targets: &Tensor, y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // The forward output gives each row's log-partition back, so no second pass over z.
        let g_and_y = Tensor::stack(&[(g / self.temperature as f64)?, y.clone()], 0)?;
        let op = TargetLogprobsGrad { temperature: self.temperature };
        Ok((Some(z.apply_op3_no_bwd(targets, &g_and_y, &op)?), None))
    }
}

/// `TargetLogprobs`' backward: input 3 is `[g / T; y]` stacked, `y` the forward's log-probs. Each
/// row's log-partition `L = log Σ_j e^{z_j/T}` is `z_target / T − y`, so
/// `∂z_j = (g / T) · (1[j = target] − e^{z_j/T − L})`.
struct TargetLogprobsGrad {
    temperature: f32,
}

impl CustomOp3 for TargetLogprobsGrad {
    fn name(&self) -> &'static str {
        "kaizen-target-logprobs-grad"
    }

    fn cpu_fwd(
        &self,
        zs: &CpuStorage,
        zl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (z, targets, v) = rows_and_targets(zs, zl, ts, tl, self.name())?;
        let n = targets.len();
        let g_and_y = f32_slice(gs, gl, self.name())?;
        if g_and_y.len() != 2 * n {
            candle_core::bail!("{}: {} gradients and log-probs for {n} rows", self.name(), g_and_y.len());
        }
        let (g, y) = g_and_y.split_at(n);
        let temp = self.temperature;
        let mut out = Fresh::new(z.len());
        let dst = out.shared();
        for_chunks(n, z.len() * 4, |rows| {
            for r in rows {
                let row = &z[r * v..(r + 1) * v];
                let t = targets[r] as usize;
                let partition = row[t] / temp - y[r];
                // SAFETY: row r of the output belongs to this iteration only.
                let dz = unsafe { dst.slots(r * v, v) };
                for (d, &x) in dz.iter_mut().zip(row) {
                    d.write(-g[r] * exp(x / temp - partition));
                }
                // SAFETY: as above; entry `t` of row r was just written.
                unsafe { *dz[t].assume_init_mut() += g[r] };
            }
        });
        // SAFETY: the rows cover the output.
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), zl.shape().clone()))
    }
}

/// SwiGLU's loops, compiled for AVX-512 and for the baseline.
mod gate {
    use super::super::vmath::{sigmoid, with_avx512};
    use std::mem::MaybeUninit;

    type Out<'a> = &'a mut [MaybeUninit<f32>];

    with_avx512!(pub fn forward(a: &[f32], b: &[f32], y: Out) => forward_body);
    with_avx512!(pub fn backward(a: &[f32], b: &[f32], g: &[f32], da: Out, db: Out) => backward_body);

    #[inline(always)]
    fn forward_body(a: &[f32], b: &[f32], y: Out) {
        for ((yi, &ai), &bi) in y.iter_mut().zip(a).zip(b) {
            yi.write(ai * sigmoid(ai) * bi);
        }
    }

    #[inline(always)]
    fn backward_body(a: &[f32], b: &[f32], g: &[f32], da: Out, db: Out) {
        for i in 0..a.len().min(b.len()).min(g.len()).min(da.len()).min(db.len()) {
            let s = sigmoid(a[i]);
            da[i].write(g[i] * b[i] * s * (1.0 + a[i] * (1.0 - s)));
            db[i].write(g[i] * a[i] * s);
        }
    }
}

#[cfg(test)]
#[path = "row_ops_tests.rs"]
mod tests;
