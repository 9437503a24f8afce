//! The advantage estimators a recipe names (`rl.estimator`), in one registry: each is a pure
//! function from a group of rollouts of one task to one advantage per rollout (for every
//! token, or token by token), with its own loss normalisation. GRPO's, Dr.GRPO's and ADPO's
//! formulas are in `advantages`, RLOO's here. AXPO is the exception: its entry is GRPO for the
//! groups it does not trigger on, and its flag makes the rollout stage resample failed tool
//! calls (`axpo_resample`), whose rows replace the function's — so a second resampling
//! estimator would need more than one function.
//!
//! To add an estimator: write its group function here (with a test on hand-computed numbers
//! in `estimator_tests.rs`) and one `EstimatorSpec` line in `ESTIMATORS`. Recipes name it at
//! once (`estimator = "name"`), and `kaizen train` runs it.

use crate::advantages::{adpo_eps_high, adpo_scale, dr_grpo, grpo, self_consistency};
use crate::loss::Normalisation;
use crate::process::process_advantages;
use crate::recipe::RlSection;
use kaizen_core::{Task, Trajectory};

/// One task's group of rollouts and the run's RL settings: what an estimator reads.
pub struct Group<'a> {
    pub rollouts: &'a [Trajectory],
    pub rl: &'a RlSection,
}

/// A rollout's advantage: the same for each of its tokens (outcome rewards), or one per token
/// of `token_ids` (process rewards credit each step's tokens with that step's return). Only
/// model-written tokens (loss mask 1) enter the loss; other positions are ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum Advantage {
    Sequence(f32),
    PerToken(Vec<f32>),
}

impl Advantage {
    /// The advantage of each of a rollout's `len` tokens; an error when a per-token advantage
    /// has another length (it was computed for another sequence).
    pub fn series(&self, len: usize) -> Result<Vec<f32>, String> {
        match self {
            Advantage::Sequence(a) => Ok(vec![*a; len]),
            Advantage::PerToken(v) if v.len() == len => Ok(v.clone()),
            Advantage::PerToken(v) => {
                Err(format!("a per-token advantage of {} tokens for a rollout of {len}", v.len()))
            }
        }
    }

    /// Whether every token's advantage is zero: the row carries no policy gradient.
    pub fn is_zero(&self) -> bool {
        match self {
            Advantage::Sequence(a) => *a == 0.0,
            Advantage::PerToken(v) => v.iter().all(|&a| a == 0.0),
        }
    }

    /// The largest magnitude among the row's tokens (the sequence value for `Sequence`).
    pub fn max_abs(&self) -> f32 {
        match self {
            Advantage::Sequence(a) => a.abs(),
            Advantage::PerToken(v) => v.iter().fold(0.0, |m, a| m.max(a.abs())),
        }
    }
}

/// One trajectory's part in the PPO loss: its advantage, its upper clip bound, and a loss mask
/// that replaces its own (AXPO's prefix-only / continuation-only).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRow {
    /// Index into the step's rollouts followed by AXPO's resampled episodes.
    pub t: usize,
    pub mask: Option<Vec<u8>>,
    pub adv: Advantage,
    pub eps: f32,
}

/// A group's advantages, one per rollout in order, and the group's upper clip bound `ε_high`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAdvantages {
    pub advantages: Vec<Advantage>,
    pub eps_high: f32,
}

/// One registered estimator.
pub struct EstimatorSpec {
    /// What a recipe writes in `rl.estimator`.
    pub name: &'static str,
    /// A group's advantages.
    pub advantages: fn(&Group) -> GroupAdvantages,
    /// How the PPO loss averages its per-token terms, given the episode's token budget.
    pub normalisation: fn(max_episode_tokens: usize) -> Normalisation,
    /// AXPO: the trainer also resamples failed tool calls from fixed prefixes (`axpo_resample`),
    /// whose rows replace this function's in the groups it triggers on.
    pub resamples_tool_calls: bool,
    /// The advantages read each step's verifier verdict (`process`): the run's reward must be
    /// the verifier's (`VerifierReward`), which writes them.
    pub reads_verdicts: bool,
}

/// Every estimator a recipe can name.
pub static ESTIMATORS: &[EstimatorSpec] = &[GRPO, DR_GRPO, ADPO, AXPO, RLOO, PROCESS];

pub const GRPO: EstimatorSpec = EstimatorSpec {
    name: "grpo",
    advantages: grpo_group,
    normalisation: token_mean,
    resamples_tool_calls: false,
    reads_verdicts: false,
};
pub const DR_GRPO: EstimatorSpec = EstimatorSpec {
    name: "dr_grpo",
    advantages: dr_grpo_group,
    normalisation: episode_budget,
    resamples_tool_calls: false,
    reads_verdicts: false,
};
pub const ADPO: EstimatorSpec = EstimatorSpec {
    name: "adpo",
    advantages: adpo_group,
    normalisation: token_mean,
    resamples_tool_calls: false,
    reads_verdicts: false,
};
/// Groups AXPO does not trigger on train as plain GRPO.
pub const AXPO: EstimatorSpec = EstimatorSpec {
    name: "axpo",
    advantages: grpo_group,
    normalisation: token_mean,
    resamples_tool_calls: true,
    reads_verdicts: false,
};

pub const RLOO: EstimatorSpec = EstimatorSpec {
    name: "rloo",
    advantages: rloo_group,
    normalisation: token_mean,
    resamples_tool_calls: false,
    reads_verdicts: false,
};

/// Agent0-VL (`METHODS.md` §5): GRPO on process returns — each step credited with its
/// verifier verdict and tool result, the outcome added, normalised within the group, each
/// step's tokens given their step's advantage (`process::process_advantages`, `rl.process`).
pub const PROCESS: EstimatorSpec = EstimatorSpec {
    name: "process",
    advantages: process_group,
    normalisation: token_mean,
    resamples_tool_calls: false,
    reads_verdicts: true,
};

fn process_group(g: &Group) -> GroupAdvantages {
    GroupAdvantages { advantages: process_advantages(g.rollouts, &g.rl.process), eps_high: g.rl.eps_high }
}

fn token_mean(_: usize) -> Normalisation {
    Normalisation::TokenMean
}

/// Dr.GRPO's constant `L`: the episode's token budget (no per-sequence length normalisation).
fn episode_budget(max_episode_tokens: usize) -> Normalisation {
    Normalisation::Constant(max_episode_tokens as f32)
}

fn rewards(g: &Group) -> Vec<f32> {
    g.rollouts.iter().map(|t| t.reward).collect()
}

fn sequence(advantages: Vec<f32>, eps_high: f32) -> GroupAdvantages {
    GroupAdvantages { advantages: advantages.into_iter().map(Advantage::Sequence).collect(), eps_high }
}

/// GRPO (`advantages::grpo`, ε = 1e-6) with the recipe's `ε_high`.
fn grpo_group(g: &Group) -> GroupAdvantages {
    sequence(grpo(&rewards(g), 1e-6), g.rl.eps_high)
}

/// Dr.GRPO (`advantages::dr_grpo`) with the recipe's `ε_high`.
fn dr_grpo_group(g: &Group) -> GroupAdvantages {
    sequence(dr_grpo(&rewards(g)), g.rl.eps_high)
}

/// RLOO (Ahmadian et al. 2024, "Back to Basics"): each rollout's baseline is the mean reward
/// of the *other* rollouts of its group, `Â_i = r_i − (1/(G−1)) Σ_{j≠i} r_j` — unbiased, no
/// division by the group's spread. A group of one has no other rollout: advantage 0.
/// Deviations from the paper, all from sharing kaizen's PPO update with the other estimators:
/// its REINFORCE loss becomes the PPO-clip loss with the token mean and the recipe's
/// asymmetric clip (`eps_low`, `eps_high`), as TRL's RLOO trainer clips too; the KL to the
/// reference is a separate per-token k3 term (`rl.beta`), not folded into the sequence reward
/// as `r − β·KL`; advantages are weighted by the truncated importance ratio to the sampler
/// (`rl.tis_cap`); and rows whose advantage is zero are left out of the update when β = 0.
fn rloo_group(g: &Group) -> GroupAdvantages {
    let r = rewards(g);
    let (n, total) = (r.len(), r.iter().sum::<f32>());
    let adv = r.iter().map(|&ri| if n < 2 { 0.0 } else { ri - (total - ri) / (n - 1) as f32 }).collect();
    sequence(adv, g.rl.eps_high)
}

/// ADPO (`METHODS.md` §4): GRPO advantages scaled by `s(p̂)` (`adpo_scale`, `m` = `rl.adpo_m`)
/// and the upper clip widened to `adpo_eps_high(p̂, rl.eps_high)`. A task from a pool (Agent0)
/// carries the `p̂` of the k executor samples that labelled it — the paper's `p̂`; without one,
/// the training group's own self-consistency stands in (answers grouped by the task's
/// checker), the deviation for tasks with ground truth.
fn adpo_group(g: &Group) -> GroupAdvantages {
    let first = g.rollouts.first();
    let p_hat = match first.and_then(|t| pool_p_hat(&t.task)) {
        Some(p) => p,
        None => {
            let answers: Vec<Option<String>> = g.rollouts.iter().map(|t| t.final_answer.clone()).collect();
            let same = |a: &str, b: &str| first.is_some_and(|t| t.task.checker.same_answer(a, b));
            self_consistency(&answers, same).map_or(0.0, |(_, p)| p)
        }
    };
    let s = adpo_scale(p_hat, g.rl.adpo_m);
    sequence(grpo(&rewards(g), 1e-6).into_iter().map(|x| x * s).collect(), adpo_eps_high(p_hat, g.rl.eps_high))
}

/// The task-meta key of a pool task's `p̂`.
pub const POOL_P_HAT: &str = "p_hat";

/// The self-consistency `p̂` a pool task was labelled with (`meta.p_hat`, written by
/// `kaizen evolve`'s task pool), if it is one.
pub fn pool_p_hat(task: &Task) -> Option<f32> {
    task.meta.get(POOL_P_HAT)?.as_f64().map(|p| p as f32).filter(|p| (0.0..=1.0).contains(p))
}

/// A registered estimator, as a recipe names it: serialised as its name, deserialised by
/// looking the name up in `ESTIMATORS` (an unknown name is an error listing the known ones).
#[derive(Clone, Copy)]
pub struct Estimator(&'static EstimatorSpec);

impl Estimator {
    /// The estimator registered under `name`.
    pub fn named(name: &str) -> Result<Estimator, String> {
        ESTIMATORS.iter().find(|e| e.name == name).map(Estimator).ok_or_else(|| {
            let names: Vec<&str> = ESTIMATORS.iter().map(|e| e.name).collect();
            format!("unknown estimator '{name}'; allowed: {}", names.join(", "))
        })
    }

    pub fn as_str(&self) -> &'static str {
        self.0.name
    }

    /// The advantages of one task's group of rollouts.
    pub fn advantages(&self, rollouts: &[Trajectory], rl: &RlSection) -> GroupAdvantages {
        (self.0.advantages)(&Group { rollouts, rl })
    }

    pub fn normalisation(&self, max_episode_tokens: usize) -> Normalisation {
        (self.0.normalisation)(max_episode_tokens)
    }

    pub fn resamples_tool_calls(&self) -> bool {
        self.0.resamples_tool_calls
    }

    pub fn reads_verdicts(&self) -> bool {
        self.0.reads_verdicts
    }
}

impl From<&'static EstimatorSpec> for Estimator {
    fn from(spec: &'static EstimatorSpec) -> Self {
        Estimator(spec)
    }
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator(&GRPO)
    }
}

impl PartialEq for Estimator {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl std::fmt::Debug for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.name)
    }
}

impl std::fmt::Display for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::str::FromStr for Estimator {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Estimator::named(s)
    }
}

impl serde::Serialize for Estimator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

impl<'de> serde::Deserialize<'de> for Estimator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Estimator::named(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "estimator_tests.rs"]
pub(crate) mod tests;
