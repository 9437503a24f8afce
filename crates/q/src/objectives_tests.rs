//! Unit tests of `objectives` (kept in their own file beside it).

use super::*;

#[test]
fn targets_by_hand() {
    // Three steps, reward 1, γ = 0.9: 0.81, 0.9, 1.
    let g = mc_returns(3, 1.0, 0.9);
    assert!((g[0] - 0.81).abs() < 1e-6 && (g[1] - 0.9).abs() < 1e-6 && g[2] == 1.0);
    assert_eq!(mc_returns(2, 0.0, 0.9), vec![0.0, 0.0]);
    // r = 0, γ = 0.9, next candidates scored 0.2, 0.7, 0.5 → 0.63.
    assert!((td_target(0.0, false, 0.9, &[0.2, 0.7, 0.5]) - 0.63).abs() < 1e-6);
    assert_eq!(td_target(1.0, true, 0.9, &[5.0]), 1.0);
    assert_eq!(td_target(0.0, false, 0.9, &[]), 0.0);
    // τ = 0.7: u = 2 → 0.7·4 = 2.8; u = −2 → 0.3·4 = 1.2.
    assert!((expectile_loss(2.0, 0.7) - 2.8).abs() < 1e-6);
    assert!((expectile_loss(-2.0, 0.7) - 1.2).abs() < 1e-6);
    assert!((iql_q_target(0.0, false, 0.9, 0.5) - 0.45).abs() < 1e-6);
    assert_eq!(iql_q_target(1.0, true, 0.9, 0.5), 1.0);
}

#[test]
fn the_expectile_minimiser_is_an_upper_expectile() {
    // argmin_v Σ L_τ(x − v) over {0, 1} is τ for τ ∈ (0, 1): τ(1−v)² = (1−τ)v² at v = τ.
    let xs = [0.0f32, 1.0];
    let best = (0..=1000)
        .map(|i| i as f32 / 1000.0)
        .min_by(|a, b| {
            let f = |v: f32| xs.iter().map(|x| expectile_loss(x - v, 0.8)).sum::<f32>();
            f(*a).total_cmp(&f(*b))
        })
        .unwrap();
    assert!((best - 0.8).abs() < 2e-3, "{best}");
}
