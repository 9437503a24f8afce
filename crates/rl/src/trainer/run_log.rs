//! The checkpointing stage: what a run writes as it goes — one `metrics.jsonl` line per step,
//! on disk before the step counts as done, and checkpoints that record how far those files had
//! got (so `resume` can cut what later steps wrote).

use crate::checkpoint::{self, Phase, Progress};
use crate::optim::AdamW;
use kaizen_models::trainable::TrainableLm;
use kaizen_rollout::run_dir::TRAJECTORIES;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepMetrics {
    /// `sft`, `rl` or `eval`.
    pub phase: String,
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub reward: f64,
    pub tool_use_rate: f64,
    pub all_wrong_tool_rate: f64,
    /// Share of the step's training rows whose advantage (as trained on) is zero.
    pub zero_advantage_rate: f64,
    /// Mean k3 KL to the reference (SFT) policy; `None` ("off") when `rl.beta` is 0, where no
    /// reference is kept and nothing is measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    pub clip_fraction: f64,
    /// Mean entropy (nats) of the sampling distribution over the step's sampled tokens
    /// (METHODS.md's diagnostics; a collapse to 0 means the policy stopped exploring).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    /// Mean `|log π_old − log π_behav|` over the trained tokens: how far the training model's
    /// log-probs are from those the sampler drew with (0 when both run the same numbers).
    pub behaviour_gap: f64,
    /// Share of trained tokens whose importance weight `π_old / π_behav` hit `rl.tis_cap`.
    pub tis_capped: f64,
    pub grad_norm: f64,
    pub response_tokens: f64,
    pub observation_tokens: f64,
    pub generation_tokens_per_s: f64,
    pub train_tokens_per_s: f64,
    pub rollout_s: f64,
    pub train_s: f64,
    /// Episodes rolled out this step, AXPO's resampled continuations included.
    pub rollouts: usize,
    /// The step's rollouts: share whose shared prompt prefix came from the prefix cache, and
    /// the prompt positions it saved computing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_hit_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_tokens_saved: Option<usize>,
    /// AXPO: groups whose tool-using rollouts all failed, prefixes resampled (K
    /// continuations each), and prefixes of which some continuation succeeded.
    pub axpo_triggered_groups: usize,
    pub axpo_prefixes: usize,
    pub axpo_recovered: usize,
    /// Agent0-VL (`rl.estimator = "process"`): the share of the step's judged steps the
    /// verifier wrote no readable verdict for (each then `Verdict::NEUTRAL`)…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifier_unreadable: Option<f64>,
    /// …and the mean score of the readable verdicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifier_score: Option<f64>,
    /// Repairs that re-derived an episode, and of those how many turned a wrong outcome right
    /// and a right one wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repairs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repairs_fixed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repairs_broke: Option<usize>,
    /// Held-out greedy pass@1 (eval lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_at_1: Option<f64>,
    /// Held-out pass@k over `eval.samples` samples at the RL temperature (eval lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_at_k: Option<f64>,
    /// Eval lines: whether greedy decoding solved each held-out task, in the order of the run's
    /// `eval_tasks.json` (what `kaizen compare` pairs runs on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greedy_solved: Option<Vec<bool>>,
}

/// A run's metrics file and checkpoints.
pub(super) struct RunLog<'a> {
    out: PathBuf,
    metrics_path: PathBuf,
    metrics_file: std::fs::File,
    on_metrics: &'a mut dyn FnMut(&StepMetrics),
    /// Every line written by this process, in order.
    pub all: Vec<StepMetrics>,
}

impl<'a> RunLog<'a> {
    /// Appends to `out/metrics.jsonl` (created if missing).
    pub fn open(out: &Path, on_metrics: &'a mut dyn FnMut(&StepMetrics)) -> crate::Result<Self> {
        let metrics_path = out.join(METRICS);
        let metrics_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(crate::RlError::io(&metrics_path))?;
        Ok(RunLog { out: out.to_path_buf(), metrics_path, metrics_file, on_metrics, all: Vec::new() })
    }

    /// Writes one metrics line; it is on disk before this returns, so a crash loses at most the
    /// line in flight.
    pub fn emit(&mut self, m: StepMetrics) -> crate::Result<()> {
        let line = serde_json::to_string(&m)?;
        writeln!(self.metrics_file, "{line}")
            .and_then(|()| self.metrics_file.flush())
            .and_then(|()| self.metrics_file.sync_data())
            .map_err(crate::RlError::io(&self.metrics_path))?;
        (self.on_metrics)(&m);
        self.all.push(m);
        Ok(())
    }

    /// The metrics lines already on disk (a resumed run's, cut at its checkpoint).
    pub fn written(&self) -> String {
        std::fs::read_to_string(&self.metrics_path).unwrap_or_default()
    }

    /// Saves a checkpoint at `phase`'s `next_step`, recording the record files' lengths.
    pub fn checkpoint(&self, policy: &TrainableLm, opt: &AdamW, phase: Phase, next_step: usize) -> crate::Result<()> {
        let progress = Progress {
            phase,
            next_step,
            optimizer_step: opt.step,
            metrics_bytes: file_len(&self.metrics_path),
            trajectories_bytes: file_len(&self.out.join(TRAJECTORIES)),
        };
        checkpoint::save(&self.out, policy, opt, &progress)
    }
}

/// A run's metrics file.
pub const METRICS: &str = "metrics.jsonl";

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
