//! How well a Q-function ranks: success-prediction AUC and top-1 ranking accuracy.

/// Area under the ROC curve of `scores` predicting `labels` (true = success), by the
/// Mann–Whitney statistic: the share of (success, failure) pairs in which the success scores
/// higher, ties counting one half. `None` when either class is missing.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let pos: Vec<f32> = scores.iter().zip(labels).filter(|(_, &l)| l).map(|(&s, _)| s).collect();
    let neg: Vec<f32> = scores.iter().zip(labels).filter(|(_, &l)| !l).map(|(&s, _)| s).collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut wins = 0.0f64;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (pos.len() * neg.len()) as f64)
}

/// Top-1 ranking accuracy: over states whose logged actions have both outcomes, the share in
/// which the highest-scored action is a successful one. Each group is `(score, success)` for
/// the actions taken from one state. `None` when no group has both outcomes.
pub fn top1_accuracy(groups: &[Vec<(f32, bool)>]) -> Option<f64> {
    let mixed = mixed_groups(groups);
    if mixed.is_empty() {
        return None;
    }
    let hits = mixed.iter().filter(|g| g.iter().max_by(|a, b| a.0.total_cmp(&b.0)).is_some_and(|best| best.1)).count();
    Some(hits as f64 / mixed.len() as f64)
}

/// The groups whose actions have both outcomes: the only ones top-1 accuracy can be computed
/// over (a figure over few of them says little; report their number with it).
pub fn mixed_groups(groups: &[Vec<(f32, bool)>]) -> Vec<&Vec<(f32, bool)>> {
    groups.iter().filter(|g| g.iter().any(|x| x.1) && g.iter().any(|x| !x.1)).collect()
}

/// Wilson score interval for a success rate `k / n` at `z` (1.96 for 95%):
/// `(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`. Stays inside [0, 1] and is sound at
/// 0 or n successes, unlike the normal approximation.
pub fn wilson_interval(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let d = 1.0 + z2 / n;
    (((centre - half) / d).max(0.0), ((centre + half) / d).min(1.0))
}

/// The paired difference of two success rates on the same tasks, `d̄ = mean(a_i − b_i)`, with
/// its normal-approximation interval `d̄ ± z·s_d/√n` (`s_d` the sample standard deviation of
/// the per-task differences), clamped to [−1, 1]. Paired, so a method that wins on most tasks
/// shows it even where the two rates' own intervals overlap. `None` for fewer than 2 tasks
/// or slices of different lengths.
pub fn paired_difference(a: &[bool], b: &[bool], z: f64) -> Option<(f64, f64, f64)> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(&x, &y)| x as u8 as f64 - y as u8 as f64).collect();
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half = z * (var / n).sqrt();
    Some((mean, (mean - half).max(-1.0), (mean + half).min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_difference_by_hand() {
        // a = 1,1,1,0 and b = 0,1,0,0: d = 1,0,1,0, d̄ = 0.5, s_d = √(4·0.25/3) = 0.57735,
        // half-width 1.96 · 0.57735 / 2 = 0.565803.
        let (m, lo, hi) = paired_difference(&[true, true, true, false], &[false, true, false, false], 1.96).unwrap();
        assert!((m - 0.5).abs() < 1e-12 && (lo + 0.065803).abs() < 1e-5 && (hi - 1.0).abs() < 1e-12, "{lo} {hi}");
        // Identical outcomes: no difference, no spread.
        assert_eq!(paired_difference(&[true, false, true], &[true, false, true], 1.96), Some((0.0, 0.0, 0.0)));
        assert_eq!(paired_difference(&[true], &[false], 1.96), None);
    }

    #[test]
    fn wilson_by_hand() {
        // 8 of 10 at z = 1.96: (0.8 + 0.19208 ± 1.96·√(0.016 + 0.0009604)) / 1.38416 = (0.4902, 0.9433).
        let (lo, hi) = wilson_interval(8, 10, 1.96);
        assert!((lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson_interval(0, 20, 1.96);
        assert!(lo == 0.0 && (hi - 0.1611).abs() < 1e-3, "{hi}");
        assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn auc_by_hand() {
        // Successes 0.9, 0.4; failures 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
        assert_eq!(auc(&[0.9, 0.5, 0.4, 0.1], &[true, false, true, false]), Some(0.75));
        assert_eq!(auc(&[0.3, 0.3], &[true, false]), Some(0.5));
        assert_eq!(auc(&[0.3], &[true]), None);
    }

    #[test]
    fn top1_counts_only_states_with_both_outcomes() {
        let groups = vec![
            vec![(0.9, true), (0.2, false)],               // right
            vec![(0.1, true), (0.6, false)],               // wrong
            vec![(0.5, true), (0.4, true)],                // one outcome: skipped
            vec![(0.3, false), (0.8, true), (0.1, false)], // right
        ];
        assert_eq!(top1_accuracy(&groups), Some(2.0 / 3.0));
        assert_eq!(top1_accuracy(&groups[2..3]), None);
    }
}
