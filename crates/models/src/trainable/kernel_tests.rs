//! What the fused kernels' tests share.

use candle_core::Tensor;

/// `a` and `b` agree elementwise within `tol`.
pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32) {
    let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).unwrap();
    let (a, b) = (flat(a), flat(b));
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < tol, "max difference {worst}");
}
