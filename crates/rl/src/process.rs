//! Agent0-VL's process rewards (`../shared/METHODS.md` §5): each solver step is credited with
//! what the verifier said about it and whether its tool ran, the episode's return adds the
//! outcome, and returns are normalised within each GRPO group. Every formula is a pure
//! function with a test on hand-computed numbers (`process_tests.rs`).
//!
//! The verdicts come from a verifier that read the episode (`kaizen_rollout::verifier`, run
//! by `VerifierReward` in `verifier_reward`); the estimator `process` reads them from the turns.

use crate::advantages::mean_std;
use crate::estimator::Advantage;
use kaizen_core::{Trajectory, Turn, Verdict};
use serde::{Deserialize, Serialize};

/// The coefficients of §5, with the paper's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    /// `τ_c`: a step whose verdict's confidence is below this opens a repair.
    pub tau_c: f32,
    /// `κ`: the gate's steepness.
    pub kappa: f32,
    /// `C_repair`: what a repaired step costs, scaled by its gate.
    pub c_repair: f32,
    /// `λ_tool`: the reward for a step whose tool calls all ran.
    pub lambda_tool: f32,
    /// `γ`: the discount over steps.
    pub gamma: f32,
    /// `α_out`: the weight of the outcome reward.
    pub alpha_out: f32,
    /// Turns and tokens per turn of a verification episode (it may call tools to check).
    pub verifier_max_turns: usize,
    pub verifier_max_tokens_per_turn: usize,
    /// Repairs per episode (each re-derives from the first unsure step after the last one).
    pub repair_budget: usize,
    /// The verifier's cold start: worked verifications of this many solver episodes of known
    /// correctness join SFT's demonstrations (0: none; a remote verifier is prompted only).
    pub verifier_examples: usize,
}

impl ProcessConfig {
    /// How a verification episode runs: greedy, within the verifier's limits, the tools'
    /// schemas shown, no worked examples — at training time and in the cold start alike.
    pub fn verifier_episode(&self) -> kaizen_rollout::EpisodeConfig {
        let args = kaizen_rollout::EpisodeArgs {
            max_turns: self.verifier_max_turns,
            max_tokens_per_turn: self.verifier_max_tokens_per_turn,
            max_episode_tokens: None,
            temperature: 0.0,
        };
        args.config(Vec::new(), true, false)
    }
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            tau_c: 0.7,
            kappa: 5.0,
            c_repair: 0.05,
            lambda_tool: 0.3,
            gamma: 0.99,
            alpha_out: 1.0,
            verifier_max_turns: 2,
            verifier_max_tokens_per_turn: 192,
            repair_budget: 1,
            verifier_examples: 32,
        }
    }
}

/// The repair gate `g_t = σ(κ(τ_c − conf_t))`: near 1 for an unsure verdict, near 0 for a sure one.
pub fn repair_gate(confidence: f32, tau_c: f32, kappa: f32) -> f32 {
    1.0 / (1.0 + (-kappa * (tau_c - confidence)).exp())
}

/// Whether a verdict opens a repair: `conf_t < τ_c`, and only for a verdict the verifier
/// actually gave — an unreadable one (`Verdict::NEUTRAL`) never does, so a verifier that
/// writes garbage leaves the solver alone.
pub fn opens_repair(v: &Verdict, tau_c: f32) -> bool {
    v.parsed && v.confidence < tau_c
}

/// The first step whose verdict opens a repair, if any (the solver re-derives from there, and
/// the steps after it are new).
pub fn first_repair(verdicts: &[Verdict], tau_c: f32) -> Option<usize> {
    verdicts.iter().position(|v| opens_repair(v, tau_c))
}

/// The process reward `r_proc,t = λ_tool · 1[tool ran ok] + score_t · conf_t`.
pub fn process_reward(tool_ran_ok: bool, v: &Verdict, lambda_tool: f32) -> f32 {
    lambda_tool * f32::from(u8::from(tool_ran_ok)) + v.score * v.confidence
}

/// The step reward `r_t = r_proc,t − g_t · C_repair`, the cost only where a repair happened.
pub fn step_reward(r_proc: f32, gate: f32, repaired: bool, c_repair: f32) -> f32 {
    if repaired {
        r_proc - gate * c_repair
    } else {
        r_proc
    }
}

/// Returns from each step: `G_t = α_out · r_out + Σ_{k ≥ t} γ^{k−t} r_k`. `G_1` is §5's
/// episode return `G = α_out · r_out + Σ_t γ^{t−1} r_t`; the later ones are the same sum from
/// step `t` on, so each step's tokens are credited with what followed them. The outcome term is
/// not discounted, as in §5.
pub fn returns(r_out: f32, step_rewards: &[f32], alpha_out: f32, gamma: f32) -> Vec<f32> {
    let mut out = vec![0.0; step_rewards.len()];
    let mut tail = 0.0;
    for t in (0..step_rewards.len()).rev() {
        tail = step_rewards[t] + gamma * tail;
        out[t] = alpha_out * r_out + tail;
    }
    out
}

/// Whether every tool call of a step ran: it called at least one tool, wrote no malformed call,
/// and every observation came back ok.
pub fn tool_ran_ok(turn: &Turn) -> bool {
    !turn.tool_calls.is_empty() && turn.malformed.is_empty() && turn.observations.iter().all(|o| o.ok)
}

/// A rollout's step rewards `r_t`: its turns' verdicts (`Verdict::NEUTRAL` where none), tool
/// results and repairs (a re-derived step's verdict carries the gate that opened it).
pub fn step_rewards(t: &Trajectory, c: &ProcessConfig) -> Vec<f32> {
    let neutral = Verdict::NEUTRAL;
    t.turns
        .iter()
        .map(|turn| {
            let v = turn.verdict.as_ref().unwrap_or(&neutral);
            let r = process_reward(tool_ran_ok(turn), v, c.lambda_tool);
            step_reward(r, v.repair_gate.unwrap_or(0.0), v.repair_gate.is_some(), c.c_repair)
        })
        .collect()
}

/// A group's advantages. Each rollout's returns `G_t` (`returns`, its reward as `r_out`) are
/// normalised step by step over the group's rollouts that reach that step, as GRPO normalises
/// rewards: `A_t = (G_t − mean_j G_{j,t}) / (std_j G_{j,t} + ε)`, 0 where fewer than two
/// rollouts reach step `t`; each step's `A_t` goes to the tokens that step wrote (`per_token`).
/// At `t = 1` this is §5's `G` normalised within the group, exactly. §5 normalises only the
/// episode's `G`; crediting each step's tokens with its own return needs a normaliser per
/// step, and a step's return is compared with the group's returns at the same step — against
/// the statistics of `G_1`, a later `G_t` (a shorter sum) would be biased, and would blow up
/// in a group whose `G_1` are all equal.
pub fn process_advantages(group: &[Trajectory], c: &ProcessConfig) -> Vec<Advantage> {
    let mut per_step: Vec<Vec<f32>> =
        group.iter().map(|t| returns(t.reward, &step_rewards(t, c), c.alpha_out, c.gamma)).collect();
    // An episode with no turn has just its outcome as its return (it counts at step 1).
    for (g, t) in per_step.iter_mut().zip(group) {
        if g.is_empty() {
            g.push(c.alpha_out * t.reward);
        }
    }
    let depth = per_step.iter().map(Vec::len).max().unwrap_or(0);
    let normalised: Vec<Vec<f32>> = (0..depth)
        .map(|t| {
            let at: Vec<f32> = per_step.iter().filter_map(|g| g.get(t).copied()).collect();
            let (mean, std) = mean_std(&at);
            per_step
                .iter()
                .map(|g| g.get(t).map_or(0.0, |x| if at.len() < 2 { 0.0 } else { (x - mean) / (std + 1e-6) }))
                .collect()
        })
        .collect();
    group
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let a: Vec<f32> = (0..per_step[i].len()).map(|k| normalised[k][i]).collect();
            per_token(t, &a).unwrap_or(Advantage::Sequence(a[0]))
        })
        .collect()
}

/// Spreads one value per step over the tokens each step wrote (`Trajectory::written_runs`:
/// the `k`-th run of model-written tokens is turn `k`'s, as replay reads them); every other
/// token gets 0 (it is not in the loss). `None` when the token record does not show one run
/// per turn (a remote policy's episode has no tokens): the caller falls back to the episode's
/// value.
pub fn per_token(t: &Trajectory, per_step: &[f32]) -> Option<Advantage> {
    let runs = t.written_runs();
    if t.loss_mask.len() != t.token_ids.len() || per_step.is_empty() || runs.len() != per_step.len() {
        return None;
    }
    let mut out = vec![0.0; t.token_ids.len()];
    for (run, a) in runs.into_iter().zip(per_step) {
        out[run].iter_mut().for_each(|x| *x = *a);
    }
    Some(Advantage::PerToken(out))
}

/// The share of judged steps (turns with a verdict) whose verdict was unreadable; `None` when
/// no step was judged.
pub fn unreadable_share(rollouts: &[Trajectory]) -> Option<f64> {
    let judged: Vec<&Verdict> = rollouts.iter().flat_map(|t| &t.turns).filter_map(|x| x.verdict.as_ref()).collect();
    (!judged.is_empty()).then(|| judged.iter().filter(|v| !v.parsed).count() as f64 / judged.len() as f64)
}

/// The mean score of the readable verdicts; `None` when there is none.
pub fn mean_score(rollouts: &[Trajectory]) -> Option<f64> {
    let read: Vec<f64> = rollouts
        .iter()
        .flat_map(|t| &t.turns)
        .filter_map(|x| x.verdict.as_ref())
        .filter(|v| v.parsed)
        .map(|v| v.score as f64)
        .collect();
    (!read.is_empty()).then(|| read.iter().sum::<f64>() / read.len() as f64)
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
