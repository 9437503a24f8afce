//! `kaizen evolve`: the Agent0 loop (`../shared/METHODS.md` §4). Each iteration
//! 1. trains the curriculum agent (GRPO) against the frozen executor, rewarded by
//!    `curriculum::task_reward` over `k` executor samples of every task it writes;
//! 2. freezes it, writes `pool.candidates` tasks, judges each with `k` executor samples and keeps
//!    `low ≤ p̂ ≤ high` with the majority answer as pseudo-label (`pool`);
//! 3. trains the executor on that pool with ADPO (reward `1[answer = pseudo-label]`, `p̂` from
//!    the pool);
//! 4. scores the executor on held-out ground-truth sets (greedy, 95% Wilson intervals).
//!
//! One run directory: `config.json` (the resolved recipe), `held_out.json` (the held-out
//! tasks' content keys), `iter-0/eval.json` (the base
//! executor), and per iteration `iter-N/curriculum/` and `iter-N/executor/` (training runs
//! `kaizen report` reads), `iter-N/pool.jsonl` (the pool, a task file) with `pool.json` (its
//! statistics and every candidate's verdict), `iter-N/eval.json`; `evolution.jsonl` holds one
//! line per finished iteration. Every stage leaves its result under a name written last
//! (atomically), so after `kill -9` the loop resumes at the first stage without one — a
//! training stage from its own latest checkpoint.

use crate::curriculum::{batch_rewards, parse_task, Clusters, CurriculumEnv, Judged, RewardWeights};
use crate::error::{EvolveError, Result};
use crate::pool::{judge, screen, select, unlabelled, PoolStats};
use crate::recipe::EvolveRecipe;
use kaizen_core::durable::write_atomic;
use kaizen_core::{Env, Message, Task, Trajectory};
use kaizen_models::LocalLlm;
use kaizen_rl::trainer::{final_weights, policy_at};
use kaizen_rl::{Reward, Scoring, Setup, StepMetrics};
use kaizen_rollout::runner::{Mode, Runner};
use kaizen_rollout::{Agent, EpisodeArgs, EpisodeConfig, Job};
use kaizen_tools::ToolRegistry;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Stream tags XOR-ed into an iteration's seed.
const POOL_STREAM: u64 = 0x9001_0000;
/// The curriculum reward's executor samples; step `s` of the stage adds `s · STEP_STRIDE`.
const JUDGE_STREAM: u64 = 0x7D6E_0000;
/// The pool's executor samples.
const POOL_JUDGE_STREAM: u64 = 0x9D6E_0000_0000;
/// Far above any step's `k × tasks` samples and below the next stream tag.
const STEP_STRIDE: u64 = 1 << 20;
const EVAL_STREAM: u64 = 0xE7A1_E7A1;

/// The content keys (`Task::content_key`) of every held-out task, which no pool may hold.
pub const HELD_OUT: &str = "held_out.json";

/// A finished stage's marker inside a training stage's directory.
pub(crate) const DONE: &str = "DONE";

/// What the loop reports as it goes.
pub enum Event<'a> {
    /// A stage starts (`iteration`, what it does).
    Stage(usize, &'a str),
    /// A training stage's step.
    Metrics(&'a StepMetrics),
    /// An iteration is complete.
    Iteration(&'a IterationRecord),
    /// An iteration of the Agent0-VL cycle is scored.
    VlIteration(&'a crate::vl::VlRecord),
    /// Something the user should know that does not stop the run (a held-out set smaller than
    /// asked, say).
    Warning(&'a str),
}

/// One held-out set's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetScore {
    pub set: String,
    pub tasks: usize,
    pub solved: usize,
    pub accuracy: f64,
    /// 95% Wilson interval.
    pub low: f64,
    pub high: f64,
    pub tool_calls_per_task: f64,
}

impl SetScore {
    /// The share of `episodes` solved (`Trajectory::solved`), with its interval.
    pub fn of(set: &str, episodes: &[Trajectory]) -> Self {
        let n = episodes.len();
        let solved = episodes.iter().filter(|t| t.solved()).count();
        let (low, high) = kaizen_q::metrics::wilson_interval(solved, n, 1.96);
        SetScore {
            set: set.to_string(),
            tasks: n,
            solved,
            accuracy: solved as f64 / n.max(1) as f64,
            low,
            high,
            tool_calls_per_task: episodes.iter().map(|t| t.tool_calls() as f64).sum::<f64>() / n.max(1) as f64,
        }
    }
}

/// The curriculum's own tasks as the entering executor saw them (pool writing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurriculumTasks {
    /// Share of the written tasks that failed the format gate.
    pub format_failure_rate: f64,
    /// Mean `p̂` of the judged tasks: the entering executor's agreement with its own majority,
    /// the pass rate against the pseudo-labels (no ground truth exists for these tasks).
    pub executor_pass_rate: f64,
    /// Mean tool calls per executor sample.
    pub tool_calls_per_task: f64,
    /// Repetition clusters among the judged tasks (BLEU distance, average linkage).
    pub clusters: usize,
    pub largest_cluster: usize,
    /// A few of the pool's tasks with their pseudo-labels and `p̂`.
    pub samples: Vec<String>,
}

/// The curriculum training stage's own figures (from its rollouts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurriculumTraining {
    pub rollouts: usize,
    pub mean_reward: f64,
    pub format_failure_rate: f64,
    pub mean_p_hat: f64,
    pub seconds: f64,
}

/// One line of `evolution.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    pub iteration: usize,
    pub held_out: Vec<SetScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curriculum: Option<CurriculumTraining>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<CurriculumTasks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStats>,
    /// Whether the executor trained this iteration (not on an empty pool).
    pub executor_trained: bool,
}

/// The pool stage's result (`iter-N/pool.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PoolReport {
    stats: PoolStats,
    tasks: CurriculumTasks,
    seconds: f64,
    /// Every candidate: its text (null: unparseable) and, if judged, the verdict.
    candidates: Vec<(Option<String>, Option<Judged>)>,
}

/// The evaluation stage's result (`iter-N/eval.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EvalReport {
    scores: Vec<SetScore>,
    seconds: f64,
}

/// Starts a new evolve run of `recipe` in `out` (which must not hold one).
pub fn evolve(recipe: &EvolveRecipe, out: &Path, on: &mut dyn FnMut(Event)) -> Result<Vec<IterationRecord>> {
    recipe.validate().map_err(EvolveError::Recipe)?;
    new_run_dir(out)?;
    let mut recipe = recipe.clone();
    for spec in recipe.eval.sets.iter_mut().chain(recipe.executor.shots_from.as_mut()) {
        absolute_task_file(spec)?;
    }
    write_file(&out.join("config.json"), serde_json::to_string_pretty(&recipe)?.as_bytes())?;
    run(&recipe, out, on)
}

/// Creates `out` for a new run; refused where it holds one.
pub(crate) fn new_run_dir(out: &Path) -> Result<()> {
    if out.join("config.json").exists() {
        let what = "already holds a run; choose another --out, or continue it with --resume".into();
        return Err(EvolveError::Run { path: out.to_path_buf(), what });
    }
    std::fs::create_dir_all(out).map_err(EvolveError::io(out))
}

/// `write_atomic` with the path in its error.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).map_err(EvolveError::io(path))
}

/// A directory and its parents, with the path in its error.
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(EvolveError::io(path))
}

/// The JSON file at `path`, with the path in its error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(EvolveError::io(path))?;
    serde_json::from_str(&text).map_err(EvolveError::json(path))
}

/// `path` as an absolute path (for a resume from another directory).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(EvolveError::io(path))
}

/// A `jsonl:PATH` env spec by absolute path, so a resume from another directory reads the same
/// file; other specs as they are.
pub(crate) fn absolute_task_file(spec: &mut String) -> Result<()> {
    if let Some(path) = spec.strip_prefix("jsonl:") {
        *spec = format!("jsonl:{}", absolute(Path::new(path))?.display());
    }
    Ok(())
}

/// Writes the held-out tasks' content keys into a new run, or checks a resumed run's: it must
/// score on the tasks it started with (a task file may have changed since).
pub(crate) fn pin_held_out(out: &Path, mut keys: Vec<String>) -> Result<()> {
    keys.sort();
    let keys = serde_json::to_string(&keys)?;
    match std::fs::read_to_string(out.join(HELD_OUT)) {
        Ok(before) if before != keys => Err(EvolveError::Run {
            path: out.join(HELD_OUT),
            what: "the held-out tasks differ from those the run started with: a task file changed".into(),
        }),
        Ok(_) => Ok(()),
        Err(_) => write_file(&out.join(HELD_OUT), keys.as_bytes()),
    }
}

/// `evolution.jsonl`: one line per finished iteration, rewritten whole (atomically).
pub(crate) fn write_evolution<T: Serialize>(out: &Path, records: &[T]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    write_file(&out.join("evolution.jsonl"), text.as_bytes())
}

/// Continues the evolve run in `out` at its first unfinished stage, with its own recipe.
pub fn resume(out: &Path, on: &mut dyn FnMut(Event)) -> Result<Vec<IterationRecord>> {
    let recipe = run_recipe(out)?;
    run(&recipe, out, on)
}

/// The recipe an evolve run was started with.
pub fn run_recipe(out: &Path) -> Result<EvolveRecipe> {
    let path = out.join("config.json");
    let text = read_run_config(out)?;
    let recipe: EvolveRecipe = serde_json::from_str(&text).map_err(EvolveError::json(&path))?;
    recipe.validate().map_err(EvolveError::Recipe)?;
    Ok(recipe)
}

/// The text of an evolve run's `config.json`.
pub(crate) fn read_run_config(out: &Path) -> Result<String> {
    std::fs::read_to_string(out.join("config.json"))
        .map_err(|e| EvolveError::Run { path: out.to_path_buf(), what: format!("not an evolve run ({e})") })
}

/// The held-out ground-truth sets: each env's tasks from the evaluation stream, distinct by
/// content, none of them a task the worked examples may show (the examples' whole stream is
/// left out: their solutions are in every prompt).
pub fn held_out_sets(recipe: &EvolveRecipe) -> Result<Vec<(String, Box<dyn Env>, Vec<Task>)>> {
    let shown: HashSet<String> = match &recipe.executor.shots_from {
        Some(spec) if recipe.executor.shots > 0 => {
            let env = kaizen_envs::open(spec).map_err(EvolveError::env("executor.shots_from", spec))?;
            env.tasks(kaizen_rollout::episode::SHOT_SEED, 4 * recipe.executor.shots)
                .iter()
                .map(Task::content_key)
                .collect()
        }
        _ => HashSet::new(),
    };
    recipe
        .eval
        .sets
        .iter()
        .map(|spec| {
            let env = kaizen_envs::open(spec).map_err(EvolveError::env("eval.sets", spec))?;
            let mut seen = HashSet::new();
            let tasks: Vec<Task> = env
                .tasks(recipe.seed ^ EVAL_STREAM, recipe.eval.tasks)
                .into_iter()
                .filter(|t| !shown.contains(&t.content_key()) && seen.insert(t.content_key()))
                .collect();
            Ok((spec.clone(), env, tasks))
        })
        .collect()
}

/// The content keys of every held-out task: the pool never takes a task with one.
pub fn held_out_keys(sets: &[(String, Box<dyn Env>, Vec<Task>)]) -> HashSet<String> {
    sets.iter().flat_map(|(_, _, ts)| ts.iter().map(Task::content_key)).collect()
}

fn iter_dir(out: &Path, i: usize) -> PathBuf {
    out.join(format!("iter-{i}"))
}

/// The executor's episodes (judging, evaluation) at `temperature`.
fn executor_cfg(recipe: &EvolveRecipe, shots: &[Message], temperature: f32) -> EpisodeConfig {
    let e = &recipe.executor;
    let args = EpisodeArgs {
        max_turns: e.max_turns,
        max_tokens_per_turn: e.max_tokens_per_turn,
        max_episode_tokens: None,
        temperature,
    };
    args.config(shots.to_vec(), true, false)
}

/// The curriculum's episodes: one turn, no tools.
fn curriculum_cfg(recipe: &EvolveRecipe, temperature: f32) -> EpisodeConfig {
    let c = &recipe.curriculum;
    let args =
        EpisodeArgs { max_turns: 1, max_tokens_per_turn: c.max_tokens_per_turn, max_episode_tokens: None, temperature };
    args.config(Vec::new(), false, false)
}

/// The executor's trainable weights after iteration `i` (the latest iteration ≤ `i` whose
/// executor trained); `None`: the base policy.
fn executor_weights(out: &Path, i: usize) -> Result<Option<PathBuf>> {
    for j in (1..=i).rev() {
        let dir = iter_dir(out, j).join("executor");
        if dir.join(DONE).exists() {
            return Ok(Some(final_weights(&dir)?));
        }
    }
    Ok(None)
}

/// The curriculum's weights after iteration `i` (`None`: the base policy).
fn curriculum_weights(out: &Path, i: usize) -> Result<Option<PathBuf>> {
    if i == 0 {
        return Ok(None);
    }
    Ok(Some(final_weights(&iter_dir(out, i).join("curriculum"))?))
}

/// The text a curriculum episode wrote.
fn written(t: &Trajectory) -> String {
    t.turns.iter().map(|x| x.text.as_str()).collect::<Vec<_>>().join("\n")
}

/// The curriculum reward as a training stage's reward: every rollout's task judged by `k`
/// samples of the frozen executor, the step's batch clustered.
struct CurriculumReward {
    executor: Arc<LocalLlm>,
    env: kaizen_envs::JsonlEnv,
    tools: ToolRegistry,
    cfg: EpisodeConfig,
    k: usize,
    weights: RewardWeights,
    seed: u64,
}

impl Reward for CurriculumReward {
    fn score(&mut self, at: &Scoring, rollouts: &mut [Trajectory]) -> kaizen_rl::Result<()> {
        let step = at.step;
        let parsed: Vec<Option<String>> = rollouts.iter().map(|t| parse_task(&written(t))).collect();
        let tasks: Vec<Task> = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|q| unlabelled(format!("s{step}-c{i}"), q)))
            .collect();
        let seed = self.seed.wrapping_add(step as u64 * STEP_STRIDE);
        let (judged, _) = judge(&self.executor, &self.env, &self.tools, &self.cfg, &tasks, self.k, seed)
            .map_err(|e| kaizen_rl::RlError::Reward(format!("the executor judging the curriculum's tasks: {e}")))?;
        let mut verdicts = judged.into_iter();
        let judged: Vec<Option<Judged>> = parsed.iter().map(|p| p.as_ref().and_then(|_| verdicts.next())).collect();
        let (rewards, clusters) = batch_rewards(&self.weights, &parsed, &judged);
        let mut k = 0;
        for (i, t) in rollouts.iter_mut().enumerate() {
            t.reward = rewards[i] as f32;
            let (cluster, share) = match parsed[i] {
                Some(_) => {
                    k += 1;
                    (Some(clusters.labels[k - 1]), Some(clusters.shares[k - 1]))
                }
                None => (None, None),
            };
            t.reward_detail = serde_json::json!({
                "curriculum_task": parsed[i],
                "verdict": judged[i],
                "cluster": cluster,
                "cluster_share": share,
            });
        }
        Ok(())
    }
}

/// Runs every stage not yet done, in order.
fn run(recipe: &EvolveRecipe, out: &Path, on: &mut dyn FnMut(Event)) -> Result<Vec<IterationRecord>> {
    let out = &absolute(out)?;
    let tools = ToolRegistry::standard();
    let solve_env = kaizen_envs::JsonlEnv::from_tasks("generated", Vec::new());
    // Generated tasks have no worked solutions: examples come from `shots_from` (arith).
    let shots = kaizen_rl::setup::worked_examples(
        &solve_env,
        recipe.executor.shots_from.as_deref(),
        &kaizen_envs::open,
        &tools,
        recipe.executor.shots,
    )
    .map_err(|e| {
        let spec = recipe.executor.shots_from.as_deref().unwrap_or(solve_env.name());
        EvolveError::env("executor.shots_from", spec)(e.to_string())
    })?;
    let curriculum_shots = kaizen_rollout::few_shot(&CurriculumEnv, &tools, recipe.curriculum_shots)
        .map_err(EvolveError::env("curriculum_shots", CurriculumEnv.name()))?;
    let sets = held_out_sets(recipe)?;
    let held_keys = held_out_keys(&sets);
    // A resumed run must score on the sets its pools were screened against.
    pin_held_out(out, held_keys.iter().cloned().collect())?;
    // Any recipe of the base policy serves to build an executor from weights.
    let base = recipe.executor_recipe(0, Path::new("pool.jsonl"));
    // The executor after iteration `i`, loaded once per weights file: the evaluation of one
    // iteration, the curriculum and pool stages of the next use the same model (and its
    // prefix cache).
    let loaded: std::cell::RefCell<Option<(Option<PathBuf>, Arc<LocalLlm>)>> = Default::default();
    let executor_at = |i: usize, gguf: &Path| -> Result<Arc<LocalLlm>> {
        let weights = executor_weights(out, i)?;
        if let Some((w, llm)) = loaded.borrow().as_ref() {
            if *w == weights {
                return Ok(llm.clone());
            }
        }
        let llm = Arc::new(policy_at(&base, weights.as_deref(), gguf)?);
        *loaded.borrow_mut() = Some((weights, llm.clone()));
        Ok(llm)
    };

    let mut records = Vec::new();
    eval_stage(recipe, out, 0, &sets, &tools, &shots, &executor_at, on)?;
    records.push(record(out, 0)?);
    for i in 1..=recipe.iterations {
        let dir = iter_dir(out, i);
        create_dir(&dir)?;

        // 1. The curriculum, against the executor that enters this iteration.
        let stage = dir.join("curriculum");
        if !stage.join(DONE).exists() {
            on(Event::Stage(i, "training the curriculum against the frozen executor"));
            let reward = CurriculumReward {
                executor: executor_at(i - 1, &dir.join("executor.gguf"))?,
                env: kaizen_envs::JsonlEnv::from_tasks("generated", Vec::new()),
                tools: ToolRegistry::standard(),
                cfg: executor_cfg(recipe, &shots, recipe.executor.temperature),
                k: recipe.executor.samples,
                weights: recipe.curriculum_reward.clone(),
                seed: recipe.stream_seed(i, JUDGE_STREAM),
            };
            let setup = Setup {
                env: Box::new(CurriculumEnv),
                tools: ToolRegistry::standard(),
                shots: curriculum_shots.clone(),
                reward: Box::new(reward),
                sft_mix: Vec::new(),
            };
            let start = curriculum_weights(out, i - 1)?;
            train_stage(&recipe.curriculum_recipe(i), &stage, setup, start.as_deref(), on)?;
        }

        // 2. The pool, written by the frozen curriculum and labelled by the executor's votes.
        if !dir.join("pool.json").exists() {
            on(Event::Stage(i, "writing and labelling the task pool"));
            let t = Instant::now();
            let curriculum_file = final_weights(&stage)?;
            let curriculum =
                policy_at(&recipe.curriculum_recipe(i), Some(&curriculum_file), &dir.join("curriculum.gguf"))?;
            let prompts = CurriculumEnv.tasks(recipe.stream_seed(i, POOL_STREAM), recipe.pool.candidates);
            let seed = recipe.stream_seed(i, POOL_STREAM);
            let jobs: Vec<Job> = prompts
                .into_iter()
                .enumerate()
                .map(|(j, task)| Job::new(task, seed.wrapping_add(j as u64), format!("write-{j:04}")))
                .collect();
            let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
            let mut outputs = Vec::new();
            let cfg =
                EpisodeConfig { shots: curriculum_shots.clone(), ..curriculum_cfg(recipe, recipe.pool.temperature) };
            Runner::new(Agent::Local(&curriculum), &CurriculumEnv, &tools, 8)
                .run(jobs, &cfg, &Mode::Plain, &mut |t| outputs.push(t));
            kaizen_rollout::in_job_order(&mut outputs, &ids);
            drop(curriculum);
            let parsed: Vec<Option<String>> = outputs.iter().map(|t| parse_task(&written(t))).collect();
            let mut stats = PoolStats::default();
            let survivors = screen(&parsed, &held_keys, &mut stats);
            let executor = executor_at(i - 1, &dir.join("executor.gguf"))?;
            let tasks: Vec<Task> =
                survivors.iter().enumerate().map(|(j, q)| unlabelled(format!("it{i}-{j:04}"), q)).collect();
            let k = recipe.executor.samples;
            let cfg = executor_cfg(recipe, &shots, recipe.executor.temperature);
            let (judged, _) =
                judge(&executor, &solve_env, &tools, &cfg, &tasks, k, recipe.stream_seed(i, POOL_JUDGE_STREAM))?;
            let label = curriculum_file.strip_prefix(out).unwrap_or(&curriculum_file).display().to_string();
            let pool = select(&survivors, &judged, recipe.band(), k, i, &label, &mut stats);
            let mut lines = String::new();
            for p in &pool {
                lines.push_str(&serde_json::to_string(p)?);
                lines.push('\n');
            }
            write_file(&dir.join("pool.jsonl"), lines.as_bytes())?;
            let clusters = Clusters::of(&survivors, recipe.curriculum_reward.cluster_threshold);
            let n = judged.len().max(1) as f64;
            let tasks = CurriculumTasks {
                format_failure_rate: stats.unparseable as f64 / stats.candidates.max(1) as f64,
                executor_pass_rate: judged.iter().map(|j| j.p_hat).sum::<f64>() / n,
                tool_calls_per_task: judged.iter().map(|j| j.tool_calls).sum::<f64>() / n,
                clusters: clusters.count(),
                largest_cluster: clusters.largest(),
                samples: pool
                    .iter()
                    .take(3)
                    .map(|p| format!("{} → {} (p̂ {:.2})", p.prompt, p.answer, p.meta.p_hat))
                    .collect(),
            };
            let mut verdicts = judged.iter().cloned();
            let mut kept = survivors.iter().peekable();
            let candidates = parsed
                .iter()
                .map(|p| {
                    let verdict = match (p, kept.peek()) {
                        (Some(t), Some(s)) if t == *s => {
                            kept.next();
                            verdicts.next()
                        }
                        _ => None,
                    };
                    (p.clone(), verdict)
                })
                .collect();
            let report = PoolReport { stats, tasks, seconds: t.elapsed().as_secs_f64(), candidates };
            write_file(&dir.join("pool.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
        }

        // 3. The executor, on the pool (nothing to train on when the pool is empty).
        let stage = dir.join("executor");
        let pool_file = dir.join("pool.jsonl");
        let pool_empty = std::fs::metadata(&pool_file).map(|m| m.len() == 0).unwrap_or(true);
        if !pool_empty && !stage.join(DONE).exists() {
            on(Event::Stage(i, "training the executor on the pool"));
            let exec_recipe = recipe.executor_recipe(i, &pool_file);
            let setup = Setup::of_recipe(&exec_recipe, &kaizen_envs::open, ToolRegistry::standard())?;
            let start = executor_weights(out, i - 1)?;
            train_stage(&exec_recipe, &stage, setup, start.as_deref(), on)?;
        } else if pool_empty {
            on(Event::Stage(i, "the pool is empty: the executor does not train this iteration"));
        }

        // 4. Held-out ground truth.
        eval_stage(recipe, out, i, &sets, &tools, &shots, &executor_at, on)?;
        let r = record(out, i)?;
        on(Event::Iteration(&r));
        records.push(r);
        write_evolution(out, &records)?;
    }
    Ok(records)
}

/// A training stage: resumed from its checkpoint if it has one, else started (afresh).
pub(crate) fn train_stage(
    recipe: &kaizen_rl::Recipe,
    dir: &Path,
    setup: Setup,
    start: Option<&Path>,
    on: &mut dyn FnMut(Event),
) -> Result<()> {
    let mut on_metrics = |m: &StepMetrics| on(Event::Metrics(m));
    if dir.join("checkpoints").join("latest").exists() {
        kaizen_rl::resume(dir, setup, &mut on_metrics)?;
    } else {
        if dir.exists() {
            // Killed before its first checkpoint: nothing in it to keep.
            std::fs::remove_dir_all(dir).map_err(EvolveError::io(dir))?;
        }
        kaizen_rl::train(recipe, dir, setup, start, &mut on_metrics)?;
    }
    write_file(&dir.join(DONE), b"")
}

/// The executor after iteration `i` on every held-out set, greedy (`iter-N/eval.json`).
#[allow(clippy::too_many_arguments)]
fn eval_stage(
    recipe: &EvolveRecipe,
    out: &Path,
    i: usize,
    sets: &[(String, Box<dyn Env>, Vec<Task>)],
    tools: &ToolRegistry,
    shots: &[Message],
    executor_at: &dyn Fn(usize, &Path) -> Result<Arc<LocalLlm>>,
    on: &mut dyn FnMut(Event),
) -> Result<()> {
    let dir = iter_dir(out, i);
    if dir.join("eval.json").exists() {
        return Ok(());
    }
    on(Event::Stage(i, "scoring the executor on the held-out sets"));
    create_dir(&dir)?;
    let t = Instant::now();
    let executor = executor_at(i, &dir.join("executor.gguf"))?;
    let cfg = executor_cfg(recipe, shots, 0.0);
    let mut scores = Vec::new();
    for (spec, env, tasks) in sets {
        let jobs = tasks.iter().enumerate().map(|(j, t)| Job::new(t.clone(), j as u64, format!("{j:05}")));
        let mut eps = Vec::new();
        Runner::new(Agent::Local(&executor), env.as_ref(), tools, 8)
            .run(jobs, &cfg, &Mode::Plain, &mut |t| eps.push(t));
        scores.push(SetScore::of(spec, &eps));
    }
    let report = EvalReport { scores, seconds: t.elapsed().as_secs_f64() };
    write_file(&dir.join("eval.json"), serde_json::to_string_pretty(&report)?.as_bytes())
}

/// Iteration `i`'s record, from the files its stages left.
fn record(out: &Path, i: usize) -> Result<IterationRecord> {
    let dir = iter_dir(out, i);
    let eval: EvalReport = read_json(&dir.join("eval.json"))?;
    if i == 0 {
        return Ok(IterationRecord {
            iteration: 0,
            held_out: eval.scores,
            curriculum: None,
            tasks: None,
            pool: None,
            executor_trained: false,
        });
    }
    let pool: PoolReport = read_json(&dir.join("pool.json"))?;
    let curriculum_dir = dir.join("curriculum");
    let rollouts = kaizen_rollout::run_dir::load(&curriculum_dir).map_err(EvolveError::Rollout)?;
    let n = rollouts.len().max(1) as f64;
    let details: Vec<&serde_json::Value> = rollouts.iter().map(|t| &t.reward_detail).collect();
    let unparsed = details.iter().filter(|d| d["curriculum_task"].is_null()).count();
    let p_hats: Vec<f64> = details.iter().filter_map(|d| d["verdict"]["p_hat"].as_f64()).collect();
    let metrics = std::fs::read_to_string(curriculum_dir.join("metrics.jsonl")).unwrap_or_default();
    let seconds: f64 = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|m| m["rollout_s"].as_f64().unwrap_or(0.0) + m["train_s"].as_f64().unwrap_or(0.0))
        .sum();
    let curriculum = CurriculumTraining {
        rollouts: rollouts.len(),
        mean_reward: rollouts.iter().map(|t| t.reward as f64).sum::<f64>() / n,
        format_failure_rate: unparsed as f64 / n,
        mean_p_hat: p_hats.iter().sum::<f64>() / p_hats.len().max(1) as f64,
        seconds,
    };
    Ok(IterationRecord {
        iteration: i,
        held_out: eval.scores,
        curriculum: Some(curriculum),
        tasks: Some(pool.tasks),
        pool: Some(pool.stats),
        executor_trained: dir.join("executor").join(DONE).exists(),
    })
}
