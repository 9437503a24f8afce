//! The projections `y = x Wᵀ` (and `r + x Wᵀ`, a projection onto the residual stream) as one CPU
//! op each with its own backward pass. Over candle's matmul they (1) run on candle's own worker
//! pool, split by output rows, instead of handing the product to a second (rayon) pool whose
//! threads fight the first pool's spinning workers for the cores; (2) write their output
//! without zeroing it first; (3) skip the weight gradient `gᵀ x` when the weight is frozen — a
//! LoRA base's — where candle computes and keeps it for every projection of every layer;
//! (4) add the residual in the product itself (gemm accumulating onto a copy of it), so the
//! residual stream costs no separate add op, nor that op's gradient pass. Devices other than
//! the CPU take `x.matmul(&w.t())` (`+ r`).

use super::matmul::{matmul, MatMut, MatRef};
use super::row_ops::f32_slice;
use crate::kernels::parallel::{Fresh, Parts};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// `x Wᵀ` for packed rows `x: [N, in]` and a weight `w: [out, in]`: `[N, out]`. Backward:
/// `∂x = g W`, `∂W = gᵀ x` (each only when its input needs a gradient).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.matmul(&w.t()?);
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, Linear)
}

/// `r + x Wᵀ` for a residual `r: [N, out]`; backward as `linear`'s, plus `∂r = g`.
pub fn linear_add(r: &Tensor, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return r + x.matmul(&w.t()?)?;
    }
    r.contiguous()?.apply_op3(&x.contiguous()?, &w.contiguous()?, LinearAdd)
}

struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "kaizen-linear"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        Product::XWt.run(f32_slice(xs, xl, self.name())?, xl, f32_slice(ws, wl, self.name())?, wl, None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        input_grads(x, w, g)
    }
}

struct LinearAdd;

impl CustomOp3 for LinearAdd {
    fn name(&self) -> &'static str {
        "kaizen-linear-add"
    }

    fn cpu_fwd(
        &self,
        rs: &CpuStorage,
        rl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let r = f32_slice(rs, rl, self.name())?;
        let (x, w) = (f32_slice(xs, xl, self.name())?, f32_slice(ws, wl, self.name())?);
        let (n, out) = (xl.shape().dims2()?.0, wl.shape().dims2()?.0);
        if rl.shape().dims2()? != (n, out) {
            candle_core::bail!("linear: residual {:?} does not fit {:?} · {:?}ᵀ", rl.shape(), xl.shape(), wl.shape());
        }
        Product::XWt.run(x, xl, w, wl, Some(r))
    }

    fn bwd(
        &self,
        _r: &Tensor,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = input_grads(x, w, g)?;
        Ok((Some(g.clone()), dx, dw))
    }
}

/// `∂x = g W` and `∂W = gᵀ x`, each only when that input needs a gradient.
fn input_grads(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let g = g.contiguous()?;
    let dx = if x.track_op() { Some(g.apply_op2_no_bwd(w, &Product::GW)?) } else { None };
    let dw = if w.track_op() { Some(g.apply_op2_no_bwd(x, &Product::GtX)?) } else { None };
    Ok((dx, dw))
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
        self.run(f32_slice(as_, al, self.name())?, al, f32_slice(bs, bl, self.name())?, bl, None)
    }
}

impl Product {
    /// `base + a ∘ b` (`base` zero when absent), split by output rows across candle's pool.
    fn run(self, a: &[f32], al: &Layout, b: &[f32], bl: &Layout, base: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
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
            let out = base.map_or_else(|| vec![0.0; m * n], <[f32]>::to_vec);
            return Ok((CpuStorage::F32(out), Shape::from((m, n))));
        }
        // Every float of the output is written by exactly one part below — copied from `base`
        // or written by gemm (depth k > 0, no accumulation) — so it is never zeroed first.
        let mut out = Fresh::new(m * n);
        let dst = out.shared();
        // One part per thread: each gemm call packs (re-lays out) the whole of `b`.
        Parts::per_thread(m).run(m * n * k, |_, rows| {
            let at = rows.start * n;
            if let Some(base) = base {
                let from = &base[at..at + rows.len() * n];
                // SAFETY: these output rows belong to this part only, inside the m·n floats
                // reserved above; `from` (an input) does not overlap them.
                unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), dst.at(at), from.len()) };
            }
            // SAFETY: as above.
            let part = unsafe { MatMut::strided(dst.at(at), rows.len(), n, n) };
            matmul(part, a.row_range(rows), b, 1.0, base.is_some());
        });
        // SAFETY: the parts cover rows 0..m, so all m·n floats are written (see above).
        Ok((CpuStorage::F32(unsafe { out.into_vec() }), Shape::from((m, n))))
    }
}

#[cfg(test)]
#[path = "linear_tests.rs"]
mod tests;
