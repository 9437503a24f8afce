//! Unit tests of `advantages` on hand-computed numbers.

use super::*;

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn grpo_by_hand() {
    // r = [1, 0, 0, 1]: mean 0.5, sample var = 4·0.25/3 = 1/3, std = 0.577350.
    // Â = ±0.5 / 0.577350 = ±0.866025.
    close(&grpo(&[1., 0., 0., 1.], 0.0), &[0.866025, -0.866025, -0.866025, 0.866025]);
    // r = [1, 0, 0, 0]: mean 0.25, var = (0.5625 + 3·0.0625)/3 = 0.25, std 0.5 →
    // Â = [1.5, −0.5, −0.5, −0.5].
    close(&grpo(&[1., 0., 0., 0.], 0.0), &[1.5, -0.5, -0.5, -0.5]);
    // All equal: no signal; ε keeps it finite.
    close(&grpo(&[1., 1., 1.], 1e-6), &[0., 0., 0.]);
    close(&grpo(&[0.7], 1e-6), &[0.]);
}

#[test]
fn dr_grpo_by_hand() {
    close(&dr_grpo(&[1., 0., 0., 0.]), &[0.75, -0.25, -0.25, -0.25]);
    close(&dr_grpo(&[0., 0.]), &[0., 0.]);
}

#[test]
fn adpo_scale_and_clip_by_hand() {
    // p̂ = 0.3 → s = 0.6; p̂ = 0.55 → 0.6 + 0.4·0.5 = 0.8; p̂ ≥ 0.8 → 1.
    assert!((adpo_scale(0.3, 0.6) - 0.6).abs() < 1e-6);
    assert!((adpo_scale(0.55, 0.6) - 0.8).abs() < 1e-6);
    assert!((adpo_scale(0.9, 0.6) - 1.0).abs() < 1e-6);
    assert!((adpo_scale(0.1, 0.6) - 0.6).abs() < 1e-6);
    // p̂ = 0.8 → ε; p̂ = 0.55 → ε + 0.05; p̂ ≤ 0.3 → ε + 0.1.
    assert!((adpo_eps_high(0.8, 0.2) - 0.2).abs() < 1e-6);
    assert!((adpo_eps_high(0.55, 0.2) - 0.25).abs() < 1e-6);
    assert!((adpo_eps_high(0.1, 0.2) - 0.3).abs() < 1e-6);
}

#[test]
fn self_consistency_by_hand() {
    let a = |xs: &[Option<&str>]| xs.iter().map(|x| x.map(String::from)).collect::<Vec<_>>();
    let exact = |x: &str, y: &str| x == y;
    assert_eq!(
        self_consistency(&a(&[Some("4"), Some("5"), Some("4"), None, Some("4")]), exact),
        Some(("4".to_string(), 0.6))
    );
    // A tie goes to the answer seen first.
    assert_eq!(
        self_consistency(&a(&[Some("b"), Some("a"), Some("a"), Some("b")]), exact),
        Some(("b".to_string(), 0.5))
    );
    assert_eq!(self_consistency(&a(&[None, None]), exact), None);
    // Compared as the env's numeric checker compares: "1,234", "1234.0" and "1234" are one
    // answer (3 of 5, p̂ = 0.6), where raw strings would split them three ways (p̂ = 0.2 each,
    // and "12" would tie).
    let numeric = kaizen_core::Checker::Numeric { rel_tol: 1e-6, abs_tol: 0.0 };
    let votes = a(&[Some("1,234"), Some("12"), Some("1234.0"), Some("1234"), None]);
    assert_eq!(self_consistency(&votes, |x, y| numeric.check(x, y)), Some(("1,234".to_string(), 0.6)));
    assert_eq!(self_consistency(&votes, exact), Some(("1,234".to_string(), 0.2)));
}
