//! Training recipes: TOML files in `recipes/`. Every field has a default; an unknown field or
//! a bad value is an error that names the field and what it allows. The resolved recipe is
//! written into the run directory.

use crate::estimator::Estimator;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    /// Environment spec, as `kaizen run --env` takes it (`arith`, `arith:2`, `jsonl:PATH`).
    pub env: String,
    /// Seed of initialisation, task streams and sampling.
    pub seed: u64,
    /// Worked examples before every task (as `kaizen run --shots`): env demonstrations with
    /// their tools run. They let a pretrained policy act before any training.
    pub shots: usize,
    /// Take the worked examples from this env (an env spec, e.g. `arith`) instead of `env`:
    /// a task file without demonstrations, or a task pool, is then prompted as that env is.
    pub shots_from: Option<String>,
    /// Show the tools' JSON schemas in the prompt (as `kaizen run` does unless
    /// `--no-tool-schemas`). `false` for a policy trained from scratch: it cannot read them,
    /// and they make arith's prompt ~6x longer.
    pub tool_schemas: bool,
    pub policy: PolicySection,
    pub sft: SftSection,
    pub rl: RlSection,
    pub eval: EvalSection,
    pub checkpoint: CheckpointSection,
}

/// How often the run saves everything it needs to continue after a crash
/// (`kaizen train --resume RUN`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Every this many RL steps (and at the end of SFT).
    pub every: usize,
    /// Every this many SFT steps.
    pub sft_every: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection { every: 1, sft_every: 25 }
    }
}

/// The trainable policy: `tiny`, a llama-architecture model trained from scratch on the byte
/// vocabulary (`layers`, `width`, `heads`), or an installed pretrained model (`smollm2`)
/// trained through LoRA adapters (`[policy.lora]`), its base frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySection {
    /// `tiny` or an installed model (`kaizen models`), e.g. `smollm2`.
    pub model: String,
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    /// Longest episode in tokens (the env's prompt with tool schemas is ~1,400 bytes).
    pub context: usize,
    /// `tiny` only (default `true` for it): add an embedding of each position's previous token
    /// to its input, so that copying from the prompt is learnt without the long,
    /// seed-dependent plateau (`LmConfig::prev_token`).
    pub prev_token: Option<bool>,
    /// LoRA adapters for a pretrained model (required for one, refused for `tiny`).
    pub lora: Option<LoraSection>,
    /// `tiny` only: a picture input, so the policy reads the env's pictures
    /// (`kaizen_models::arch::vision`: a ViT patch stem into the decoder).
    pub vision: Option<VisionSection>,
}

/// Pictures are resized to `side × side` pixels and cut into `patch × patch` patches, each one
/// input row (placeholder token) of the decoder: `(side / patch)²` per picture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionSection {
    pub side: usize,
    pub patch: usize,
}

/// LoRA: `y = x Wᵀ + (α / r) · (x Aᵀ) Bᵀ` on the `targets` projections of every block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSection {
    pub rank: usize,
    pub alpha: f32,
    /// Any of `attn_q`, `attn_k`, `attn_v`, `attn_output`, `ffn_gate`, `ffn_up`, `ffn_down`.
    pub targets: Vec<String>,
}

impl Default for LoraSection {
    fn default() -> Self {
        LoraSection {
            rank: 8,
            alpha: 16.0,
            targets: kaizen_models::trainable::lora::DEFAULT_TARGETS.map(String::from).to_vec(),
        }
    }
}

impl LoraSection {
    pub fn config(&self) -> kaizen_models::trainable::LoraConfig {
        kaizen_models::trainable::LoraConfig { rank: self.rank, alpha: self.alpha, targets: self.targets.clone() }
    }
}

/// The from-scratch policy's name in `policy.model`.
pub const TINY: &str = "tiny";

/// Supervised cold start on the env's demonstrations (0 steps: none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftSection {
    pub demonstrations: usize,
    /// Optimizer steps; with `target_pass`, the most it may take.
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    /// End SFT early once the policy's greedy pass rate on `check_tasks` validation tasks
    /// (their own stream: neither demonstrations, RL tasks nor the held-out set) reaches this,
    /// checked every `check_every` steps (0: run all `steps`). A from-scratch policy learns to
    /// copy the task's numbers in a sudden jump whose step moves with the seed and with float
    /// rounding (thread count, CPU); stopping on what the policy can do hands it to RL as soon
    /// as it is right often enough — if the jump comes within `steps` at all.
    pub target_pass: f64,
    pub check_every: usize,
    pub check_tasks: usize,
    /// Demonstrations of other envs mixed into SFT (`[[sft.mix]]`), spread evenly among the
    /// env's own: e.g. `shape-cell`'s one-picture answers, so a vision policy learns to read
    /// shapes while it learns to aim its crops. Each mixed task is shown without worked
    /// examples; checks and held-out sets stay the env's own.
    pub mix: Vec<SftMix>,
}

/// One env whose demonstrations SFT mixes in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftMix {
    /// An env spec, as `env`.
    pub env: String,
    pub demonstrations: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RlSection {
    /// A name in `estimator::ESTIMATORS`: `grpo`, `dr_grpo`, `adpo`, `axpo` or `rloo`.
    pub estimator: Estimator,
    pub steps: usize,
    /// Tasks per step; each gets a group of `group` rollouts.
    pub tasks_per_step: usize,
    pub group: usize,
    pub temperature: f32,
    pub lr: f64,
    /// Linear learning-rate warm-up over this many steps.
    pub warmup_steps: usize,
    pub eps_low: f32,
    pub eps_high: f32,
    /// KL weight to the frozen SFT policy (0: no reference model).
    pub beta: f32,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// Trajectories per optimizer step.
    pub minibatch: usize,
    pub max_turns: usize,
    pub max_tokens_per_turn: usize,
    /// AXPO: continuations drawn from each resampled prefix.
    pub axpo_k: usize,
    /// AXPO: extra rollouts per step, as a share of the step's `tasks_per_step × group`.
    pub axpo_budget: f64,
    /// Truncated importance sampling: rollouts are sampled by the inference runtime (for a
    /// LoRA policy a merged, re-quantised model) while PPO's `π_old` comes from the training
    /// model, so each token's policy-gradient term is weighted by `min(π_old / π_behav, C)`,
    /// `C` this cap (Yao et al. 2025's TIS; 2 there).
    pub tis_cap: f32,
    /// ADPO: the floor `m` of the advantage scale `s(p̂) = m + (1−m)·clamp((p̂ − 0.3)/0.5, 0, 1)`
    /// (the paper's 0.6).
    pub adpo_m: f32,
    /// Agent0-VL's process rewards (`rl.estimator = "process"`): `τ_c`, `κ`, `C_repair`,
    /// `λ_tool`, `γ`, `α_out` and the verifier's episode limits.
    pub process: crate::process::ProcessConfig,
}

impl RlSection {
    /// How each rollout runs: this section's turns, tokens and temperature, the token budget
    /// derived as everywhere (`EpisodeArgs::max_episode_tokens`).
    pub fn episode(&self) -> kaizen_rollout::EpisodeArgs {
        kaizen_rollout::EpisodeArgs {
            max_turns: self.max_turns,
            max_tokens_per_turn: self.max_tokens_per_turn,
            max_episode_tokens: None,
            temperature: self.temperature,
        }
    }
}

/// Held-out evaluation: tasks from a seed the training stream never uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Every this many RL steps (and before the first and after the last).
    pub every: usize,
    pub tasks: usize,
    /// Samples per task for pass@k (k = samples), besides the greedy pass@1.
    pub samples: usize,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            env: "arith:2".into(),
            seed: 0,
            shots: 0,
            shots_from: None,
            tool_schemas: true,
            policy: PolicySection::default(),
            sft: SftSection::default(),
            rl: RlSection::default(),
            eval: EvalSection::default(),
            checkpoint: CheckpointSection::default(),
        }
    }
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            model: TINY.into(),
            layers: 2,
            width: 64,
            heads: 8,
            context: 2048,
            prev_token: None,
            lora: None,
            vision: None,
        }
    }
}

impl Default for SftSection {
    fn default() -> Self {
        SftSection {
            demonstrations: 64,
            steps: 60,
            batch: 4,
            lr: 5e-3,
            target_pass: 0.0,
            check_every: 25,
            check_tasks: 32,
            mix: Vec::new(),
        }
    }
}

impl Default for RlSection {
    fn default() -> Self {
        RlSection {
            estimator: Estimator::default(),
            steps: 10,
            tasks_per_step: 2,
            group: 4,
            temperature: 1.0,
            lr: 1e-3,
            warmup_steps: 2,
            eps_low: 0.2,
            eps_high: 0.4,
            beta: 0.0,
            grad_clip: 1.0,
            minibatch: 4,
            max_turns: 3,
            max_tokens_per_turn: 96,
            axpo_k: 4,
            axpo_budget: 0.25,
            tis_cap: 2.0,
            adpo_m: 0.6,
            process: Default::default(),
        }
    }
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection { every: 5, tasks: 8, samples: 4 }
    }
}

/// Reads a recipe-like TOML text; an error comes with the dotted path of the field it is in
/// (`rl.estimator`; empty when it is about the whole text), so every message can name it.
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

impl Recipe {
    /// Parses and checks a recipe; errors name the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let r: Recipe =
            from_toml(text).map_err(|(path, e)| if path.is_empty() { e } else { format!("{path}: {e}") })?;
        r.validate()?;
        Ok(r)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every field in its range, checked before anything is allocated: a bad recipe is an error
    /// naming the field, never an allocation failure.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("policy.layers", self.policy.layers),
            ("policy.width", self.policy.width),
            ("policy.heads", self.policy.heads),
            ("policy.context", self.policy.context),
            ("sft.batch", self.sft.batch),
            ("sft.check_every", self.sft.check_every),
            ("sft.check_tasks", self.sft.check_tasks),
            ("rl.tasks_per_step", self.rl.tasks_per_step),
            ("rl.group", self.rl.group),
            ("rl.minibatch", self.rl.minibatch),
            ("rl.max_turns", self.rl.max_turns),
            ("rl.max_tokens_per_turn", self.rl.max_tokens_per_turn),
            ("rl.axpo_k", self.rl.axpo_k),
            ("eval.every", self.eval.every),
            ("eval.samples", self.eval.samples),
            ("checkpoint.every", self.checkpoint.every),
            ("checkpoint.sft_every", self.checkpoint.sft_every),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(format!("{field} must be at least 1"));
            }
        }
        if let Some(m) = self.sft.mix.iter().find(|m| m.demonstrations == 0) {
            return Err(format!("sft.mix ({}): demonstrations must be at least 1", m.env));
        }
        if !(0.0..=1.0).contains(&self.sft.target_pass) {
            return Err(format!(
                "sft.target_pass must be a pass rate in [0, 1] (0: off), got {}",
                self.sft.target_pass
            ));
        }
        if self.rl.group < 2 {
            return Err("rl.group must be at least 2 (advantages are relative to the group)".into());
        }
        match (self.policy.model.as_str(), &self.policy.lora) {
            (TINY, Some(_)) => {
                return Err("policy.lora: adapters are for a pretrained policy.model; tiny trains every weight".into())
            }
            (TINY, None) => {
                if let Some(v) = &self.policy.vision {
                    let vc = kaizen_models::arch::vision::VisionConfig { side: v.side, patch: v.patch, image_token: 0 };
                    vc.validate().map_err(|e| format!("policy.vision: {e}"))?;
                    if vc.patches() * 2 > self.policy.context {
                        return Err(format!(
                            "policy.vision: a picture is {} input rows; policy.context ({}) must hold at least two",
                            vc.patches(),
                            self.policy.context
                        ));
                    }
                }
            }
            (name, _) if self.policy.vision.is_some() => {
                return Err(format!(
                    "policy.vision: only for {TINY} (a picture input for a pretrained '{name}' is not built yet)"
                ))
            }
            (name, _) if self.policy.prev_token == Some(true) => {
                return Err(format!("policy.prev_token: only for {TINY} (a pretrained '{name}' has no such table)"))
            }
            (name, lora) => {
                let installed: Vec<String> = kaizen_models::home::model_files()
                    .into_iter()
                    .filter(|f| f.relative_path.ends_with(".gguf"))
                    .map(|f| f.model)
                    .collect();
                if kaizen_models::home::gguf_path(name).is_err() {
                    return Err(format!(
                        "policy.model: '{name}' is not an installed model (allowed: {TINY}, {})",
                        installed.join(", ")
                    ));
                }
                let Some(lora) = lora else {
                    return Err(format!("policy.lora: a pretrained policy.model ('{name}') trains through LoRA adapters; add a [policy.lora] section"));
                };
                lora.config().validate().map_err(|e| format!("policy.{e}"))?;
            }
        }
        if self.policy.width % self.policy.heads != 0 || (self.policy.width / self.policy.heads) % 2 != 0 {
            return Err(format!(
                "policy.width ({}) must be an even multiple of policy.heads ({})",
                self.policy.width, self.policy.heads
            ));
        }
        if self.policy.model == TINY {
            if let Some(have) = physical_memory() {
                let p = &self.policy;
                let need = tiny_training_bytes(p.layers, p.width, p.heads, p.context, self.sft.batch);
                if need > have as f64 {
                    return Err(format!(
                        "policy: layers = {}, width = {}, context = {} (sft.batch = {}) need about {:.1} GiB to \
                         train; this machine has {:.1} GiB",
                        p.layers,
                        p.width,
                        p.context,
                        self.sft.batch,
                        need / (1u64 << 30) as f64,
                        have as f64 / (1u64 << 30) as f64
                    ));
                }
            }
        }
        if !(self.rl.tis_cap >= 1.0 && self.rl.tis_cap.is_finite()) {
            return Err(format!("rl.tis_cap must be a number ≥ 1 (2 is usual), got {}", self.rl.tis_cap));
        }
        let p = &self.rl.process;
        let finite = [p.kappa, p.c_repair, p.lambda_tool, p.alpha_out].iter().all(|x| x.is_finite());
        if !(0.0..=1.0).contains(&p.tau_c)
            || !(0.0..=1.0).contains(&p.gamma)
            || !finite
            || p.kappa <= 0.0
            || p.verifier_max_turns == 0
            || p.verifier_max_tokens_per_turn == 0
        {
            return Err(format!(
                "rl.process: tau_c and gamma must be in [0, 1], kappa above 0, every coefficient finite, and the \
                 verifier's turns and tokens per turn at least 1; got {p:?}"
            ));
        }
        if !(0.0..=1.0).contains(&self.rl.adpo_m) {
            return Err(format!("rl.adpo_m must be in [0, 1] (the paper's 0.6), got {}", self.rl.adpo_m));
        }
        for (field, v) in [("rl.eps_low", self.rl.eps_low), ("rl.eps_high", self.rl.eps_high)] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("{field} must be in [0, 1), got {v}"));
            }
        }
        for (field, v) in [("sft.lr", self.sft.lr), ("rl.lr", self.rl.lr), ("rl.grad_clip", self.rl.grad_clip)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("{field} must be a positive number, got {v}"));
            }
        }
        if !(0.0..=4.0).contains(&self.rl.axpo_budget) {
            return Err(format!(
                "rl.axpo_budget must be in [0, 4] (a share of the step's rollouts), got {}",
                self.rl.axpo_budget
            ));
        }
        if self.rl.beta < 0.0 || self.rl.temperature <= 0.0 {
            return Err("rl.beta must be ≥ 0 and rl.temperature > 0 (RL samples)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "recipe_tests.rs"]
mod tests;

/// Bytes the tiny policy takes to train, at least: f32 weights, their gradients and AdamW's two
/// moments (16 bytes a parameter), and a batch's activations (about 16 width-wide rows a token
/// per layer, and the logits over the vocabulary). In f64, so absurd sizes do not overflow.
fn tiny_training_bytes(layers: usize, width: usize, heads: usize, context: usize, batch: usize) -> f64 {
    let cfg = kaizen_models::trainable::LmConfig::bytes(layers, width, heads, context);
    let rows = batch as f64 * context as f64;
    16.0 * cfg.parameters() as f64 + 4.0 * rows * (16.0 * layers as f64 * width as f64 + 2.0 * cfg.vocab as f64)
}

/// This machine's memory (`MemTotal`), where `/proc/meminfo` says.
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
