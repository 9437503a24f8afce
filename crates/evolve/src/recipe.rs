//! Evolve recipes: TOML files in `recipes/` for `kaizen evolve`. One base policy for both
//! agents (each trains its own LoRA adapters), how the executor answers (`[executor]`), how the
//! curriculum trains (`[curriculum]`, an RL section as in `kaizen train` recipes) and is
//! rewarded (`[curriculum_reward]`), the pool filter (`[pool]`), how the executor trains on the
//! pool (`[executor_rl]`), and the held-out ground-truth sets (`[eval]`). Sections left out take
//! the defaults below; a field left out of a section given takes `kaizen train`'s default for it.

use crate::curriculum::RewardWeights;
use crate::pool::Band;
use kaizen_rl::estimator::{self, Estimator};
use kaizen_rl::recipe::{CheckpointSection, EvalSection, PolicySection, RlSection, SftSection};
use kaizen_rl::Recipe;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvolveRecipe {
    pub seed: u64,
    pub iterations: usize,
    pub policy: PolicySection,
    pub executor: ExecutorSection,
    pub curriculum: RlSection,
    /// Worked examples (one per topic, in the task format) before every curriculum prompt.
    pub curriculum_shots: usize,
    pub curriculum_reward: RewardWeights,
    pub pool: PoolSection,
    pub executor_rl: RlSection,
    pub eval: HeldOutSection,
}

/// How the executor answers a task (self-consistency samples, pool labelling, evaluation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorSection {
    /// `k`: samples per generated task for `p̂`.
    pub samples: usize,
    pub temperature: f32,
    /// Assistant turns: up to `max_turns − 1` tool turns and the answer.
    pub max_turns: usize,
    pub max_tokens_per_turn: usize,
    /// Worked examples before every task, from `shots_from` (an env spec).
    pub shots: usize,
    pub shots_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSection {
    /// Tasks the frozen curriculum writes per iteration.
    pub candidates: usize,
    /// Sampling temperature of the curriculum while it writes the pool.
    pub temperature: f32,
    pub low: f64,
    pub high: f64,
}

/// Held-out ground-truth sets: the loop never trains on them (the pool drops any task with the
/// same text) and reads their answers only to score the executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeldOutSection {
    /// Env specs: `arith`, `arith:LEVEL`, `jsonl:PATH`.
    pub sets: Vec<String>,
    /// Tasks per set (a smaller file gives all of its distinct tasks).
    pub tasks: usize,
}

impl Default for EvolveRecipe {
    fn default() -> Self {
        EvolveRecipe {
            seed: 0,
            iterations: 3,
            policy: PolicySection::default(),
            executor: ExecutorSection::default(),
            curriculum: RlSection {
                estimator: Estimator::from(&estimator::GRPO),
                steps: 4,
                tasks_per_step: 2,
                group: 4,
                temperature: 0.8,
                max_turns: 1,
                max_tokens_per_turn: 96,
                ..RlSection::default()
            },
            curriculum_shots: 3,
            curriculum_reward: RewardWeights::default(),
            pool: PoolSection::default(),
            // ε_high 0.2: ADPO widens the symmetric PPO clip ε (METHODS.md §4), not kaizen
            // train's clip-higher 0.4.
            executor_rl: RlSection {
                estimator: Estimator::from(&estimator::ADPO),
                group: 8,
                temperature: 0.7,
                max_turns: 5,
                eps_high: 0.2,
                ..RlSection::default()
            },
            eval: HeldOutSection::default(),
        }
    }
}

impl Default for ExecutorSection {
    fn default() -> Self {
        ExecutorSection {
            samples: 10,
            temperature: 0.7,
            max_turns: 5,
            max_tokens_per_turn: 96,
            shots: 3,
            shots_from: Some("arith".into()),
        }
    }
}

impl Default for PoolSection {
    fn default() -> Self {
        PoolSection { candidates: 32, temperature: 0.8, low: 0.3, high: 0.8 }
    }
}

impl Default for HeldOutSection {
    fn default() -> Self {
        HeldOutSection { sets: vec!["arith".into()], tasks: 50 }
    }
}

/// Seeds of each iteration's streams: far apart, so no two stages share a draw.
const ITERATION_STRIDE: u64 = 1 << 32;
/// Tags of the two stages' own seeds within an iteration.
const CURRICULUM_STAGE: u64 = 0xC0C0_0000;
const EXECUTOR_STAGE: u64 = 0xE0E0_0000;

impl EvolveRecipe {
    pub fn parse(text: &str) -> Result<Self, String> {
        // A field's error names its section as the stage recipes' checks do (`[executor_rl]`).
        let r: EvolveRecipe = kaizen_rl::recipe::from_toml(text).map_err(|(path, e)| match path.split_once('.') {
            Some((section, field)) => format!("[{section}] {field}: {e}"),
            None if path.is_empty() => e,
            None => format!("{path}: {e}"),
        })?;
        r.validate()?;
        Ok(r)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn band(&self) -> Band {
        Band { low: self.pool.low, high: self.pool.high }
    }

    /// Every field in its range; both stage recipes valid. Errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, v) in [
            ("iterations", self.iterations),
            ("executor.samples", self.executor.samples),
            ("executor.max_turns", self.executor.max_turns),
            ("executor.max_tokens_per_turn", self.executor.max_tokens_per_turn),
            ("pool.candidates", self.pool.candidates),
        ] {
            if v == 0 {
                return Err(format!("{field} must be at least 1"));
            }
        }
        if !(0.0..=1.0).contains(&self.pool.low) || !(self.pool.low..=1.0).contains(&self.pool.high) {
            return Err(format!(
                "pool.low and pool.high must satisfy 0 ≤ low ≤ high ≤ 1 (the paper's 0.3 and 0.8), got {} and {}",
                self.pool.low, self.pool.high
            ));
        }
        if self.executor.temperature <= 0.0 || self.pool.temperature <= 0.0 {
            return Err("executor.temperature and pool.temperature must be > 0 (they sample)".into());
        }
        let w = &self.curriculum_reward;
        for (field, v) in [
            ("curriculum_reward.uncertainty", w.uncertainty),
            ("curriculum_reward.tool", w.tool),
            ("curriculum_reward.repetition", w.repetition),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{field} must be a number ≥ 0, got {v}"));
            }
        }
        if !(0.0..=1.0).contains(&w.cluster_threshold) {
            return Err(format!("curriculum_reward.cluster_threshold must be in [0, 1], got {}", w.cluster_threshold));
        }
        if self.eval.tasks == 0 {
            return Err("eval.tasks must be at least 1".into());
        }
        if self.eval.sets.is_empty() {
            return Err("eval.sets: name at least one held-out ground-truth set (e.g. [\"arith\"])".into());
        }
        if self.curriculum.estimator.resamples_tool_calls() {
            return Err(
                "curriculum.estimator: the curriculum writes no tool calls; use grpo, dr_grpo, adpo or rloo".into()
            );
        }
        self.curriculum_recipe(1).validate().map_err(|e| format!("[curriculum]: {e}"))?;
        self.executor_recipe(1, std::path::Path::new("pool.jsonl"))
            .validate()
            .map_err(|e| format!("[executor_rl]: {e}"))
    }

    fn stage_recipe(&self, iteration: usize, stage: u64, env: String, rl: RlSection) -> Recipe {
        Recipe {
            env,
            seed: self.stream_seed(iteration, stage),
            shots: 0,
            shots_from: None,
            tool_schemas: true,
            policy: self.policy.clone(),
            sft: SftSection { steps: 0, ..SftSection::default() },
            rl,
            // The loop evaluates on its own held-out ground-truth sets.
            eval: EvalSection { tasks: 0, ..EvalSection::default() },
            checkpoint: CheckpointSection::default(),
        }
    }

    /// Iteration `iteration`'s curriculum training: GRPO (or as `[curriculum]` says) on the
    /// curriculum env, rewarded by the curriculum reward.
    pub fn curriculum_recipe(&self, iteration: usize) -> Recipe {
        Recipe {
            tool_schemas: false,
            // As the stage shows them (its examples come with the curriculum env, not an env spec).
            shots: self.curriculum_shots,
            ..self.stage_recipe(iteration, CURRICULUM_STAGE, "curriculum".into(), self.curriculum.clone())
        }
    }

    /// Iteration `iteration`'s executor training on its pool file.
    pub fn executor_recipe(&self, iteration: usize, pool: &std::path::Path) -> Recipe {
        Recipe {
            shots: self.executor.shots,
            shots_from: self.executor.shots_from.clone(),
            ..self.stage_recipe(
                iteration,
                EXECUTOR_STAGE,
                format!("jsonl:{}", pool.display()),
                self.executor_rl.clone(),
            )
        }
    }

    /// The seed of iteration `iteration`'s stream `stream` (pool writing, judging, …).
    pub fn stream_seed(&self, iteration: usize, stream: u64) -> u64 {
        self.seed.wrapping_add(iteration as u64 * ITERATION_STRIDE) ^ stream
    }
}

#[cfg(test)]
#[path = "recipe_tests.rs"]
mod tests;
