//! Attention for decoding: one new query position per sequence against its cached keys and
//! values, `o = Σ_j softmax_j(q·k_j · scale) v_j`, with grouped-query heads (`rep` query heads
//! read one kv head). Written as one op because for a single query the generic path (a gemm per
//! head, a softmax, reshapes) costs more in overhead than in arithmetic.

use crate::kernels::parallel::{for_chunks, SharedOut};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape};

pub struct DecodeAttention {
    pub scale: f32,
    /// Which keys each query reads: query batch item i reads rows `spans[i]` of the key
    /// buffer. Rows of a KV cache hold sequences at different positions.
    pub spans: Vec<KeySpan>,
}

/// Positions `start .. end` of key-buffer row `row`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpan {
    pub row: usize,
    pub start: usize,
    pub end: usize,
}

/// `q·k` for each cached key row, scaled, into `scores`; returns the maximum.
fn scores_into(q: &[f32], k: &[f32], base: usize, stride: usize, scale: f32, scores: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if q.len() % 16 == 0 && crate::kernels::q8_matmul::avx512_available() {
        // SAFETY: the CPU has AVX-512F (checked above) and every row lies inside `k`.
        return unsafe { avx512::scores_into(q, k, base, stride, scale, scores) };
    }
    let d = q.len();
    let mut max = f32::NEG_INFINITY;
    for (j, s) in scores.iter_mut().enumerate() {
        *s = dot(q, &k[base + j * stride..base + j * stride + d]) * scale;
        max = max.max(*s);
    }
    max
}

/// `o += w · v` over rows `v_j` with weights `w_j`.
fn weighted_sum_into(w: &[f32], v: &[f32], base: usize, stride: usize, o: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if o.len() % 16 == 0 && crate::kernels::q8_matmul::avx512_available() {
        // SAFETY: as above.
        return unsafe { avx512::weighted_sum_into(w, v, base, stride, o) };
    }
    let d = o.len();
    for (j, wj) in w.iter().enumerate() {
        for (oi, vi) in o.iter_mut().zip(&v[base + j * stride..base + j * stride + d]) {
            *oi += wj * vi;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores_into(q: &[f32], k: &[f32], base: usize, stride: usize, scale: f32, scores: &mut [f32]) -> f32 {
        let d = q.len();
        assert!(scores.is_empty() || base + (scores.len() - 1) * stride + d <= k.len());
        let mut max = f32::NEG_INFINITY;
        for (j, s) in scores.iter_mut().enumerate() {
            let kr = k.as_ptr().add(base + j * stride);
            let mut acc = _mm512_setzero_ps();
            for c in (0..d).step_by(16) {
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(q.as_ptr().add(c)), _mm512_loadu_ps(kr.add(c)), acc);
            }
            *s = _mm512_reduce_add_ps(acc) * scale;
            max = max.max(*s);
        }
        max
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn weighted_sum_into(w: &[f32], v: &[f32], base: usize, stride: usize, o: &mut [f32]) {
        let d = o.len();
        assert!(w.is_empty() || base + (w.len() - 1) * stride + d <= v.len());
        for c in (0..d).step_by(16) {
            let mut acc = _mm512_loadu_ps(o.as_ptr().add(c));
            for (j, &wj) in w.iter().enumerate() {
                acc = _mm512_fmadd_ps(_mm512_set1_ps(wj), _mm512_loadu_ps(v.as_ptr().add(base + j * stride + c)), acc);
            }
            _mm512_storeu_ps(o.as_mut_ptr().add(c), acc);
        }
    }
}

/// Dot product with 8 independent accumulators (the portable path).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    s
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "kaizen-decode-attention"
    }

    /// `q: [b, heads, 1, d]` contiguous; `k, v: [rows, kv_heads, capacity, d]` with unit last
    /// stride (the KV cache's buffers), read as `spans` says. Returns `[b, heads, 1, d]`.
    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (qs, ks, vs) else {
            candle_core::bail!("decode attention: f32 only");
        };
        let (b, nh, one, d) = ql.shape().dims4()?;
        let (k_rows, nkv, cap, kd) = kl.shape().dims4()?;
        if one != 1 || kd != d || vl.shape() != kl.shape() || nh % nkv != 0 || self.spans.len() != b {
            candle_core::bail!("decode attention: shapes {:?} {:?} {:?}", ql.shape(), kl.shape(), vl.shape());
        }
        if let Some(s) = self.spans.iter().find(|s| s.row >= k_rows || s.start >= s.end || s.end > cap) {
            candle_core::bail!("decode attention: span {s:?} outside keys {:?}", kl.shape());
        }
        let Some((q0, _)) = ql.contiguous_offsets() else { candle_core::bail!("decode attention: q not contiguous") };
        let (ks_, vs_) = (kl.stride(), vl.stride());
        if ks_[3] != 1 || vs_[3] != 1 {
            candle_core::bail!("decode attention: k/v rows must be contiguous");
        }
        let rep = nh / nkv;
        let mut out = vec![0f32; b * nh * d];
        let dst = SharedOut(out.as_mut_ptr());
        let units = b * nh;
        let keys: usize = self.spans.iter().map(|s| s.end - s.start).sum();
        for_chunks(units, keys * nh * d * 2, |range| {
            let mut all_scores = vec![0f32; self.spans.iter().map(|s| s.end - s.start).max().unwrap_or(0)];
            for u in range {
                let (bi, h) = (u / nh, u % nh);
                let span = self.spans[bi];
                let scores = &mut all_scores[..span.end - span.start];
                let kvh = h / rep;
                let qv = &q[q0 + u * d..q0 + (u + 1) * d];
                let kbase = kl.start_offset() + span.row * ks_[0] + kvh * ks_[1] + span.start * ks_[2];
                let vbase = vl.start_offset() + span.row * vs_[0] + kvh * vs_[1] + span.start * vs_[2];
                let max = scores_into(qv, k, kbase, ks_[2], self.scale, scores);
                let mut sum = 0f32;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let inv = 1.0 / sum;
                for s in scores.iter_mut() {
                    *s *= inv;
                }
                // SAFETY: unit u owns out[u*d .. (u+1)*d]; units are disjoint across workers.
                let o = unsafe { std::slice::from_raw_parts_mut(dst.at(u * d), d) };
                weighted_sum_into(scores, v, vbase, vs_[2], o);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, nh, 1, d))))
    }
}

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;
