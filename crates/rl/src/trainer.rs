//! The training loop of a recipe: an SFT cold start on the env's demonstrations, then RL
//! steps — a group of rollouts per task through the batched episode engine, rewards from the
//! env's checker, group-relative advantages, PPO-clip updates over mini-batches — with
//! held-out evaluation, `metrics.jsonl`, and the policy written as `policy.gguf` (which every
//! other kaizen verb can run) after each step.
//!
//! Rollouts run on the inference runtime (the policy's GGUF, f32); the ratio's old log-probs
//! are recomputed with the training model before the step's first update, so ratios start at
//! exactly 1 (`METHODS.md` §2; the inference path's float differences never enter the loss).

use crate::advantages::{adpo_eps_high, adpo_scale, dr_grpo, grpo, self_consistency, Estimator};
use crate::axpo::RolloutView;
use crate::axpo_resample::{axpo_rows, views_of, Resampling, TrainRow};
use crate::batch::{sft_loss, TokenBatch};
use crate::checkpoint::{self, Checkpoint, Phase, Progress};
use crate::diagnostics::{all_wrong_tool_rate, pass_at_k, tool_use_rate, zero_advantage_rate};
use crate::loss::{ppo_loss, Normalisation, PpoConfig};
use crate::optim::{AdamW, AdamWConfig};
use crate::recipe::TINY;
use crate::recipe::{Recipe, RlSection};
pub use crate::setup::{CheckerReward, Reward, Setup};
use crate::streams;
use anyhow::Context;
use candle_core::quantized::GgmlDType;
use candle_core::{backprop::GradStore, Device, Tensor, Var};
use kaizen_core::Trajectory;
use kaizen_models::trainable::{LmConfig, TrainableLm};
use kaizen_models::{LocalLlm, WeightFormat};
use kaizen_rollout::run_dir::TRAJECTORIES;
use kaizen_rollout::{demonstration, run_local, EpisodeConfig, Job, RunDir};
use kaizen_tools::ToolRegistry;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

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

/// The held-out evaluation tasks of a run, by content (`Task::content_key`), in the order of
/// every eval line's `greedy_solved`.
pub const EVAL_TASKS: &str = "eval_tasks.json";

/// The recipe's policy before any training: `tiny` freshly initialised, or the pretrained
/// model with fresh LoRA adapters — both seeded by the recipe.
pub fn initial_policy(recipe: &Recipe) -> anyhow::Result<TrainableLm> {
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
            TrainableLm::with_lora(&path, lora.config(), p.context, &dev, recipe.seed)
        }
        (name, None) => anyhow::bail!("policy.model '{name}' needs a [policy.lora] section"),
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
pub fn final_weights(run: &Path) -> anyhow::Result<std::path::PathBuf> {
    checkpoint::latest_policy(run)?.with_context(|| format!("{} has no checkpoint yet", run.display()))
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
) -> anyhow::Result<Vec<StepMetrics>> {
    recipe.validate().map_err(|e| anyhow::anyhow!(e))?;
    // Checked before any work, so a long SFT phase is not wasted on a recipe that cannot run.
    group_advantages(recipe.estimator().map_err(|e| anyhow::anyhow!(e))?, &[], &recipe.rl)?;
    let policy = initial_policy(recipe)?;
    let sft_done = match start_weights {
        None => 0,
        Some(file) => {
            policy.load_trainable(file).with_context(|| {
                format!("starting from {} (it must hold weights of the same [policy])", file.display())
            })?;
            recipe.sft.steps
        }
    };
    let run = RunDir::create(out, &serde_json::to_value(recipe)?).map_err(|e| anyhow::anyhow!(e))?;
    let progress =
        Progress { phase: Phase::Sft, next_step: sft_done, optimizer_step: 0, metrics_bytes: 0, trajectories_bytes: 0 };
    run_from(recipe, setup, run, Checkpoint { policy, moments: Default::default(), progress }, on_metrics)
}

/// The recipe a run was started with (its `config.json`).
pub fn run_recipe(out: &Path) -> anyhow::Result<Recipe> {
    let config = out.join("config.json");
    let text = std::fs::read_to_string(&config).with_context(|| format!("{} is not a training run", out.display()))?;
    let recipe: Recipe = serde_json::from_str(&text).with_context(|| format!("reading {}", config.display()))?;
    recipe.validate().map_err(|e| anyhow::anyhow!(e))?;
    Ok(recipe)
}

/// Continues the run in `out` from its latest checkpoint, with the recipe it was started
/// with (`run_recipe`) and the same `setup`: the same steps, seeds and task streams, so it
/// ends where an uninterrupted run would. Records written after the checkpoint (by steps that
/// run again) are cut first.
pub fn resume(out: &Path, setup: Setup, on_metrics: &mut dyn FnMut(&StepMetrics)) -> anyhow::Result<Vec<StepMetrics>> {
    let recipe = run_recipe(out)?;
    let Some(ckpt) = checkpoint::load(out, initial_policy(&recipe)?, &Device::Cpu)? else {
        anyhow::bail!("{} has no checkpoint yet; start it again with `kaizen train`", out.display())
    };
    for (file, len) in
        [("metrics.jsonl", ckpt.progress.metrics_bytes), (TRAJECTORIES, ckpt.progress.trajectories_bytes)]
    {
        let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(out.join(file))?;
        let have = f.metadata()?.len();
        // Shorter than at the checkpoint: records the checkpoint counts on are gone, and
        // resuming would leave a hole in the run. Longer: steps after it, which run again.
        anyhow::ensure!(
            have >= len,
            "{} is {have} bytes but was {len} at the checkpoint: records were lost, so the run cannot resume \
             exactly; start it again",
            out.join(file).display()
        );
        if have > len {
            f.set_len(len)?;
        }
    }
    let run = RunDir::open(out).map_err(|e| anyhow::anyhow!(e))?;
    run_from(&recipe, setup, run, ckpt, on_metrics)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The training loop from a starting point (a fresh policy, or a checkpoint).
fn run_from(
    recipe: &Recipe,
    setup: Setup,
    mut run: RunDir,
    start: Checkpoint,
    on_metrics: &mut dyn FnMut(&StepMetrics),
) -> anyhow::Result<Vec<StepMetrics>> {
    let estimator = recipe.estimator().map_err(|e| anyhow::anyhow!(e))?;
    let out = run.path.clone();
    let out = out.as_path();
    let Setup { env, tools: registry, shots, mut reward, sft_mix } = setup;
    anyhow::ensure!(
        sft_mix.len() == recipe.sft.mix.len(),
        "the recipe mixes {} envs into SFT but the setup opened {} (build it with Setup::of_recipe)",
        recipe.sft.mix.len(),
        sft_mix.len()
    );
    let dev = Device::Cpu;
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics_file = std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path)?;
    let mut all = Vec::new();
    let mut emit = |m: StepMetrics, all: &mut Vec<StepMetrics>| -> anyhow::Result<()> {
        writeln!(metrics_file, "{}", serde_json::to_string(&m)?)?;
        // On disk before the step counts as done: a crash loses at most the line in flight.
        metrics_file.flush()?;
        metrics_file.sync_data()?;
        on_metrics(&m);
        all.push(m);
        Ok(())
    };
    let checkpoint = |policy: &TrainableLm, opt: &AdamW, phase: Phase, next_step: usize| -> anyhow::Result<()> {
        let progress = Progress {
            phase,
            next_step,
            optimizer_step: opt.step,
            metrics_bytes: file_len(&metrics_path),
            trajectories_bytes: file_len(&out.join(TRAJECTORIES)),
        };
        checkpoint::save(out, policy, opt, &progress)
    };

    let Checkpoint { policy, moments, progress } = start;
    let gguf = out.join("policy.gguf");
    let episode_cfg = EpisodeConfig {
        max_turns: recipe.rl.max_turns,
        max_tokens_per_turn: recipe.rl.max_tokens_per_turn,
        max_episode_tokens: recipe.rl.max_turns * recipe.rl.max_tokens_per_turn,
        temperature: recipe.rl.temperature,
        shots,
        tool_schemas: recipe.tool_schemas,
        ..Default::default()
    };

    // Held-out sets, disjoint by content from every task training sees.
    let seen = streams::training_content(env.as_ref(), recipe, &sft_mix);
    let eval_set = streams::eval_tasks(env.as_ref(), recipe, &seen).map_err(anyhow::Error::msg)?;
    let keys: Vec<String> = eval_set.iter().map(|t| t.content_key()).collect();
    let keys_path = out.join(EVAL_TASKS);
    kaizen_core::durable::write_atomic(&keys_path, serde_json::to_string(&keys)?.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", keys_path.display()))?;

    // SFT cold start.
    if progress.phase == Phase::Sft && progress.next_step < recipe.sft.steps {
        let llm = serve(&policy, &gguf)?;
        let demos_of = |env: &dyn kaizen_core::Env, tasks: Vec<kaizen_core::Task>, tag: &str, cfg: &EpisodeConfig| {
            tasks
                .into_iter()
                .enumerate()
                .filter_map(|(i, task)| {
                    let turns = env.demonstration(&task)?;
                    let job = Job::new(task, i as u64, format!("{tag}-{i}"));
                    Some(demonstration(&llm, env, &registry, job, &turns, cfg))
                })
                .filter(|d| d.solved())
                .collect::<Vec<Trajectory>>()
        };
        let own = demos_of(env.as_ref(), streams::demonstration_tasks(env.as_ref(), recipe), "demo", &episode_cfg);
        anyhow::ensure!(!own.is_empty(), "env {} has no demonstrations for SFT; set sft.steps = 0", env.name());
        let mut made = vec![serde_json::json!({"env": env.name(), "demonstrations": own.len()})];
        let mut sources = vec![own];
        for (k, (m, mixed)) in recipe.sft.mix.iter().zip(&sft_mix).enumerate() {
            let bare = EpisodeConfig { shots: Vec::new(), ..episode_cfg.clone() };
            let d = demos_of(mixed.as_ref(), streams::mix_tasks(mixed.as_ref(), recipe, k), &format!("mix{k}"), &bare);
            anyhow::ensure!(!d.is_empty(), "sft.mix ({}): the env gave no solved demonstrations", m.env);
            made.push(serde_json::json!({"env": mixed.name(), "demonstrations": d.len()}));
            sources.push(d);
        }
        // What SFT trains on, per source (demonstrations the env's checker passed).
        let record = out.join(SFT_SOURCES);
        kaizen_core::durable::write_atomic(&record, serde_json::to_string_pretty(&made)?.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", record.display()))?;
        let demos = streams::interleave(sources);
        let mut opt = AdamW::new(&policy.named_vars()?, AdamWConfig { lr: recipe.sft.lr, ..Default::default() })?;
        if progress.next_step > 0 {
            opt.restore(&moments, progress.optimizer_step).map_err(anyhow::Error::msg)?;
        }
        // `sft.target_pass`: a resumed run reads its last check back from its metrics (cut at
        // the checkpoint), so it stops where an uninterrupted run would.
        let mut passed = recipe.sft.target_pass > 0.0
            && std::fs::read_to_string(&metrics_path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|m| m["phase"] == "sft")
                .filter_map(|m| m["pass_at_1"].as_f64())
                .last()
                .is_some_and(|p| reached(p, recipe.sft.target_pass));
        let check_tasks = streams::check_tasks(env.as_ref(), recipe, &seen).map_err(anyhow::Error::msg)?;
        for step in progress.next_step..recipe.sft.steps {
            if passed {
                break;
            }
            let t = Instant::now();
            let picked: Vec<&Trajectory> =
                (0..recipe.sft.batch).map(|k| &demos[(step * recipe.sft.batch + k) % demos.len()]).collect();
            let seqs: Vec<(&[u32], &[u8])> =
                picked.iter().map(|d| (d.token_ids.as_slice(), d.loss_mask.as_slice())).collect();
            let batch = TokenBatch::new(&seqs, &[], 0, &dev)?
                .showing(picked.iter().map(|d| d.token_pictures.clone()).collect());
            let loss =
                sft_loss(&policy.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, 1.0)?, &batch.mask)?;
            opt.step(&loss.backward()?)?;
            let secs = t.elapsed().as_secs_f64();
            let tokens: usize = seqs.iter().map(|(ids, _)| ids.len()).sum();
            let loss = loss.to_scalar::<f32>()? as f64;
            let check = if recipe.sft.target_pass > 0.0 && (step + 1) % recipe.sft.check_every == 0 {
                let pass =
                    share(&greedy_solved(&serve(&policy, &gguf)?, env.as_ref(), &registry, &check_tasks, &episode_cfg));
                passed = reached(pass, recipe.sft.target_pass);
                Some(pass)
            } else {
                None
            };
            let m = StepMetrics {
                phase: "sft".into(),
                step,
                loss,
                lr: recipe.sft.lr,
                train_tokens_per_s: tokens as f64 / secs,
                train_s: secs,
                pass_at_1: check,
                ..Default::default()
            };
            emit(m, &mut all)?;
            if (step + 1) % recipe.checkpoint.sft_every == 0 && step + 1 < recipe.sft.steps {
                checkpoint(&policy, &opt, Phase::Sft, step + 1)?;
            }
        }
    }

    let eval = |llm: &LocalLlm, step: usize| -> anyhow::Result<StepMetrics> {
        let tasks = &eval_set;
        let solved = greedy_solved(llm, env.as_ref(), &registry, tasks, &episode_cfg);
        let pass_1 = share(&solved);
        let k = recipe.eval.samples;
        let jobs: Vec<Job> = tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| (0..k).map(move |j| Job::new(t.clone(), (i * k + j) as u64, format!("{i:05}-{j}"))))
            .collect();
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let mut sampled = Vec::new();
        run_local(llm, env.as_ref(), &registry, jobs, &episode_cfg, 8, &mut |t| sampled.push(t));
        kaizen_rollout::in_job_order(&mut sampled, &ids);
        let pass_k = sampled.chunks(k).map(|g| pass_at_k(k, g.iter().filter(|t| t.solved()).count(), k)).sum::<f64>()
            / tasks.len().max(1) as f64;
        let views: Vec<Vec<RolloutView>> = sampled.chunks(k).map(views_of).collect();
        Ok(StepMetrics {
            phase: "eval".into(),
            step,
            pass_at_1: Some(pass_1),
            pass_at_k: Some(pass_k),
            greedy_solved: Some(solved),
            tool_use_rate: tool_use_rate(&views),
            reward: sampled.iter().map(|t| t.reward as f64).sum::<f64>() / sampled.len().max(1) as f64,
            ..Default::default()
        })
    };
    // The policy as the inference runtime runs it; reloaded once after every update.
    let mut llm = serve(&policy, &gguf)?;
    let mut opt = AdamW::new(&policy.named_vars()?, AdamWConfig { lr: recipe.rl.lr, ..Default::default() })?;
    let rl_start = match progress.phase {
        Phase::Sft => {
            policy.save_trainable(&out.join(SFT_WEIGHTS))?;
            // The policy as RL starts it, as every verb runs it (`policy.gguf` moves on with RL):
            // the SFT policy, or the starting weights where SFT has no steps.
            let bytes = std::fs::read(&gguf).with_context(|| format!("reading {}", gguf.display()))?;
            kaizen_core::durable::write_atomic(&out.join(SFT_POLICY), &bytes)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.join(SFT_POLICY).display()))?;
            if !eval_set.is_empty() {
                let m = eval(&llm, 0)?;
                emit(m, &mut all)?;
            }
            checkpoint(&policy, &opt, Phase::Rl, 0)?;
            0
        }
        Phase::Rl => {
            opt.restore(&moments, progress.optimizer_step).map_err(anyhow::Error::msg)?;
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

    let g = recipe.rl.group;
    let normalisation = match estimator {
        Estimator::DrGrpo => Normalisation::Constant(episode_cfg.max_episode_tokens as f32),
        _ => Normalisation::TokenMean,
    };
    let ppo =
        PpoConfig { eps_low: recipe.rl.eps_low, eps_high: recipe.rl.eps_high, beta: recipe.rl.beta, normalisation };
    for step in rl_start..recipe.rl.steps {
        // Rollouts: a group of G episodes per task, on the current policy.
        let t0 = Instant::now();
        let tasks = streams::rl_tasks(env.as_ref(), recipe, step);
        let jobs: Vec<Job> = tasks
            .iter()
            .enumerate()
            .flat_map(|(i, task)| {
                (0..g).map(move |j| {
                    let seed = recipe.seed.wrapping_mul(1_000_003).wrapping_add((step * 10_000 + i * g + j) as u64);
                    Job::new(task.clone(), seed, format!("s{step:04}-t{i:03}-g{j:02}"))
                })
            })
            .collect();
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let mut rollouts = Vec::new();
        let engine = run_local(&llm, env.as_ref(), &registry, jobs, &episode_cfg, 8, &mut |t| rollouts.push(t));
        kaizen_rollout::in_job_order(&mut rollouts, &ids);
        reward.score(step, &mut rollouts)?;
        for t in &rollouts {
            run.append(t).map_err(|e| anyhow::anyhow!(e)).context("recording a rollout")?;
        }
        let rollout_s = t0.elapsed().as_secs_f64();

        // Advantages per group (rollouts are sorted: groups of G in task order). AXPO adds
        // continuations resampled from the least confident failed tool calls.
        let (extra, rows, resampling) = if estimator == Estimator::Axpo {
            let mut resample = |jobs: Vec<Job>| {
                let mut out = Vec::new();
                run_local(&llm, env.as_ref(), &registry, jobs, &episode_cfg, 8, &mut |t| out.push(t));
                out
            };
            anyhow::ensure!(
                reward.is_checker(),
                "rl.estimator = \"axpo\" resamples tool calls and needs the env's checker as the reward"
            );
            axpo_rows(&llm, &rollouts, recipe, step, &mut resample)?
        } else {
            let mut rows = Vec::with_capacity(rollouts.len());
            for (gi, group) in rollouts.chunks(g).enumerate() {
                let (a, eps) = group_advantages(estimator, group, &recipe.rl)?;
                rows.extend(a.into_iter().enumerate().map(|(j, adv)| TrainRow { t: gi * g + j, mask: None, adv, eps }));
            }
            (Vec::new(), rows, Resampling::default())
        };
        for t in &extra {
            run.append(t).map_err(|e| anyhow::anyhow!(e)).context("recording a resampled rollout")?;
        }
        let trajs: Vec<&Trajectory> = rollouts.iter().chain(&extra).collect();

        // PPO-clip updates: old log-probs for every mini-batch first, then one pass of updates.
        let t1 = Instant::now();
        let lr = recipe.rl.lr * ((step + 1) as f64 / recipe.rl.warmup_steps.max(1) as f64).min(1.0);
        opt.cfg.lr = lr;
        // Rows with zero advantage carry no policy gradient (METHODS.md §2): without a KL term
        // they are left out, so they neither dilute the token mean nor take an optimizer step
        // (whose momentum and weight decay would still move the policy) — DAPO's filter.
        let order: Vec<&TrainRow> =
            rows.iter().filter(|r| !trajs[r.t].token_ids.is_empty() && (r.adv != 0.0 || reference.is_some())).collect();
        let mut batches = Vec::new();
        let (mut gap_sum, mut capped_sum, mut gap_tokens) = (0.0f64, 0.0f64, 0.0f64);
        for chunk in order.chunks(recipe.rl.minibatch) {
            let seqs: Vec<(&[u32], &[u8])> = chunk
                .iter()
                .map(|r| (trajs[r.t].token_ids.as_slice(), r.mask.as_deref().unwrap_or(&trajs[r.t].loss_mask)))
                .collect();
            let series: Vec<Vec<f32>> = chunk.iter().map(|r| vec![r.adv; trajs[r.t].token_ids.len()]).collect();
            // The sampler's own log-probs of the same tokens (the behaviour policy).
            let behaviour: Vec<Vec<f32>> = chunk.iter().map(|r| trajs[r.t].logprobs.clone()).collect();
            let batch = TokenBatch::new(&seqs, &[series, behaviour], 0, &dev)?
                .showing(chunk.iter().map(|r| trajs[r.t].token_pictures.clone()).collect());
            let old = policy
                .token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, recipe.rl.temperature)?
                .detach();
            // Truncated importance sampling, `w_t = min(π_old / π_behav, C)`, folded into the
            // advantage: w > 0 scales both PPO terms alike, so `min(ρÂ, clip(ρ)Â)·w` is the
            // clipped objective of `Â·w`.
            let gap = (&old - &batch.values[1])?;
            let weight = gap.exp()?.minimum(recipe.rl.tis_cap as f64)?;
            let adv = (&batch.values[0] * &weight)?;
            let written = batch.mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
            gap_sum += (gap.abs()? * &batch.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
            capped_sum += (weight.ge(recipe.rl.tis_cap as f64)?.to_dtype(candle_core::DType::F32)? * &batch.mask)?
                .sum_all()?
                .to_scalar::<f32>()? as f64;
            gap_tokens += written;
            let eps: Vec<f32> = chunk.iter().map(|r| r.eps).collect();
            let eps = Tensor::from_vec(eps, (chunk.len(), 1), &dev)?;
            batches.push((batch, old, eps, adv));
        }
        let (mut loss_sum, mut kl, mut clip, mut norm, mut tokens) = (0.0, 0.0, 0.0, 0.0, 0usize);
        for (batch, old, rows, adv) in &batches {
            let logp =
                policy.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, recipe.rl.temperature)?;
            let reference_lp = match &reference {
                Some(r) => Some(
                    r.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, recipe.rl.temperature)?.detach(),
                ),
                None => None,
            };
            let (loss, stats) = ppo_loss(&logp, old, reference_lp.as_ref(), adv, &batch.mask, Some(rows), &ppo)?;
            let mut grads = loss.backward()?;
            norm += clip_gradients(&mut grads, &policy.vars().all_vars(), recipe.rl.grad_clip)?;
            opt.step(&grads)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            kl += stats.kl as f64;
            clip += stats.clip_fraction as f64;
            tokens += batch.ids.elem_count();
        }
        let train_s = t1.elapsed().as_secs_f64();
        let nb = batches.len().max(1) as f64;
        let views: Vec<Vec<RolloutView>> = rollouts.chunks(g).map(views_of).collect();
        let n = rollouts.len().max(1) as f64;
        let written: usize = rollouts.iter().map(Trajectory::generated_tokens).sum();
        let observed: usize =
            rollouts.iter().map(|t| t.loss_mask.iter().skip(t.prompt_tokens).filter(|&&m| m == 0).count()).sum();
        let m = StepMetrics {
            phase: "rl".into(),
            step,
            loss: loss_sum / nb,
            lr,
            reward: rollouts.iter().map(|t| t.reward as f64).sum::<f64>() / n,
            tool_use_rate: tool_use_rate(&views),
            all_wrong_tool_rate: all_wrong_tool_rate(&views),
            zero_advantage_rate: zero_advantage_rate(&rows.iter().map(|r| r.adv).collect::<Vec<_>>()),
            kl: reference.is_some().then(|| kl / nb),
            entropy: mean_entropy(&rollouts),
            behaviour_gap: gap_sum / gap_tokens.max(1.0),
            tis_capped: capped_sum / gap_tokens.max(1.0),
            clip_fraction: clip / nb,
            grad_norm: norm / nb,
            response_tokens: written as f64 / n,
            observation_tokens: observed as f64 / n,
            generation_tokens_per_s: written as f64 / rollout_s,
            train_tokens_per_s: tokens as f64 / train_s,
            rollout_s,
            train_s,
            rollouts: trajs.len(),
            prefix_hit_rate: Some(engine.prefix.hit_rate()),
            prefix_tokens_saved: Some(engine.prefix.tokens_saved),
            axpo_prefixes: resampling.prefixes,
            axpo_recovered: resampling.recovered,
            axpo_triggered_groups: resampling.triggered_groups,
            ..Default::default()
        };
        emit(m, &mut all)?;
        llm = serve(&policy, &gguf)?;
        if !eval_set.is_empty() && ((step + 1) % recipe.eval.every == 0 || step + 1 == recipe.rl.steps) {
            let m = eval(&llm, step + 1)?;
            emit(m, &mut all)?;
        }
        if (step + 1) % recipe.checkpoint.every == 0 || step + 1 == recipe.rl.steps {
            checkpoint(&policy, &opt, Phase::Rl, step + 1)?;
        }
    }
    Ok(all)
}

/// Whether an SFT check's pass rate meets `sft.target_pass` (0: never — the target is off).
fn reached(pass: f64, target: f64) -> bool {
    target > 0.0 && pass >= target
}

/// Whether the policy solves each of `tasks` greedily (temperature 0), in task order, each
/// episode as `cfg` says.
fn greedy_solved(
    llm: &LocalLlm,
    env: &dyn kaizen_core::Env,
    registry: &ToolRegistry,
    tasks: &[kaizen_core::Task],
    cfg: &EpisodeConfig,
) -> Vec<bool> {
    let greedy_cfg = EpisodeConfig { temperature: 0.0, ..cfg.clone() };
    let jobs = tasks.iter().enumerate().map(|(i, t)| Job::new(t.clone(), i as u64, format!("{i}")));
    let mut solved = vec![false; tasks.len()];
    run_local(llm, env, registry, jobs, &greedy_cfg, 8, &mut |t| {
        if let Some(s) = t.episode_id.parse::<usize>().ok().and_then(|i| solved.get_mut(i)) {
            *s = t.solved();
        }
    });
    solved
}

/// The share of `true`s.
fn share(solved: &[bool]) -> f64 {
    solved.iter().filter(|&&s| s).count() as f64 / solved.len().max(1) as f64
}

/// The recipe's policy with `weights` (a trainable-weights file; none: as initialised),
/// written as `gguf` and loaded into the inference runtime (see `serve`).
pub fn policy_at(recipe: &Recipe, weights: Option<&Path>, gguf: &Path) -> anyhow::Result<LocalLlm> {
    let policy = initial_policy(recipe)?;
    if let Some(w) = weights {
        policy.load_trainable(w).with_context(|| format!("loading {}", w.display()))?;
    }
    serve(&policy, gguf)
}

/// Writes the policy as `path` (GGUF) and loads it into the inference runtime: `tiny` with its
/// exact f32 weights; a LoRA policy merged into Q8_0, the format the runtime serves a
/// pretrained model in (a quarter of the bytes to write and read after every step).
fn serve(policy: &TrainableLm, path: &Path) -> anyhow::Result<LocalLlm> {
    let (file, runtime) = if policy.lora().is_some() {
        (GgmlDType::Q8_0, WeightFormat::Q8_0)
    } else {
        (GgmlDType::F32, WeightFormat::F32)
    };
    policy.write_gguf(path, file)?;
    Ok(LocalLlm::load(path, runtime)?)
}

/// Advantages of one task's group of rollouts and the group's upper clip bound (ADPO widens
/// it for ambiguous tasks).
fn group_advantages(estimator: Estimator, group: &[Trajectory], rl: &RlSection) -> anyhow::Result<(Vec<f32>, f32)> {
    let rewards: Vec<f32> = group.iter().map(|t| t.reward).collect();
    let eps_high = rl.eps_high;
    Ok(match estimator {
        Estimator::Grpo => (grpo(&rewards, 1e-6), eps_high),
        Estimator::DrGrpo => (dr_grpo(&rewards), eps_high),
        Estimator::Adpo => {
            // A task from a pool (Agent0) carries the p̂ of the k executor samples that labelled
            // it — the paper's p̂; without one, the training group's own self-consistency.
            let p_hat = match group.first().and_then(|t| pool_p_hat(&t.task)) {
                Some(p) => p,
                None => {
                    let answers: Vec<Option<String>> = group.iter().map(|t| t.final_answer.clone()).collect();
                    // The group shares one task: its checker says which answers are the same.
                    let same = |a: &str, b: &str| group.first().is_some_and(|t| t.task.checker.same_answer(a, b));
                    self_consistency(&answers, same).map_or(0.0, |(_, p)| p)
                }
            };
            let s = adpo_scale(p_hat, rl.adpo_m);
            (grpo(&rewards, 1e-6).into_iter().map(|x| x * s).collect(), adpo_eps_high(p_hat, eps_high))
        }
        // Groups AXPO does not trigger on train as plain GRPO.
        Estimator::Axpo => (grpo(&rewards, 1e-6), eps_high),
    })
}

/// The self-consistency `p̂` a pool task was labelled with (`meta.p_hat`, written by
/// `kaizen evolve`'s task pool), if it is one.
pub fn pool_p_hat(task: &kaizen_core::Task) -> Option<f32> {
    task.meta.get(POOL_P_HAT)?.as_f64().map(|p| p as f32).filter(|p| (0.0..=1.0).contains(p))
}

/// The task-meta key of a pool task's `p̂`.
pub const POOL_P_HAT: &str = "p_hat";

/// Token-weighted mean of the turns' sampling entropy: `Σ_turns H̄·n / Σ_turns n`, `n` the
/// turn's sampled tokens; `None` when no turn reported one.
fn mean_entropy(rollouts: &[Trajectory]) -> Option<f64> {
    let turns = rollouts.iter().flat_map(|t| &t.turns);
    let (sum, n) = turns
        .filter_map(|t| t.entropy.map(|h| (h as f64 * t.generated_tokens as f64, t.generated_tokens as f64)))
        .fold((0.0, 0.0), |(s, n), (x, k)| (s + x, n + k));
    (n > 0.0).then(|| sum / n)
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
fn clip_gradients(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> candle_core::Result<f64> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let f = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * f)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
#[path = "trainer_tests.rs"]
mod tests;
