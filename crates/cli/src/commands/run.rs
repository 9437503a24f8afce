//! `kaizen run`: episodes of an env with a policy and tools, recorded to a run directory, with a
//! progress bar and a summary table.

use super::policy::{Backend, PolicyArgs, PromptArgs};
use indicatif::{ProgressBar, ProgressStyle};
use kaizen_core::Trajectory;
use kaizen_rollout::rerank::Selector;
use kaizen_rollout::runner::{Mode, Runner};
use kaizen_rollout::{EpisodeArgs, Job, RunDir, RunSummary};
use kaizen_tools::ToolRegistry;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// `arith`, `arith:LEVEL` (1–5), `jsonl:PATH`, or web tasks: `miniwob-easy`,
    /// `miniwob-medium`, `miniwob-all`, `miniwob:TASK,…`, `miniwob-list:FILE`; pictures:
    /// `shape-grid`, `shape-grid:test`, `shape-cell`, `shape-cell:test`.
    #[arg(long, default_value = "arith")]
    pub(super) env: String,
    #[command(flatten)]
    pub(super) policy: PolicyArgs,
    /// Tasks to run (each `--samples` times).
    #[arg(long, default_value_t = 20)]
    pub(super) episodes: usize,
    /// Episodes per task, each with its own seed (so both outcomes of a task show up).
    #[arg(long, default_value_t = 1)]
    pub(super) samples: usize,
    /// Best-of-N: actions the policy proposes at every step (duplicates dropped); the
    /// selector executes one and the whole set is recorded.
    #[arg(long, default_value_t = 1)]
    pub(super) candidates: usize,
    /// Which candidate to execute: `first` (the policy alone), `random`, `logprob` (the most
    /// likely), `q` (Best-of-Q; needs --rerank). Default: q with --rerank, else first.
    #[arg(long)]
    pub(super) select: Option<String>,
    /// A Q-function from `kaizen q train`: Best-of-Q picks the candidate it scores highest
    /// (ties to the likelier).
    #[arg(long, value_name = "Q.safetensors")]
    pub(super) rerank: Option<PathBuf>,
    /// The run directory (created; an existing run is never overwritten).
    #[arg(long)]
    pub(super) out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    #[command(flatten)]
    pub(super) episode: EpisodeArgs,
    /// Episodes in flight at once. With a local model they share one batched forward per
    /// decoding step (more episodes/s, each a little slower); with a remote server each has its
    /// own connection.
    #[arg(long, default_value_t = 8)]
    pub(super) concurrency: usize,
    #[command(flatten)]
    pub(super) prompt: PromptArgs,
    /// Send the page's screenshot (PNG) with the task and every observation of a web env, for
    /// vision models behind `--policy openai:URL`; observations keep them in the run.
    #[arg(long)]
    pub(super) screenshots: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let env = kaizen_envs::open(&a.env).map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(a.episodes > 0, "--episodes must be at least 1");
    anyhow::ensure!(a.samples > 0 && a.candidates > 0, "--samples and --candidates must be at least 1");
    let select = a.select.clone().unwrap_or_else(|| if a.rerank.is_some() { "q" } else { "first" }.into());
    let scorer = match (&a.rerank, select.as_str()) {
        (Some(q), "q") => Some(kaizen_q::scorer::QScorer::load(q)?),
        (None, "q") => anyhow::bail!("--select q needs a Q-function: --rerank Q.safetensors"),
        (_, "first" | "random" | "logprob") => None,
        (_, other) => anyhow::bail!("unknown --select '{other}' (allowed: first, random, logprob, q)"),
    };
    let selector = match (select.as_str(), &scorer) {
        ("random", _) => Selector::Random,
        ("logprob", _) => Selector::MaxLogprob,
        (_, Some(s)) => Selector::Scored(s),
        _ => Selector::First,
    };
    let best_of_n = a.candidates > 1 || !matches!(selector, Selector::First);
    let backend = Backend::open(&a.policy)?;
    // A local model reads pictures when it has a picture input (a tiny policy trained with
    // `[policy.vision]`).
    let sees = match &backend {
        Backend::Local(l) => l.model.vision().is_some(),
        Backend::Remote(_) => true,
    };
    anyhow::ensure!(
        !a.screenshots || sees,
        "--screenshots needs a vision model (this local model reads text only; local models read text only \
         unless trained with [policy.vision], or use --policy openai:URL)"
    );
    let agent = backend.agent();
    let registry = ToolRegistry::standard();
    let cfg = a.episode.config(a.prompt.shots(env.as_ref(), &registry)?, !a.prompt.no_tool_schemas, a.screenshots);
    let config = serde_json::json!({
        "env": env.name(), "policy": agent.name(), "policy_spec": a.policy.policy, "episodes": a.episodes, "seed": a.seed,
        "max_turns": cfg.max_turns, "max_tokens_per_turn": cfg.max_tokens_per_turn,
        "max_episode_tokens": cfg.max_episode_tokens, "temperature": cfg.temperature,
        "tools": env.tool_names(), "schema_version": kaizen_core::SCHEMA_VERSION, "concurrency": a.concurrency,
        "samples": a.samples, "candidates": a.candidates, "select": select,
        "rerank": a.rerank.as_ref().map(|p| p.display().to_string()), "shots": a.prompt.shots, "shots_from": a.prompt.shots_from, "screenshots": a.screenshots,
        "tool_schemas": cfg.tool_schemas,
    });
    let tasks = env.tasks(a.seed, a.episodes);
    anyhow::ensure!(
        sees || tasks.iter().all(|t| t.images.is_empty()),
        "{}'s tasks show pictures and this local model reads text only (local models read text only unless \
         trained with [policy.vision]): use a tiny vision policy (recipes/shape-grid-tiny-vl.toml), a vision \
         model behind --policy openai:URL, or a reference agent (glance, zoomer for shape-grid; reader for shape-cell)",
        env.name()
    );
    if let Backend::Local(llm) = &backend {
        kaizen_rollout::check_prompts_fit(llm, env.as_ref(), &registry, &tasks, &cfg).map_err(anyhow::Error::msg)?;
    }
    let mut run = RunDir::create(&a.out, &config).map_err(|e| anyhow::anyhow!(e))?;
    let bar = ProgressBar::new((a.episodes * a.samples) as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {per_sec} {msg}")?);
    let k = a.samples;
    let jobs: Vec<Job> = tasks
        .into_iter()
        .enumerate()
        .flat_map(|(i, task)| {
            (0..k).map(move |j| {
                let id = if k == 1 { format!("{i:05}") } else { format!("{i:05}-{j:02}") };
                Job::new(task.clone(), a.seed.wrapping_add((i * k + j) as u64), id)
            })
        })
        .collect();
    let mut done = Vec::with_capacity(a.episodes);
    let mut failure = None;
    // Each episode is appended (and flushed) as soon as it ends, in completion order.
    let mut record = |t: Trajectory| {
        if failure.is_some() {
            return;
        }
        if let Err(e) = run.append(&t) {
            failure = Some(anyhow::anyhow!(e));
            return;
        }
        done.push(t);
        let s = RunSummary::of(&done);
        bar.set_message(format!("success {:.0}%  tool use {:.0}%", 100.0 * s.success_rate, 100.0 * s.tool_use_rate));
        bar.inc(1);
    };
    let started = std::time::Instant::now();
    let mode = if best_of_n { Mode::BestOfN { n: a.candidates, selector: &selector } } else { Mode::Plain };
    let runner = Runner { agent, env: env.as_ref(), registry: &registry, slots: a.concurrency };
    let engine = runner.run(jobs, &cfg, &mode, &mut record);
    if let Some(e) = failure {
        return Err(e.context("recording an episode"));
    }
    done.sort_by(|x, y| x.episode_id.cmp(&y.episode_id));
    bar.finish();
    let mut s = RunSummary::of(&done).timed(&done, started.elapsed().as_secs_f64());
    if let Some(stats) = &engine {
        s.engine_overhead = stats.overhead();
        s.prefix_hit_rate = Some(stats.prefix.hit_rate());
        s.prefix_tokens_saved = Some(stats.prefix.tokens_saved);
    }
    run.write_summary(&s).map_err(|e| anyhow::anyhow!(e))?;
    run.write_parquet(&done).map_err(|e| anyhow::anyhow!(e))?;
    println!("\n{} episodes of {} with {} → {}", s.episodes, env.name(), agent.name(), a.out.display());
    let solved = done.iter().filter(|t| t.solved()).count();
    let (lo, hi) = kaizen_q::metrics::wilson_interval(solved, done.len(), 1.96);
    let success = format!("{:.1}% (95% {:.1}–{:.1})", 100.0 * s.success_rate, 100.0 * lo, 100.0 * hi);
    println!("{:<24} {:>10}", "success rate", success);
    println!("{:<24} {:>10}", "tool-use rate", format!("{:.1}%", 100.0 * s.tool_use_rate));
    println!("{:<24} {:>10.2}", "mean turns", s.mean_turns);
    println!("{:<24} {:>10}", "malformed-call rate", format!("{:.1}%", 100.0 * s.malformed_call_rate));
    println!("{:<24} {:>10.2}", "episodes/s", s.episodes_per_second);
    println!("{:<24} {:>10.1}", "tokens/s (all episodes)", s.tokens_per_second);
    println!("{:<24} {:>10.1}", "tokens/s (per episode)", s.episode_tokens_per_second);
    println!(
        "{:<24} {:>10}",
        "tool latency p50 / p99",
        format!("{:.1} / {:.1} ms", s.tool_latency_p50_ms, s.tool_latency_p99_ms)
    );
    println!("{:<24} {:>10}", "engine overhead", format!("{:.2}%", 100.0 * s.engine_overhead));
    if let Some(stats) = &engine {
        let batch = format!("{:.2} ({} steps)", stats.mean_batch(), stats.decode_steps);
        println!("{:<24} {:>10}", "mean decode batch", batch);
        let p = &stats.prefix;
        let prefix = format!("{:.0}% ({} tokens saved)", 100.0 * p.hit_rate(), p.tokens_saved);
        println!("{:<24} {:>10}", "prefix cache hits", prefix);
    }
    println!("{:<24} {:>10}", "failed episodes", s.errors);
    let rows = kaizen_rollout::per_task(&done);
    if rows.len() > 1 {
        println!("\n{:<28} {:>8} {:>9} {:>12} {:>7}", "task", "episodes", "success", "mean reward", "failed");
        for r in &rows {
            let success = format!("{:.0}%", 100.0 * r.success_rate);
            println!("{:<28} {:>8} {:>9} {:>12.2} {:>7}", r.task, r.episodes, success, r.mean_reward, r.errors);
        }
    }
    Ok(())
}
