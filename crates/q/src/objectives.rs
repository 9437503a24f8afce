//! Offline Q-learning targets and losses on logged transitions `(s, a, r, s', done)` with a
//! sparse reward at the end of the episode.

/// Monte-Carlo return of each step of one episode with a terminal reward `r` and discount
/// `γ`: `G_t = γ^{T−1−t} · r` for `t = 0..T` (the last action earns `r` undiscounted).
pub fn mc_returns(steps: usize, reward: f32, gamma: f32) -> Vec<f32> {
    (0..steps).map(|t| gamma.powi((steps - 1 - t) as i32) * reward).collect()
}

/// TD(0) target of fitted-Q with a target network: `y = r + γ (1 − done) max_{a' ∈ C(s')}
/// Q_target(s', a')`, the max taken over the next state's *logged* candidate set `C(s')` (never
/// over actions the data does not contain). `next_q` holds `Q_target(s', ·)` on that set; an
/// empty set at a non-terminal step contributes 0.
pub fn td_target(reward: f32, done: bool, gamma: f32, next_q: &[f32]) -> f32 {
    if done {
        return reward;
    }
    let best = next_q.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    reward + gamma * if best.is_finite() { best } else { 0.0 }
}

/// IQL's expectile loss for one residual `u = target − prediction`:
/// `L_τ(u) = |τ − 1(u < 0)| · u²`. With `τ > 0.5` under-estimates cost more than
/// over-estimates, so `V(s)` tracks an upper expectile of `Q(s, a)` over the data's actions
/// without querying actions the data lacks.
pub fn expectile_loss(u: f32, tau: f32) -> f32 {
    let w = if u < 0.0 { 1.0 - tau } else { tau };
    w * u * u
}

/// IQL's Q target: `y = r + γ (1 − done) V(s')`.
pub fn iql_q_target(reward: f32, done: bool, gamma: f32, next_v: f32) -> f32 {
    if done {
        reward
    } else {
        reward + gamma * next_v
    }
}

#[cfg(test)]
mod tests {
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
}
