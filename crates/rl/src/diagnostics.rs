//! The figures every training step reports (`METHODS.md`, "Diagnostics").

use crate::axpo::RolloutView;
use kaizen_core::trajectory::is_success;

/// Unbiased pass@k from `n` samples of which `c` are correct (Chen et al. 2021):
/// `pass@k = 1 − C(n − c, k) / C(n, k) = 1 − Π_{i = n−c+1}^{n} (1 − k / i)`.
/// `k > n` is clamped to `n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    let k = k.min(n);
    if n == 0 || k == 0 {
        return 0.0;
    }
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product::<f64>()
}

/// Share of rollouts that called a tool.
pub fn tool_use_rate(groups: &[Vec<RolloutView>]) -> f64 {
    let all: Vec<&RolloutView> = groups.iter().flatten().collect();
    if all.is_empty() {
        return 0.0;
    }
    all.iter().filter(|r| r.used_tool).count() as f64 / all.len() as f64
}

/// Among tasks with a non-empty tool-using subgroup, the share where that subgroup is all
/// wrong (AXPO's trigger).
pub fn all_wrong_tool_rate(groups: &[Vec<RolloutView>]) -> f64 {
    let with_tools: Vec<&Vec<RolloutView>> = groups.iter().filter(|g| g.iter().any(|r| r.used_tool)).collect();
    if with_tools.is_empty() {
        return 0.0;
    }
    with_tools.iter().filter(|g| g.iter().filter(|r| r.used_tool).all(|r| !is_success(r.reward))).count() as f64
        / with_tools.len() as f64
}

/// Share of the step's training rows (rollouts and AXPO continuations) whose advantage — the
/// one actually trained on, after AXPO's prefix credit or ADPO's scaling — is zero: rows that
/// carry no learning signal.
pub fn zero_advantage_rate(advantages: &[f32]) -> f64 {
    if advantages.is_empty() {
        return 0.0;
    }
    advantages.iter().filter(|&&a| a == 0.0).count() as f64 / advantages.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_by_hand() {
        // n = 4, c = 1: pass@1 = 1/4; pass@2 = 1 − C(3,2)/C(4,2) = 1 − 3/6 = 0.5.
        assert!((pass_at_k(4, 1, 1) - 0.25).abs() < 1e-12);
        assert!((pass_at_k(4, 1, 2) - 0.5).abs() < 1e-12);
        // n = 5, c = 2, k = 2: 1 − C(3,2)/C(5,2) = 1 − 3/10 = 0.7.
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(4, 0, 4), 0.0);
        assert_eq!(pass_at_k(4, 3, 2), 1.0);
        assert_eq!(pass_at_k(0, 0, 1), 0.0);
    }

    #[test]
    fn rates_by_hand() {
        let v = |reward, used_tool| RolloutView { reward, used_tool };
        let groups = vec![
            vec![v(0., true), v(1., false)],  // tools all wrong
            vec![v(1., true), v(0., true)],   // a tool rollout right
            vec![v(0., false), v(0., false)], // no tools
        ];
        assert!((tool_use_rate(&groups) - 3.0 / 6.0).abs() < 1e-12);
        assert!((all_wrong_tool_rate(&groups) - 0.5).abs() < 1e-12);
        // Advantages as trained on: 2 of 5 rows are zero.
        assert!((zero_advantage_rate(&[0.0, 1.1547, -0.57735, 0.0, -0.57735]) - 0.4).abs() < 1e-12);
        assert_eq!(zero_advantage_rate(&[]), 0.0);
    }
}
