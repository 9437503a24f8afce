//! What the fused kernels' tests share.

use candle_core::{Tensor, Var};

/// `a` and `b` agree elementwise within `tol`.
pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32) {
    let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).unwrap();
    let (a, b) = (flat(a), flat(b));
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < tol, "max difference {worst}");
}

/// The gradients of `Σ y ∘ weights` with respect to each of `vars` agree within `tol` for
/// `y = fused` and `y = plain` (the same function two ways). Weighting every output differently
/// exercises every gradient entry.
pub fn assert_same_gradients(fused: &Tensor, plain: &Tensor, weights: &Tensor, vars: &[&Var], tol: f32) {
    let grads = |y: &Tensor| (y * weights).unwrap().sum_all().unwrap().backward().unwrap();
    let (a, b) = (grads(fused), grads(plain));
    for v in vars {
        assert_close(a.get(v.as_tensor()).unwrap(), b.get(v.as_tensor()).unwrap(), tol);
    }
}
