//! The projections `y = x Wᵀ` as one CPU op with its own backward pass. Over candle's matmul it
//! (1) runs on candle's own worker pool, split by output rows, instead of handing the product
//! to a second (rayon) pool whose threads fight the first pool's spinning workers for the
//! cores; (2) writes its output without zeroing it first; (3) skips the weight gradient
//! `gᵀ x` when the weight is frozen — a LoRA base's — where candle computes and keeps it for
//! every projection of every layer. Devices other than the CPU take `x.matmul(&w.t())`.

use super::matmul::{matmul, MatMut, MatRef};
use super::row_ops::f32_slice;
use crate::parallel::{for_chunks, SharedOut};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `x Wᵀ` for packed rows `x: [N, in]` and a weight `w: [out, in]`: `[N, out]`. Backward:
/// `∂x = g W`, `∂W = gᵀ x` (each only when its input needs a gradient).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.matmul(&w.t()?);
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, Linear)
}

struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "kaizen-linear"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        Product::XWt.cpu_fwd(xs, xl, ws, wl)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dx = if x.track_op() { Some(g.apply_op2_no_bwd(w, &Product::GW)?) } else { None };
        let dw = if w.track_op() { Some(g.apply_op2_no_bwd(x, &Product::GtX)?) } else { None };
        Ok((dx, dw))
    }
}

/// The three products of a projection and its gradients, each `a ∘ b` of two row-major
/// matrices with the transposes its name says.
#[derive(Clone, Copy)]
enum Product {
    /// `x [N, in] · (w [out, in])ᵀ`.
    XWt,
    /// `g [N, out] · w [out, in]`.
    GW,
    /// `(g [N, out])ᵀ · x [N, in]`.
    GtX,
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "kaizen-linear-product"
    }

    fn cpu_fwd(&self, as_: &CpuStorage, al: &Layout, bs: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (f32_slice(as_, al, self.name())?, f32_slice(bs, bl, self.name())?);
        let ((ar, ac), (br, bc)) = (al.shape().dims2()?, bl.shape().dims2()?);
        // (m, k, n) of `a ∘ b`, and whether the inner sizes agree.
        let (m, k, n, fits) = match self {
            Product::XWt => (ar, ac, br, ac == bc),
            Product::GW => (ar, ac, bc, ac == br),
            Product::GtX => (ac, ar, bc, ar == br),
        };
        if !fits {
            candle_core::bail!("linear: {:?} and {:?} do not multiply", al.shape(), bl.shape());
        }
        let a = match self {
            Product::GtX => MatRef::rows(a, k, m).t(),
            _ => MatRef::rows(a, m, k),
        };
        let b = match self {
            Product::XWt => MatRef::rows(b, n, k).t(),
            _ => MatRef::rows(b, k, n),
        };
        if k == 0 {
            return Ok((CpuStorage::F32(vec![0.0; m * n]), Shape::from((m, n))));
        }
        // Every float of the output is written by exactly one gemm call below (depth k > 0
        // and no accumulation), so it is never zeroed first.
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        let dst = SharedOut(out.as_mut_ptr());
        // One part per thread: each gemm call packs (re-lays out) the whole of `b`, so fewer,
        // larger calls are faster than finely balanced small ones.
        let rows_per = m.div_ceil(candle_core::utils::get_num_threads().max(1));
        for_chunks(m.div_ceil(rows_per), m * n * k, |parts| {
            let rows = parts.start * rows_per..(parts.end * rows_per).min(m);
            // SAFETY: these output rows belong to this chunk only, inside the m·n floats
            // reserved above.
            let part = unsafe { MatMut::strided(dst.at(rows.start * n), rows.len(), n, n) };
            matmul(part, a.row_range(rows), b, 1.0, false);
        });
        // SAFETY: the chunks cover rows 0..m, so all m·n floats are written (see above).
        unsafe { out.set_len(m * n) };
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

#[cfg(test)]
#[path = "linear_tests.rs"]
mod tests;
