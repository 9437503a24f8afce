//! Unit tests of `vmath` (kept in their own file beside it).

use super::*;

#[test]
fn exp_agrees_with_libm() {
    // Over [−80, 80] in steps that hit the rounding boundaries of n.
    let mut worst = 0f32;
    for i in -80_000..=80_000 {
        let x = i as f32 * 0.001;
        let (got, want) = (exp(x), x.exp());
        worst = worst.max((got - want).abs() / want);
    }
    assert!(worst < 1e-6, "worst relative error {worst}");
    assert_eq!(exp(0.0), 1.0);
    assert!(exp(-1000.0) < 1e-37);
}

#[test]
fn sigmoid_by_hand() {
    // σ(0) = 1/2; σ(2) = 1 / (1 + e⁻²) = 0.880797; σ(−2) = 0.119203.
    assert_eq!(sigmoid(0.0), 0.5);
    assert!((sigmoid(2.0) - 0.880797).abs() < 1e-6 && (sigmoid(-2.0) - 0.119203).abs() < 1e-6);
}
