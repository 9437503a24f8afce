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

use super::matmul::{matmul, MatMut, MatRef};
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

/// Query rows per block. A block's scores `[BLOCK, keys]` stay in a worker's scratch, and keys
/// right of the block's last row are never computed, so a causal head costs ~1.25× its lower
/// triangle at T = 256 (blocks of 64: 64·(64 + 128 + 192 + 256) products for 256·257/2 needed).
const BLOCK: usize = 64;

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
        // A unit is one (batch row, kv head) and the query heads that read it.
        for_chunks(n.b * n.groups, n.work(2), |units| {
            let mut scores = vec![0f32; BLOCK.min(n.t) * n.s];
            for u in units {
                let (bi, g) = (u / n.groups, u % n.groups);
                let kv = n.at(bi, g, n.groups, 0, n.s);
                let (kh, vh) = (&k[kv..][..n.s * n.d], &v[kv..][..n.s * n.d]);
                for h in g * rep..(g + 1) * rep {
                    let qa = n.at(bi, h, n.heads, 0, n.t);
                    // SAFETY: unit u owns output rows [bi, g·rep .. (g+1)·rep]; units are disjoint.
                    let o = unsafe { std::slice::from_raw_parts_mut(dst.at(qa), n.t * n.d) };
                    for block in n.blocks() {
                        let (m, keys, d) = (block.rows, block.keys, n.d);
                        let qb = MatRef::rows(&q[qa + block.first * d..], m, d);
                        let p = &mut scores[..m * keys];
                        matmul(MatMut::rows(p, m, keys), qb, MatRef::rows(kh, keys, d).t(), self.scale, false);
                        rows::softmax(p, keys, block.first_keys);
                        let ob = MatMut::rows(&mut o[block.first * d..], m, d);
                        matmul(ob, MatRef::rows(p, m, keys), MatRef::rows(vh, keys, d), 1.0, false);
                    }
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
/// `∂k`, `∂v` flattened one after another. Per block of query rows, in matrix form
/// (`P` the block's probabilities, recomputed; `G` its rows of `∂o`):
/// `dP = G Vᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, `∂Q = scale · dS K`,
/// `∂K += scale · dSᵀ Q`, `∂V += Pᵀ G`.
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
        // ∂k and ∂v accumulate over query heads and blocks, so they start at zero.
        let mut out = vec![0f32; nq + 2 * nk];
        let dst = SharedOut(out.as_mut_ptr());
        let rep = n.heads / n.groups;
        // A unit is one (batch row, kv head): it owns that head's ∂k, ∂v and its query heads' ∂q.
        for_chunks(n.b * n.groups, n.work(5), |units| {
            let mut probs = vec![0f32; BLOCK.min(n.t) * n.s];
            let mut dprobs = vec![0f32; BLOCK.min(n.t) * n.s];
            for u in units {
                let (bi, g) = (u / n.groups, u % n.groups);
                let kv = n.at(bi, g, n.groups, 0, n.s);
                let (kh, vh) = (&k[kv..][..n.s * n.d], &v[kv..][..n.s * n.d]);
                // SAFETY: unit u owns ∂q[bi, g·rep .. (g+1)·rep], ∂k[bi, g] and ∂v[bi, g].
                let (dk, dv) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(dst.at(nq + kv), n.s * n.d),
                        std::slice::from_raw_parts_mut(dst.at(nq + nk + kv), n.s * n.d),
                    )
                };
                for h in g * rep..(g + 1) * rep {
                    let qa = n.at(bi, h, n.heads, 0, n.t);
                    // SAFETY: as above.
                    let dq = unsafe { std::slice::from_raw_parts_mut(dst.at(qa), n.t * n.d) };
                    for block in n.blocks() {
                        let (m, keys, d, scale) = (block.rows, block.keys, n.d, self.scale);
                        let at = qa + block.first * d;
                        let (qb, gb) = (MatRef::rows(&q[at..], m, d), MatRef::rows(&go[at..], m, d));
                        let (kb, vb) = (MatRef::rows(kh, keys, d), MatRef::rows(vh, keys, d));
                        let (p, ds) = (&mut probs[..m * keys], &mut dprobs[..m * keys]);
                        matmul(MatMut::rows(p, m, keys), qb, kb.t(), scale, false);
                        rows::softmax(p, keys, block.first_keys);
                        matmul(MatMut::rows(ds, m, keys), gb, vb.t(), 1.0, false);
                        rows::softmax_grad(p, ds, keys);
                        let (p, ds) = (MatRef::rows(p, m, keys), MatRef::rows(ds, m, keys));
                        matmul(MatMut::rows(&mut dq[block.first * d..], m, d), ds, kb, scale, false);
                        matmul(MatMut::rows(dk, keys, d), ds.t(), qb, scale, true);
                        matmul(MatMut::rows(dv, keys, d), p.t(), gb, 1.0, true);
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(nq + 2 * nk)))
    }
}

/// One block of query rows: `rows` rows from row `first`, reading keys `0 .. keys`; its first
/// row sees `first_keys` of them and each next row one more.
struct Block {
    first: usize,
    rows: usize,
    keys: usize,
    first_keys: usize,
}

impl Dims {
    fn blocks(&self) -> impl Iterator<Item = Block> {
        let (t, prefix) = (self.t, self.s - self.t);
        (0..t).step_by(BLOCK).map(move |first| {
            let rows = BLOCK.min(t - first);
            Block { first, rows, keys: prefix + first + rows, first_keys: prefix + first + 1 }
        })
    }

    /// A rough cost of a pass with `products` score-sized products, for `for_chunks`.
    fn work(&self, products: usize) -> usize {
        self.b * self.heads * self.t * self.s * self.d * products
    }
}

/// The row-wise steps between the products: plain loops along the keys, compiled for AVX-512
/// and for the baseline.
mod rows {
    use super::super::vmath::{exp, with_avx512};

    with_avx512!(pub fn softmax(s: &mut [f32], keys: usize, first_keys: usize) => softmax_body);
    with_avx512!(pub fn softmax_grad(p: &[f32], dp: &mut [f32], keys: usize) => softmax_grad_body);

    /// Each row of `s` (`keys` wide), row `r` seeing its first `first_keys + r` entries:
    /// `p_j = e^{s_j − max s} / Σ_l e^{s_l − max s}` over those, `0` for the rest.
    #[inline(always)]
    fn softmax_body(s: &mut [f32], keys: usize, first_keys: usize) {
        for (r, row) in s.chunks_exact_mut(keys).enumerate() {
            let (seen, masked) = row.split_at_mut((first_keys + r).min(keys));
            let max = max(seen);
            for x in seen.iter_mut() {
                *x = exp(*x - max);
            }
            let inv = 1.0 / sum(seen);
            for x in seen.iter_mut() {
                *x *= inv;
            }
            masked.fill(0.0);
        }
    }

    /// Each row, in place: `dp_j ← p_j (dp_j − Σ_l p_l dp_l)` (softmax's backward pass).
    #[inline(always)]
    fn softmax_grad_body(p: &[f32], dp: &mut [f32], keys: usize) {
        for (pr, dr) in p.chunks_exact(keys).zip(dp.chunks_exact_mut(keys)) {
            let mean = dot(pr, dr);
            for (d, &pj) in dr.iter_mut().zip(pr) {
                *d = pj * (*d - mean);
            }
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
}

#[cfg(test)]
#[path = "causal_attention_tests.rs"]
mod tests;
