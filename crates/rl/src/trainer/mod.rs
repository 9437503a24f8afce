//! The training loop of a recipe, as stages with one door each: the SFT cold start on the
//! env's demonstrations (`sft`), then RL steps — the rollout stage (`rollouts`: the step's tasks
//! from the run's env, a group of episodes per task through the batched engine, the run's
//! `Reward`, the recipe's advantage estimator from `crate::estimator`), the PPO update (`ppo`)
//! —, held-out evaluation (`evaluate`), and what the run writes as it goes (`run_log`:
//! `metrics.jsonl`, checkpoints). `policy.gguf`, which every other kaizen verb can run, is
//! rewritten after each step.
//!
//! Rollouts run on the inference runtime (the policy's GGUF, f32); the ratio's old log-probs
//! are recomputed with the training model before the step's first update, so ratios start at
//! exactly 1 (`METHODS.md` §2; the inference path's float differences never enter the loss).

mod evaluate;
mod ppo;
mod rollouts;
mod run_log;
mod sft;

pub use run_log::StepMetrics;

use crate::axpo::RolloutView;
use crate::axpo_resample::views_of;
use crate::checkpoint::{self, Checkpoint, Phase, Progress};
use crate::diagnostics::{all_wrong_tool_rate, tool_use_rate, zero_advantage_rate};
use crate::error::{Result, RlError};
use crate::loss::PpoConfig;
use crate::optim::{AdamW, AdamWConfig};
use crate::recipe::Recipe;
use crate::recipe::TINY;
pub use crate::setup::{CheckerReward, Reward, Setup};
use crate::streams;
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use kaizen_core::{Env, Trajectory};
use kaizen_models::trainable::{LmConfig, TrainableLm};
use kaizen_models::{LocalLlm, WeightFormat};
use kaizen_rollout::run_dir::TRAJECTORIES;
use kaizen_rollout::{EpisodeConfig, RunDir};
use kaizen_tools::ToolRegistry;
use run_log::{RunLog, METRICS};
use std::path::{Path, PathBuf};

/// The held-out evaluation tasks of a run, by content (`Task::content_key`), in the order of
/// every eval line's `greedy_solved`.
pub const EVAL_TASKS: &str = "eval_tasks.json";

/// The recipe's policy before any training: `tiny` freshly initialised, or the pretrained
/// model with fresh LoRA adapters — both seeded by the recipe.
pub fn initial_policy(recipe: &Recipe) -> Result<TrainableLm> {
    let p = &recipe.policy;
    let dev = Device::Cpu;
    match (p.model.as_str(), &p.lora) {
        (TINY, _) => {
            let prev_token = p.prev_token.unwrap_or(true);
            let mut cfg = LmConfig { prev_token, ..LmConfig::bytes(p.layers, p.width, p.heads, p.context) };
            if let Some(v) = p.vision {
                cfg = cfg.with_vision(v.side, v.patch);
            }
            Ok(TrainableLm::new(cfg, &dev, recipe.seed)?)
        }
        (name, Some(lora)) => {
            let path = kaizen_models::home::gguf_path(name)?;
            Ok(TrainableLm::with_lora(&path, lora.config(), p.context, &dev, recipe.seed)?)
        }
        (name, None) => Err(RlError::Recipe(format!("policy.model '{name}' needs a [policy.lora] section"))),
    }
}

/// The file a run's SFT phase leaves: the policy's trainable weights (every weight of `tiny`,
/// the adapters under LoRA) after the cold start — or the weights the run started from.
pub const SFT_WEIGHTS: &str = "sft.safetensors";
/// The SFT policy as a GGUF file, beside `policy.gguf` (which RL moves on).
pub const SFT_POLICY: &str = "sft.gguf";
/// How many demonstrations SFT drew from the env and from each `sft.mix` env.
pub const SFT_SOURCES: &str = "sft_sources.json";

/// The final trainable weights of a run (its last checkpoint's), which a later run can start
/// from (`train`'s `start_weights`).
pub fn final_weights(run: &Path) -> Result<std::path::PathBuf> {
    checkpoint::latest_policy(run)?
        .ok_or_else(|| RlError::Run { path: run.to_path_buf(), what: "no checkpoint yet".into() })
}

/// Starts a new run of `recipe` in `out` (which must not hold a run yet). With
/// `start_weights` (a trainable-weights file: an earlier run's `sft.safetensors`, or its
/// `final_weights`), the policy starts from those weights and the SFT phase is skipped: RL
/// variants of one recipe branch from one cold start, and a self-evolution stage continues
/// from the last.
pub fn train(
    recipe: &Recipe,
    out: &Path,
    setup: Setup,
    start_weights: Option<&Path>,
    on_metrics: &mut dyn FnMut(&StepMetrics),
) -> Result<Vec<StepMetrics>> {
    recipe.validate().map_err(RlError::Recipe)?;
    let policy = initial_policy(recipe)?;
    let sft_done = match start_weights {
        None => 0,
        Some(file) => {
            policy.load_trainable(file).map_err(|e| RlError::Run {
                path: file.to_path_buf(),
                what: format!("cannot start from it (it must hold weights of the same [policy]): {e}"),
            })?;
            recipe.sft.steps
        }
    };
    let run = RunDir::create(out, &serde_json::to_value(recipe)?).map_err(RlError::Rollout)?;
    if let Some(file) = start_weights {
        // Where the weights came from, so what they were trained on can be traced
        // (`trained_content`).
        let file = std::path::absolute(file).map_err(RlError::io(file))?;
        let parent = file.ancestors().skip(1).find(|d| run_recipe(d).is_ok()).map(Path::to_path_buf);
        let lineage = serde_json::json!({"weights": file, "run": parent});
        let record = out.join(STARTED_FROM);
        kaizen_core::durable::write_atomic(&record, serde_json::to_string_pretty(&lineage)?.as_bytes())
            .map_err(RlError::io(&record))?;
    }
    let progress =
        Progress { phase: Phase::Sft, next_step: sft_done, optimizer_step: 0, metrics_bytes: 0, trajectories_bytes: 0 };
    run_from(recipe, setup, run, Checkpoint { policy, moments: Default::default(), progress }, on_metrics)
}

/// The recipe a run was started with (its `config.json`).
pub fn run_recipe(out: &Path) -> Result<Recipe> {
    let config = out.join("config.json");
    let text = std::fs::read_to_string(&config)
        .map_err(|e| RlError::Run { path: out.to_path_buf(), what: format!("not a training run ({e})") })?;
    let recipe: Recipe = serde_json::from_str(&text).map_err(RlError::json(&config))?;
    recipe.validate().map_err(RlError::Recipe)?;
    Ok(recipe)
}

/// Beside a run that started from another's weights: `{"weights": FILE, "run": RUN or null}`.
pub const STARTED_FROM: &str = "started_from.json";

/// The content (`Task::content_key`) of every task the weights of the training run in `run`
/// were trained on: its own RL tasks, its demonstrations (and those of `sft.mix`) where its SFT
/// ran, and — for a run that started from another run's weights (`STARTED_FROM`) — all that
/// run trained on, back along the chain (an evolve cycle's stages, `--sft-from`). Envs are
/// opened by `open`.
pub fn trained_content(run: &Path, open: crate::setup::OpenEnv) -> Result<std::collections::HashSet<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut next = Some(run.to_path_buf());
    // A chain longer than any real one is a loop in the records.
    for _ in 0..10_000 {
        let Some(dir) = next.take() else { return Ok(seen) };
        let mut r = run_recipe(&dir)?;
        let lineage = std::fs::read_to_string(dir.join(STARTED_FROM)).ok();
        if let Some(text) = &lineage {
            let l: serde_json::Value = serde_json::from_str(text).map_err(RlError::json(dir.join(STARTED_FROM)))?;
            // Its SFT was skipped: the weights came from elsewhere.
            r.sft.steps = 0;
            next = l["run"].as_str().map(PathBuf::from);
        }
        let env = open(&r.env).map_err(RlError::env(format!("{} (of {})", r.env, dir.display())))?;
        let mixed: Vec<Box<dyn Env>> = r
            .sft
            .mix
            .iter()
            .map(|m| open(&m.env).map_err(RlError::env(format!("{} (sft.mix of {})", m.env, dir.display()))))
            .collect::<Result<_>>()?;
        seen.extend(streams::training_content(env.as_ref(), &r, &mixed));
    }
    Err(RlError::Run { path: run.to_path_buf(), what: format!("the runs' {STARTED_FROM} records form a loop") })
}

/// Continues the run in `out` from its latest checkpoint, with the recipe it was started
/// with (`run_recipe`) and the same `setup`: the same steps, seeds and task streams, so it
/// ends where an uninterrupted run would. Records written after the checkpoint (by steps that
/// run again) are cut first.
pub fn resume(out: &Path, setup: Setup, on_metrics: &mut dyn FnMut(&StepMetrics)) -> Result<Vec<StepMetrics>> {
    let recipe = run_recipe(out)?;
    let Some(ckpt) = checkpoint::load(out, initial_policy(&recipe)?, &Device::Cpu)? else {
        let what = "no checkpoint yet; start it again with `kaizen train`".into();
        return Err(RlError::Run { path: out.to_path_buf(), what });
    };
    for (file, len) in [(METRICS, ckpt.progress.metrics_bytes), (TRAJECTORIES, ckpt.progress.trajectories_bytes)] {
        let path = out.join(file);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(RlError::io(&path))?;
        let have = f.metadata().map_err(RlError::io(&path))?.len();
        // Shorter than at the checkpoint: records the checkpoint counts on are gone, and
        // resuming would leave a hole in the run. Longer: steps after it, which run again.
        if have < len {
            let what = format!(
                "{have} bytes but was {len} at the checkpoint: records were lost, so the run cannot resume \
                 exactly; start it again"
            );
            return Err(RlError::Run { path, what });
        }
        if have > len {
            f.set_len(len).map_err(RlError::io(&path))?;
        }
    }
    let run = RunDir::open(out).map_err(RlError::Rollout)?;
    run_from(&recipe, setup, run, ckpt, on_metrics)
}

/// What every stage of one run reads.
pub(crate) struct RunContext<'a> {
    recipe: &'a Recipe,
    env: &'a dyn Env,
    tools: &'a ToolRegistry,
    /// How each episode runs: the recipe's RL turns, tokens, temperature and worked examples.
    episode: EpisodeConfig,
    /// Where the policy is written for the inference runtime.
    gguf: PathBuf,
    out: PathBuf,
}

/// The training loop from a starting point (a fresh policy, or a checkpoint).
fn run_from(
    recipe: &Recipe,
    setup: Setup,
    mut run: RunDir,
    start: Checkpoint,
    on_metrics: &mut dyn FnMut(&StepMetrics),
) -> Result<Vec<StepMetrics>> {
    let out = run.path.clone();
    let Setup { env, tools, shots, mut reward, sft_mix } = setup;
    if sft_mix.len() != recipe.sft.mix.len() {
        return Err(RlError::Input(format!(
            "the recipe mixes {} envs into SFT but the setup opened {} (build it with Setup::of_recipe)",
            recipe.sft.mix.len(),
            sft_mix.len()
        )));
    }
    let mut log = RunLog::open(&out, on_metrics)?;
    let Checkpoint { policy, moments, progress } = start;
    let episode = recipe.rl.episode().config(shots, recipe.tool_schemas, false);
    let ctx = RunContext {
        recipe,
        env: env.as_ref(),
        tools: &tools,
        episode,
        gguf: out.join("policy.gguf"),
        out: out.clone(),
    };

    // Held-out sets, disjoint by content from every task training sees.
    let seen = streams::training_content(ctx.env, recipe, &sft_mix);
    let eval_set = streams::eval_tasks(ctx.env, recipe, &seen).map_err(RlError::env(&recipe.env))?;
    let keys: Vec<String> = eval_set.iter().map(|t| t.content_key()).collect();
    let keys_path = out.join(EVAL_TASKS);
    kaizen_core::durable::write_atomic(&keys_path, serde_json::to_string(&keys)?.as_bytes())
        .map_err(RlError::io(&keys_path))?;

    if progress.phase == Phase::Sft && progress.next_step < recipe.sft.steps {
        sft::cold_start(&ctx, &sft_mix, &policy, &moments, &progress, &seen, &mut log)?;
    }

    // The policy as the inference runtime runs it; reloaded once after every update.
    let mut llm = serve(&policy, &ctx.gguf)?;
    let mut opt = AdamW::new(&policy.named_vars()?, AdamWConfig { lr: recipe.rl.lr, ..Default::default() })?;
    let rl_start = match progress.phase {
        Phase::Sft => {
            policy.save_trainable(&out.join(SFT_WEIGHTS))?;
            // The policy as RL starts it, as every verb runs it (`policy.gguf` moves on with RL):
            // the SFT policy, or the starting weights where SFT has no steps.
            let bytes = std::fs::read(&ctx.gguf).map_err(RlError::io(&ctx.gguf))?;
            let sft_policy = out.join(SFT_POLICY);
            kaizen_core::durable::write_atomic(&sft_policy, &bytes).map_err(RlError::io(&sft_policy))?;
            if !eval_set.is_empty() {
                log.emit(evaluate::evaluate(&ctx, &llm, &eval_set, 0))?;
            }
            log.checkpoint(&policy, &opt, Phase::Rl, 0)?;
            0
        }
        Phase::Rl => {
            opt.restore(&moments, progress.optimizer_step).map_err(|what| RlError::Run { path: out.clone(), what })?;
            progress.next_step
        }
    };
    let reference = if recipe.rl.beta > 0.0 {
        let r = policy.copy()?;
        r.load_trainable(&out.join(SFT_WEIGHTS))?;
        Some(r)
    } else {
        None
    };

    let estimator = recipe.rl.estimator;
    let ppo = PpoConfig {
        eps_low: recipe.rl.eps_low,
        eps_high: recipe.rl.eps_high,
        beta: recipe.rl.beta,
        normalisation: estimator.normalisation(ctx.episode.max_episode_tokens),
    };
    for step in rl_start..recipe.rl.steps {
        let step_rollouts = rollouts::roll_out(&ctx, &llm, reward.as_mut(), &mut run, step)?;
        let trajs = step_rollouts.trajectories();
        let t1 = std::time::Instant::now();
        let lr = recipe.rl.lr * ((step + 1) as f64 / recipe.rl.warmup_steps.max(1) as f64).min(1.0);
        opt.cfg.lr = lr;
        let update = ppo::update(&policy, reference.as_ref(), &mut opt, &trajs, &step_rollouts.rows, &recipe.rl, &ppo)?;
        let train_s = t1.elapsed().as_secs_f64();
        log.emit(rl_metrics(step, recipe.rl.group, lr, &step_rollouts, &update, reference.is_some(), train_s))?;
        llm = serve(&policy, &ctx.gguf)?;
        if !eval_set.is_empty() && ((step + 1) % recipe.eval.every == 0 || step + 1 == recipe.rl.steps) {
            log.emit(evaluate::evaluate(&ctx, &llm, &eval_set, step + 1))?;
        }
        if (step + 1) % recipe.checkpoint.every == 0 || step + 1 == recipe.rl.steps {
            log.checkpoint(&policy, &opt, Phase::Rl, step + 1)?;
        }
    }
    Ok(log.all)
}

/// The `rl` metrics line of one step.
fn rl_metrics(
    step: usize,
    group: usize,
    lr: f64,
    r: &rollouts::StepRollouts,
    u: &ppo::UpdateStats,
    kl_measured: bool,
    train_s: f64,
) -> StepMetrics {
    let rollouts = &r.rollouts;
    let views: Vec<Vec<RolloutView>> = rollouts.chunks(group).map(views_of).collect();
    let n = rollouts.len().max(1) as f64;
    let written: usize = rollouts.iter().map(Trajectory::generated_tokens).sum();
    let observed: usize =
        rollouts.iter().map(|t| t.loss_mask.iter().skip(t.prompt_tokens).filter(|&&m| m == 0).count()).sum();
    let repairs = crate::verifier_reward::repair_counts(rollouts);
    StepMetrics {
        phase: "rl".into(),
        step,
        loss: u.loss,
        lr,
        reward: rollouts.iter().map(|t| t.reward as f64).sum::<f64>() / n,
        tool_use_rate: tool_use_rate(&views),
        all_wrong_tool_rate: all_wrong_tool_rate(&views),
        zero_advantage_rate: zero_advantage_rate(&r.rows.iter().map(|row| row.adv.max_abs()).collect::<Vec<_>>()),
        kl: kl_measured.then_some(u.kl),
        entropy: mean_entropy(rollouts),
        behaviour_gap: u.behaviour_gap,
        tis_capped: u.tis_capped,
        clip_fraction: u.clip_fraction,
        grad_norm: u.grad_norm,
        response_tokens: written as f64 / n,
        observation_tokens: observed as f64 / n,
        generation_tokens_per_s: written as f64 / r.seconds,
        train_tokens_per_s: u.tokens as f64 / train_s,
        rollout_s: r.seconds,
        train_s,
        rollouts: r.rollouts.len() + r.extra.len(),
        prefix_hit_rate: Some(r.engine.prefix.hit_rate()),
        prefix_tokens_saved: Some(r.engine.prefix.tokens_saved),
        axpo_prefixes: r.resampling.prefixes,
        axpo_recovered: r.resampling.recovered,
        axpo_triggered_groups: r.resampling.triggered_groups,
        verifier_unreadable: crate::process::unreadable_share(rollouts),
        verifier_score: crate::process::mean_score(rollouts),
        repairs: repairs.map(|c| c.0),
        repairs_fixed: repairs.map(|c| c.1),
        repairs_broke: repairs.map(|c| c.2),
        ..Default::default()
    }
}

/// The recipe's policy with `weights` (a trainable-weights file; none: as initialised),
/// written as `gguf` and loaded into the inference runtime (see `serve`).
pub fn policy_at(recipe: &Recipe, weights: Option<&Path>, gguf: &Path) -> Result<LocalLlm> {
    let policy = initial_policy(recipe)?;
    if let Some(w) = weights {
        policy.load_trainable(w).map_err(|e| RlError::Run { path: w.to_path_buf(), what: format!("loading: {e}") })?;
    }
    serve(&policy, gguf)
}

/// Writes the policy as `path` (GGUF) and loads it into the inference runtime: `tiny` with its
/// exact f32 weights; a LoRA policy merged into Q8_0, the format the runtime serves a
/// pretrained model in (a quarter of the bytes to write and read after every step).
fn serve(policy: &TrainableLm, path: &Path) -> Result<LocalLlm> {
    let (file, runtime) = if policy.lora().is_some() {
        (GgmlDType::Q8_0, WeightFormat::Q8_0)
    } else {
        (GgmlDType::F32, WeightFormat::F32)
    };
    policy.write_gguf(path, file)?;
    Ok(LocalLlm::load(path, runtime)?)
}

/// Token-weighted mean of the turns' sampling entropy: `Σ_turns H̄·n / Σ_turns n`, `n` the
/// turn's sampled tokens; `None` when no turn reported one.
fn mean_entropy(rollouts: &[Trajectory]) -> Option<f64> {
    let turns = rollouts.iter().flat_map(|t| &t.turns);
    let (sum, n) = turns
        .filter_map(|t| t.entropy.map(|h| (h as f64 * t.generated_tokens as f64, t.generated_tokens as f64)))
        .fold((0.0, 0.0), |(s, n), (x, k)| (s + x, n + k));
    (n > 0.0).then(|| sum / n)
}

#[cfg(test)]
#[path = "trainer_tests.rs"]
mod tests;
