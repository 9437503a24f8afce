//! What a training run is given besides its recipe: the env its tasks come from, the tools its
//! episodes may call, the worked examples every prompt shows, and how a step's rollouts are
//! rewarded. `kaizen train` gives the recipe's own (`Setup::of_recipe`); a self-evolution
//! stage gives a curriculum env and a reward that runs the executor.

use crate::recipe::Recipe;
use crate::verifier_reward::VerifierReward;
use crate::RlError;
use kaizen_core::{Env, Message, Trajectory};
use kaizen_models::LocalLlm;
use kaizen_tools::ToolRegistry;

pub struct Setup {
    pub env: Box<dyn Env>,
    pub tools: ToolRegistry,
    /// Worked examples shown before every task (`recipe.shots` of them).
    pub shots: Vec<Message>,
    pub reward: Box<dyn Reward>,
    /// The envs of `recipe.sft.mix`, in its order: their demonstrations join SFT's.
    pub sft_mix: Vec<Box<dyn Env>>,
}

/// What a reward may use besides the rollouts: the step, the policy being trained (a verifier
/// role reads with it), the run's tools, and the env and episode settings the rollouts ran
/// with (a repair re-derives an episode in them).
pub struct Scoring<'a> {
    pub step: usize,
    pub policy: &'a LocalLlm,
    pub tools: &'a ToolRegistry,
    pub env: &'a dyn Env,
    pub episode: &'a kaizen_rollout::EpisodeConfig,
}

/// How a step's rollouts are rewarded.
pub trait Reward {
    /// Sets each rollout's `reward` (and may say how in `reward_detail`, or judge its steps in
    /// each turn's `verdict`). `rollouts` are one RL step's, in groups of `rl.group` in task
    /// order. An error stops the run (it resumes from the last checkpoint); a reward that fails
    /// for its own reasons says why in `RlError::Reward`.
    fn score(&mut self, at: &Scoring, rollouts: &mut [Trajectory]) -> crate::Result<()>;

    /// Whether the env's checker is the reward (episodes already carry it as they end).
    fn is_checker(&self) -> bool {
        false
    }

    /// Whether it writes each step's verifier verdict (what `rl.estimator = "process"` reads).
    fn writes_verdicts(&self) -> bool {
        false
    }
}

/// The env's checker: each episode's reward is what its task's checker (or its web page) said
/// when it ended, so there is nothing left to do.
pub struct CheckerReward;

impl Reward for CheckerReward {
    fn score(&mut self, _at: &Scoring, _rollouts: &mut [Trajectory]) -> crate::Result<()> {
        Ok(())
    }

    fn is_checker(&self) -> bool {
        true
    }
}

/// Opens an env from its spec (`kaizen_envs::open` for the CLI): the caller says where envs
/// come from, so the training loop names none.
pub type OpenEnv<'a> = &'a dyn Fn(&str) -> Result<Box<dyn Env>, String>;

impl Setup {
    /// The recipe's env (`recipe.env`) and those of `sft.mix`, opened by `open`; `tools`;
    /// `recipe.shots` worked examples from `recipe.shots_from` (another env, so a task file
    /// without demonstrations can be prompted like arith) or else from the env itself; and the
    /// checker's reward (with the policy's own verdicts on each step for `process`).
    pub fn of_recipe(recipe: &Recipe, open: OpenEnv, tools: ToolRegistry) -> crate::Result<Setup> {
        let env = open(&recipe.env).map_err(RlError::env(&recipe.env))?;
        if repairs_a_session_env(recipe, env.as_ref()) {
            return Err(RlError::env(&recipe.env)(
                "a session env (a live page) cannot be repaired from a step; set rl.process.repair_budget = 0 \
                 (verdicts without repairs) or use a task env"
                    .into(),
            ));
        }
        let shots = worked_examples(env.as_ref(), recipe.shots_from.as_deref(), open, &tools, recipe.shots)?;
        let sft_mix = recipe
            .sft
            .mix
            .iter()
            .map(|m| open(&m.env).map_err(RlError::env(format!("{} (sft.mix)", m.env))))
            .collect::<crate::Result<_>>()?;
        // The estimator `process` reads each step's verdict: the policy verifies its own steps.
        let reward: Box<dyn Reward> = if recipe.rl.estimator.reads_verdicts() {
            Box::new(VerifierReward {
                process: recipe.rl.process,
                tools: env.tool_names(),
                seed: recipe.seed,
                verifier: None,
            })
        } else {
            Box::new(CheckerReward)
        };
        Ok(Setup { env, tools, shots, reward, sft_mix })
    }

    /// The same setup with `verifier` in the verifier role instead of the policy itself
    /// (`VerifierReward::verifier`); only for a recipe whose estimator reads verdicts.
    pub fn judged_by(
        mut self,
        recipe: &Recipe,
        verifier: std::sync::Arc<dyn kaizen_core::Policy>,
    ) -> crate::Result<Self> {
        if !recipe.rl.estimator.reads_verdicts() {
            return Err(RlError::Recipe(format!(
                "a verifier judges steps for process rewards; rl.estimator is '{}' (use \"process\")",
                recipe.rl.estimator.as_str()
            )));
        }
        self.reward = Box::new(VerifierReward {
            process: recipe.rl.process,
            tools: self.env.tool_names(),
            seed: recipe.seed,
            verifier: Some(verifier),
        });
        Ok(self)
    }
}

/// Whether `recipe` would repair episodes of a session env: a repair re-derives an episode from
/// a step's prefix, and a live page cannot be put back to the state it was in at that step.
/// Verdicts alone (`rl.process.repair_budget = 0`) need no replay.
pub fn repairs_a_session_env(recipe: &Recipe, env: &dyn Env) -> bool {
    recipe.rl.estimator.reads_verdicts() && recipe.rl.process.repair_budget > 0 && env.has_sessions()
}

/// `k` worked examples (`kaizen_rollout::few_shot`) from the env spec `from` (opened by
/// `open`), or from `env` itself when `from` is `None`: how every verb with `--shots` /
/// `--shots-from` prompts.
pub fn worked_examples(
    env: &dyn Env,
    from: Option<&str>,
    open: OpenEnv,
    tools: &ToolRegistry,
    k: usize,
) -> crate::Result<Vec<Message>> {
    match from {
        Some(spec) if k > 0 => {
            let from = open(spec).map_err(RlError::env(format!("{spec} (worked examples)")))?;
            kaizen_rollout::few_shot(from.as_ref(), tools, k).map_err(RlError::env(spec))
        }
        _ => kaizen_rollout::few_shot(env, tools, k).map_err(RlError::env(env.name())),
    }
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
