//! Agent0-VL cycle recipes (`kaizen evolve --mode vl`, files `recipes/agent0-vl-*.toml`): a
//! `kaizen train` recipe whose RL is Agent0-VL's (`rl.estimator = "process"`: the policy judges
//! and repairs its own steps), run for several iterations, each scored on held-out tasks.
//!
//! ```toml
//! train = "shape-grid-tiny-vl-process.toml"   # relative to this file
//! iterations = 3
//! steps_per_iteration = 10                   # else the train recipe's rl.steps
//! # start = "runs/sg-vl-process"             # a run's final weights instead of the cold start
//! [held_out]
//! set = "shape-grid:test"                    # else the train recipe's env
//! tasks = 300
//! candidates = 4                             # PRM best-of-N each iteration (0: off)
//! temperature = 0.5
//! ```

use kaizen_rl::Recipe;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file as written: the train recipe by path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VlFile {
    train: PathBuf,
    #[serde(default = "three")]
    iterations: usize,
    #[serde(default)]
    steps_per_iteration: Option<usize>,
    #[serde(default)]
    start: Option<PathBuf>,
    #[serde(default)]
    held_out: VlHeldOut,
}

fn three() -> usize {
    3
}

/// A resolved cycle recipe (what `config.json` of a run holds): the train recipe inline, the
/// starting run by absolute path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlRecipe {
    /// Marks a run directory's `config.json` as an Agent0-VL cycle's.
    pub mode: String,
    pub iterations: usize,
    /// What every iteration trains: `[sft]` is the cold start (run once, before iteration 1,
    /// unless `start` is given), `rl.steps` one iteration's RL steps.
    pub train: Recipe,
    /// A training run of the same `[policy]` whose final weights the cycle starts from,
    /// instead of the cold start.
    pub start: Option<PathBuf>,
    pub held_out: VlHeldOut,
}

/// The mode name in `config.json` and on the command line.
pub const VL_MODE: &str = "vl";

/// The held-out tasks every iteration is scored on: never trained on (the cycle drops any task
/// whose content a training stage sees), their answers read only to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VlHeldOut {
    /// An env spec (`shape-grid:test`, `arith`); `None`: the train recipe's env.
    pub set: Option<String>,
    pub tasks: usize,
    /// Solutions per task for the verifier as a process reward model (best-of-N beside
    /// majority vote, random and pass@N); 0: not measured.
    pub candidates: usize,
    /// Sampling temperature of those solutions.
    pub temperature: f32,
}

impl Default for VlHeldOut {
    fn default() -> Self {
        VlHeldOut { set: None, tasks: 100, candidates: 0, temperature: 0.5 }
    }
}

impl VlRecipe {
    /// Reads a cycle recipe; `train` and `start` are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a cycle recipe whose relative paths start at `dir`; errors name the field.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, String> {
        let f: VlFile =
            kaizen_rl::recipe::from_toml(text)
                .map_err(|(path, e)| if path.is_empty() { e } else { format!("{path}: {e}") })?;
        let train_path = dir.join(&f.train);
        let mut train = Recipe::load(&train_path).map_err(|e| format!("train: {e}"))?;
        if let Some(n) = f.steps_per_iteration {
            train.rl.steps = n;
        }
        let start = f.start.map(|s| dir.join(s));
        let r = VlRecipe { mode: VL_MODE.into(), iterations: f.iterations, train, start, held_out: f.held_out };
        r.validate()?;
        Ok(r)
    }

    /// Every field in its range, the train recipe valid and Agent0-VL's.
    pub fn validate(&self) -> Result<(), String> {
        if self.mode != VL_MODE {
            return Err(format!("mode must be '{VL_MODE}', got '{}'", self.mode));
        }
        if self.iterations == 0 || self.train.rl.steps == 0 {
            return Err("iterations and steps_per_iteration (or the train recipe's rl.steps) must be at least 1".into());
        }
        if self.held_out.tasks == 0 {
            return Err("held_out.tasks must be at least 1".into());
        }
        let h = &self.held_out;
        if h.candidates == 1 || h.candidates >= 1000 {
            return Err(format!(
                "held_out.candidates must be 0 (off) or 2 to 999 (each task's solutions are seeded 1000 apart), got {}",
                h.candidates
            ));
        }
        if h.candidates > 0 && !(h.temperature > 0.0 && h.temperature.is_finite()) {
            return Err(format!(
                "held_out.temperature must be > 0 (the candidates are sampled), got {}",
                h.temperature
            ));
        }
        self.train.validate().map_err(|e| format!("train: {e}"))?;
        if !self.train.rl.estimator.reads_verdicts() {
            return Err(format!(
                "train: rl.estimator is '{}'; the Agent0-VL cycle trains on process rewards (rl.estimator = \"process\")",
                self.train.rl.estimator.as_str()
            ));
        }
        if self.start.is_none() && self.train.sft.steps > 0 && self.train.rl.process.verifier_examples == 0 {
            return Err("train: the cold start teaches the verifier nothing (rl.process.verifier_examples = 0); \
                 give it worked verifications, or start from a run (start = ...)"
                .into());
        }
        Ok(())
    }

    /// The cold start (`iteration` 0): the train recipe's SFT — demonstrations and worked
    /// verifications — and no RL step.
    pub fn cold_start_recipe(&self) -> Recipe {
        let mut r = self.stage();
        r.rl.steps = 0;
        r
    }

    /// The train recipe as a stage of the cycle runs it: without its own `[eval]` (the cycle
    /// scores every iteration on its held-out tasks).
    fn stage(&self) -> Recipe {
        let mut r = self.train.clone();
        r.eval.tasks = 0;
        r
    }

    /// Iteration `iteration`'s RL (SFT skipped: it starts from the previous iteration's
    /// weights): the train recipe with a seed of its own, so each iteration rolls out new tasks.
    pub fn iteration_recipe(&self, iteration: usize) -> Recipe {
        let mut r = self.stage();
        r.seed = self.iteration_seed(iteration);
        r
    }

    /// Iteration `iteration`'s seed; 0 is the train recipe's own (the cold start's).
    pub fn iteration_seed(&self, iteration: usize) -> u64 {
        self.train.seed.wrapping_add(iteration as u64 * ITERATION_STRIDE)
    }
}

/// Iterations' seeds lie this far apart, so no two share an RL task stream.
const ITERATION_STRIDE: u64 = 1 << 32;

#[cfg(test)]
#[path = "vl_recipe_tests.rs"]
mod tests;
