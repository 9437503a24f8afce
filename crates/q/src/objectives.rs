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
#[path = "objectives_tests.rs"]
mod tests;
