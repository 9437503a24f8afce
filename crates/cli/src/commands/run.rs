//! `kaizen run`: episodes of an env with a policy and tools, recorded to a run directory, with a
//! progress bar and a summary table.

use super::policy::{Backend, PolicyArgs};
use indicatif::{ProgressBar, ProgressStyle};
use kaizen_rollout::{run_episode, run_local, Agent, EpisodeConfig, Job, RunDir, RunSummary, Trajectory};
use kaizen_tools::ToolRegistry;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `arith`, `arith:LEVEL` (1–5), `jsonl:PATH`, or web tasks: `miniwob-easy`,
    /// `miniwob-medium`, `miniwob-all`, `miniwob:TASK,…`, `miniwob-list:FILE`.
    #[arg(long, default_value = "arith")]
    env: String,
    #[command(flatten)]
    policy: PolicyArgs,
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// The run directory (created; an existing run is never overwritten).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 4)]
    max_turns: usize,
    #[arg(long, default_value_t = 256)]
    max_tokens_per_turn: usize,
    #[arg(long, default_value_t = 1024)]
    max_episode_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Episodes in flight at once. With a local model they share one batched forward per
    /// decoding step (more episodes/s, each a little slower); with a remote server each has its
    /// own connection.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let env = kaizen_envs::open(&a.env).map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(a.episodes > 0, "--episodes must be at least 1");
    let backend = Backend::open(&a.policy)?;
    let agent = match &backend {
        Backend::Local(l) => Agent::Local(l),
        Backend::Remote(r) => Agent::Remote(r.as_ref()),
    };
    let registry = ToolRegistry::standard();
    let cfg = EpisodeConfig {
        max_turns: a.max_turns,
        max_tokens_per_turn: a.max_tokens_per_turn,
        max_episode_tokens: a.max_episode_tokens,
        temperature: a.temperature,
        ..Default::default()
    };
    let config = serde_json::json!({
        "env": env.name(), "policy": agent.name(), "episodes": a.episodes, "seed": a.seed,
        "max_turns": a.max_turns, "max_tokens_per_turn": a.max_tokens_per_turn,
        "max_episode_tokens": a.max_episode_tokens, "temperature": a.temperature,
        "tools": env.tool_names(), "schema_version": kaizen_rollout::SCHEMA_VERSION, "concurrency": a.concurrency,
    });
    let mut run = RunDir::create(&a.out, &config).map_err(|e| anyhow::anyhow!(e))?;
    let bar = ProgressBar::new(a.episodes as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {per_sec} {msg}")?);
    let jobs: Vec<Job> = env
        .tasks(a.seed, a.episodes)
        .into_iter()
        .enumerate()
        .map(|(i, task)| Job::new(task, a.seed.wrapping_add(i as u64), format!("{i:05}")))
        .collect();
    // A web env has one browser per concurrent episode.
    let slots = a.concurrency.clamp(1, 64).min(env.max_concurrent_episodes().unwrap_or(usize::MAX));
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
    let engine = match &backend {
        Backend::Local(llm) => Some(run_local(llm, env.as_ref(), &registry, jobs, &cfg, slots, &mut record)),
        Backend::Remote(_) => {
            run_threads(&agent, env.as_ref(), &registry, &jobs, &cfg, slots, &mut record);
            None
        }
    };
    if let Some(e) = failure {
        return Err(e.context("recording an episode"));
    }
    done.sort_by(|x, y| x.episode_id.cmp(&y.episode_id));
    bar.finish();
    let mut s = RunSummary::of(&done).timed(&done, started.elapsed().as_secs_f64());
    if let Some(stats) = &engine {
        s.engine_overhead = stats.overhead();
    }
    run.write_summary(&s).map_err(|e| anyhow::anyhow!(e))?;
    kaizen_rollout::write_parquet(&done, &a.out.join(kaizen_rollout::PARQUET_FILE)).map_err(|e| anyhow::anyhow!(e))?;
    println!("\n{} episodes of {} with {} → {}", s.episodes, env.name(), agent.name(), a.out.display());
    println!("{:<24} {:>10}", "success rate", format!("{:.1}%", 100.0 * s.success_rate));
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

/// Remote policies: `slots` threads, each running one episode at a time.
fn run_threads(
    agent: &Agent,
    env: &dyn kaizen_core::Env,
    registry: &ToolRegistry,
    jobs: &[Job],
    cfg: &EpisodeConfig,
    slots: usize,
    on_done: &mut dyn FnMut(Trajectory),
) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..slots {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let t = run_episode(agent, env, registry, &job.task, cfg, job.seed, &job.id);
                if tx.send(t).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for t in rx {
            on_done(t);
        }
    });
}
