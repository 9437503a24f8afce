//! Causal attention for training as one op with its own backward pass. The generic path
//! materialises the `[B, H, T, S]` scores and runs a scale, a mask, five softmax ops and all
//! their backward ops over them — on a long env prompt (S ≈ 1,400 keys) that is most of a
//! training step. Here each query row's scores live in a row buffer only, masked keys are
//! never computed, and the backward pass recomputes the probabilities instead of storing them.
//!
//! Row `i` of `T` query rows sits at position `P + i` of `S = P + T` keys (P: a shared prefix
//! the rows attend to in full) and reads keys `0 ..= P + i`:
//!
//! - forward: `s_j = scale · q_i·k_j`, `p = softmax(s)`, `o_i = Σ_j p_j v_j`;
//! - backward, with `g_i = ∂L/∂o_i`: `∂v_j += p_j g_i`, `dp_j = g_i·v_j`,
//!   `ds_j = p_j (dp_j − Σ_l p_l dp_l)`, `∂q_i = scale Σ_j ds_j k_j`, `∂k_j += scale ds_j q_i`.
//!
//! Grouped-query heads: query head `h` reads kv head `h / (H / G)`. Devices other than the CPU
//! take the plain-op path (`plain_causal_attention`), which is also the tests' reference.

use super::row_ops::f32_slice;
use crate::parallel::{for_chunks, SharedOut};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

/// `softmax(q kᵀ · scale + causal mask) v` for `q: [B, H, T, D]`, `k, v: [B, G, S, D]`, S ≥ T;
/// differentiable in all three. The fused op on the CPU, plain ops elsewhere.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    if !q.device().is_cpu() {
        return plain_causal_attention(q, k, v, scale);
    }
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, CausalAttention { scale: scale as f32 })
}

/// The same attention in plain candle ops: kv heads repeated for their query heads, the full
/// score matrix, an additive mask, softmax — in slices of batch rows and heads whose scores
/// stay under ~16 MB (a long sequence's full `B·H·T·S` scores and their gradients would be
/// hundreds of MB each).
pub(crate) fn plain_causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let n = Dims::of(q.shape(), k.shape(), v.shape())?;
    let share = |x: &Tensor| -> Result<Tensor> {
        let rep = n.heads / n.groups;
        x.unsqueeze(2)?.broadcast_as((n.b, n.groups, rep, n.s, n.d))?.reshape((n.b, n.heads, n.s, n.d))
    };
    let (k, v) = (share(k)?, share(v)?);
    // Row i (position P + i) sees the prefix and the rows up to itself.
    let p = n.s - n.t;
    let mask: Vec<f32> =
        (0..n.t).flat_map(|i| (0..n.s).map(move |j| if j <= p + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    let mask = Tensor::from_vec(mask, (n.t, n.s), q.device())?;
    let scores_of = |q: &Tensor, k: &Tensor| (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask);
    let heads_per_slice = ((4 << 20) / (n.t * n.s).max(1)).clamp(1, n.heads);
    if heads_per_slice >= n.heads && n.b * n.heads * n.t * n.s <= 4 << 20 {
        return candle_nn::ops::softmax(&scores_of(q, &k)?, D::Minus1)?.matmul(&v);
    }
    let mut rows = Vec::with_capacity(n.b);
    for bi in 0..n.b {
        let mut parts = Vec::new();
        for h0 in (0..n.heads).step_by(heads_per_slice) {
            let slice = |x: &Tensor| x.narrow(0, bi, 1)?.narrow(1, h0, heads_per_slice.min(n.heads - h0));
            parts.push(candle_nn::ops::softmax(&scores_of(&slice(q)?, &slice(&k)?)?, D::Minus1)?.matmul(&slice(&v)?)?);
        }
        rows.push(Tensor::cat(&parts, 1)?);
    }
    Tensor::cat(&rows, 0)
}

/// Sizes of one call, checked once.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    heads: usize,
    groups: usize,
    t: usize,
    s: usize,
    d: usize,
}

impl Dims {
    fn of(q: &Shape, k: &Shape, v: &Shape) -> Result<Self> {
        let (b, heads, t, d) = q.dims4()?;
        let (kb, groups, s, kd) = k.dims4()?;
        if kb != b || kd != d || v != k || groups == 0 || heads % groups != 0 || s < t {
            candle_core::bail!("causal attention: q {q:?}, k {k:?}, v {v:?} do not fit together");
        }
        Ok(Dims { b, heads, groups, t, s, d })
    }

    /// Offset of `[b, head, row, 0]` in a `[B, heads, rows, D]` buffer.
    fn at(&self, b: usize, head: usize, heads: usize, row: usize, rows: usize) -> usize {
        ((b * heads + head) * rows + row) * self.d
    }
}

struct CausalAttention {
    scale: f32,
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "kaizen-causal-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = Dims::of(ql.shape(), kl.shape(), vl.shape())?;
        let (q, k, v) =
            (f32_slice(qs, ql, self.name())?, f32_slice(ks, kl, self.name())?, f32_slice(vs, vl, self.name())?);
        let mut out = vec![0f32; q.len()];
        let dst = SharedOut(out.as_mut_ptr());
        let rep = n.heads / n.groups;
        let work = n.b * n.heads * n.t * n.s * n.d * 2;
        // A unit is one (batch row, kv head) and the query heads that read it.
        for_chunks(n.b * n.groups, work, |units| {
            let mut scratch = Scratch::new(n, false);
            for u in units {
                let (bi, g) = (u / n.groups, u % n.groups);
                let kv = n.at(bi, g, n.groups, 0, n.s);
                transpose(&k[kv..][..n.s * n.d], n.d, &mut scratch.kt);
                transpose(&v[kv..][..n.s * n.d], n.d, &mut scratch.vt);
                for h in g * rep..(g + 1) * rep {
                    let qa = n.at(bi, h, n.heads, 0, n.t);
                    // SAFETY: unit u owns output rows [bi, g·rep .. (g+1)·rep]; units are disjoint.
                    let o = unsafe { std::slice::from_raw_parts_mut(dst.at(qa), n.t * n.d) };
                    simd::forward_head(&q[qa..][..n.t * n.d], &mut scratch, o, n.d, self.scale);
                }
            }
        });
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _o: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Dims::of(q.shape(), k.shape(), v.shape())?;
        // One op computes all three gradients; q and ∂o travel stacked as its first input.
        let qg = Tensor::cat(&[q, &grad.contiguous()?], 0)?;
        let flat = qg.apply_op3_no_bwd(k, v, &CausalAttentionGrad { scale: self.scale })?;
        let (nq, nk) = (q.elem_count(), k.elem_count());
        let dq = flat.narrow(0, 0, nq)?.reshape(q.shape())?;
        let dk = flat.narrow(0, nq, nk)?.reshape(k.shape())?;
        let dv = flat.narrow(0, nq + nk, nk)?.reshape(k.shape())?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// The backward pass: input 1 is `[q; ∂o]` stacked on the batch axis; the output is `∂q`,
/// `∂k`, `∂v` flattened one after another.
struct CausalAttentionGrad {
    scale: f32,
}

impl CustomOp3 for CausalAttentionGrad {
    fn name(&self) -> &'static str {
        "kaizen-causal-attention-grad"
    }

    fn cpu_fwd(
        &self,
        qgs: &CpuStorage,
        qgl: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b2, heads, t, d) = qgl.shape().dims4()?;
        let n = Dims::of(&Shape::from((b2 / 2, heads, t, d)), kl.shape(), vl.shape())?;
        let (qg, k, v) =
            (f32_slice(qgs, qgl, self.name())?, f32_slice(ks, kl, self.name())?, f32_slice(vs, vl, self.name())?);
        let nq = n.b * n.heads * n.t * n.d;
        let nk = n.b * n.groups * n.s * n.d;
        let (q, go) = qg.split_at(nq);
        let mut out = vec![0f32; nq + 2 * nk];
        let dst = SharedOut(out.as_mut_ptr());
        let rep = n.heads / n.groups;
        let work = n.b * n.heads * n.t * n.s * n.d * 5;
        // A unit is one (batch row, kv head): it owns that head's ∂k, ∂v and its query heads' ∂q.
        for_chunks(n.b * n.groups, work, |units| {
            let mut scratch = Scratch::new(n, true);
            for u in units {
                let (bi, g) = (u / n.groups, u % n.groups);
                let kv = n.at(bi, g, n.groups, 0, n.s);
                transpose(&k[kv..][..n.s * n.d], n.d, &mut scratch.kt);
                transpose(&v[kv..][..n.s * n.d], n.d, &mut scratch.vt);
                scratch.dkt.fill(0.0);
                scratch.dvt.fill(0.0);
                for h in g * rep..(g + 1) * rep {
                    let qa = n.at(bi, h, n.heads, 0, n.t);
                    // SAFETY: unit u owns ∂q[bi, g·rep .. (g+1)·rep], ∂k[bi, g] and ∂v[bi, g].
                    let dq = unsafe { std::slice::from_raw_parts_mut(dst.at(qa), n.t * n.d) };
                    let rows = simd::Rows { q: &q[qa..][..n.t * n.d], go: &go[qa..][..n.t * n.d] };
                    simd::backward_head(&rows, &mut scratch, dq, n.d, self.scale);
                }
                // SAFETY: as above.
                let (dk, dv) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(dst.at(nq + kv), n.s * n.d),
                        std::slice::from_raw_parts_mut(dst.at(nq + nk + kv), n.s * n.d),
                    )
                };
                transpose(&scratch.dkt, n.s, dk);
                transpose(&scratch.dvt, n.s, dv);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(nq + 2 * nk)))
    }
}

/// One worker's buffers: a kv head transposed to `[D, S]` (so every loop below runs along the
/// keys, in full vector lanes, whatever the head size), two rows of `S` scores, and (backward
/// only) that head's key and value gradients, accumulated transposed like it.
struct Scratch {
    kt: Vec<f32>,
    vt: Vec<f32>,
    p: Vec<f32>,
    dp: Vec<f32>,
    dkt: Vec<f32>,
    dvt: Vec<f32>,
}

impl Scratch {
    fn new(n: Dims, backward: bool) -> Self {
        let grads = if backward { n.s * n.d } else { 0 };
        Scratch {
            kt: vec![0.0; n.s * n.d],
            vt: vec![0.0; n.s * n.d],
            p: vec![0.0; n.s],
            dp: vec![0.0; n.s],
            dkt: vec![0.0; grads],
            dvt: vec![0.0; grads],
        }
    }
}

/// `[R, C]` row-major `x` into `[C, R]` `out`, for `C = cols`.
fn transpose(x: &[f32], cols: usize, out: &mut [f32]) {
    let rows = x.len() / cols;
    for (r, row) in x.chunks_exact(cols).enumerate() {
        for (c, &e) in row.iter().enumerate() {
            out[c * rows + r] = e;
        }
    }
}

/// The per-head loops: plain loops along the keys, compiled for AVX-512 and for the baseline.
mod simd {
    use super::super::vmath::{exp, with_avx512};
    use super::Scratch;

    /// One query head's rows for the backward pass: `q` and `∂o`, `[T, D]` each.
    pub struct Rows<'a> {
        pub q: &'a [f32],
        pub go: &'a [f32],
    }

    with_avx512!(pub fn forward_head(q: &[f32], x: &mut Scratch, o: &mut [f32], d: usize, scale: f32) => forward_body);
    with_avx512!(pub fn backward_head(
        r: &Rows,
        x: &mut Scratch,
        dq: &mut [f32],
        d: usize,
        scale: f32,
    ) => backward_body);

    /// `p[j] = softmax_j(scale · q·k_j)` over the keys `j < p.len()`; `kt` is `[D, S]`.
    #[inline(always)]
    fn probabilities(q: &[f32], kt: &[f32], p: &mut [f32], scale: f32) {
        combine(q, kt, p);
        for pj in p.iter_mut() {
            *pj *= scale;
        }
        let max = max(p);
        for pj in p.iter_mut() {
            *pj = exp(*pj - max);
        }
        let inv = 1.0 / sum(p);
        for pj in p.iter_mut() {
            *pj *= inv;
        }
    }

    #[inline(always)]
    fn forward_body(q: &[f32], x: &mut Scratch, o: &mut [f32], d: usize, scale: f32) {
        let (t, s) = (q.len() / d, x.kt.len() / d);
        for i in 0..t {
            let p = &mut x.p[..s - t + i + 1];
            probabilities(&q[i * d..(i + 1) * d], &x.kt, p, scale);
            for (c, oc) in o[i * d..(i + 1) * d].iter_mut().enumerate() {
                *oc = dot(&x.vt[c * s..][..p.len()], p);
            }
        }
    }

    #[inline(always)]
    fn backward_body(r: &Rows, x: &mut Scratch, dq: &mut [f32], d: usize, scale: f32) {
        let (t, s) = (r.q.len() / d, x.kt.len() / d);
        for i in 0..t {
            let keys = s - t + i + 1;
            let (p, ds) = (&mut x.p[..keys], &mut x.dp[..keys]);
            let (qi, gi) = (&r.q[i * d..(i + 1) * d], &r.go[i * d..(i + 1) * d]);
            probabilities(qi, &x.kt, p, scale);
            // dp_j = g·v_j, then ds_j = scale · p_j (dp_j − Σ p dp).
            combine(gi, &x.vt, ds);
            let mean = dot(p, ds);
            for (dsj, &pj) in ds.iter_mut().zip(p.iter()) {
                *dsj = scale * pj * (*dsj - mean);
            }
            for c in 0..d {
                dq[i * d + c] = dot(&x.kt[c * s..][..keys], ds);
                axpy(qi[c], ds, &mut x.dkt[c * s..][..keys]);
                axpy(gi[c], p, &mut x.dvt[c * s..][..keys]);
            }
        }
    }

    /// `out_j = Σ_c a_c m[c][j]` for `j < out.len()`, `m` `[a.len(), S]`: 16 keys at a time in
    /// registers, so `out` is written once instead of read and written per `c`.
    #[inline(always)]
    fn combine(a: &[f32], m: &[f32], out: &mut [f32]) {
        let s = m.len() / a.len();
        let full = out.len() / 16 * 16;
        for j0 in (0..full).step_by(16) {
            let mut acc = [0f32; 16];
            for (c, &ac) in a.iter().enumerate() {
                let row = &m[c * s + j0..c * s + j0 + 16];
                for l in 0..16 {
                    acc[l] += ac * row[l];
                }
            }
            out[j0..j0 + 16].copy_from_slice(&acc);
        }
        for (j, o) in out.iter_mut().enumerate().skip(full) {
            *o = a.iter().enumerate().map(|(c, &ac)| ac * m[c * s + j]).sum();
        }
    }

    /// Dot product in 16 independent lanes (so it vectorises without reassociating floats).
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ar, br) = (ac.remainder(), bc.remainder());
        for (x, y) in ac.zip(bc) {
            for l in 0..16 {
                acc[l] += x[l] * y[l];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for (x, y) in ar.iter().zip(br) {
            s += x * y;
        }
        s
    }

    /// Sum in 16 independent lanes.
    #[inline(always)]
    fn sum(x: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let chunks = x.chunks_exact(16);
        let rest: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for l in 0..16 {
                acc[l] += c[l];
            }
        }
        acc.iter().sum::<f32>() + rest
    }

    #[inline(always)]
    fn max(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 16];
        for chunk in x.chunks(16) {
            for (l, &e) in chunk.iter().enumerate() {
                acc[l] = if e > acc[l] { e } else { acc[l] };
            }
        }
        acc.iter().fold(f32::NEG_INFINITY, |m, &e| if e > m { e } else { m })
    }

    /// `y += a · x`.
    #[inline(always)]
    fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        for (yi, xi) in y.iter_mut().zip(x) {
            *yi += a * xi;
        }
    }
}

#[cfg(test)]
#[path = "causal_attention_tests.rs"]
mod tests;
