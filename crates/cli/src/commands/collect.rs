//! `kaizen collect`: data for Best-of-Q — the frozen policy runs each task several times,
//! proposing N candidate actions per step; a random one is executed (the policy's own
//! distribution) and all are recorded, so the run holds successes, failures and the
//! candidate sets TD targets take their max over.

use super::policy::{PolicyArgs, PromptArgs};
use kaizen_rollout::EpisodeArgs;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(mut_arg("temperature", |a| a.default_value("1")))]
pub struct Args {
    /// An env spec, as `kaizen run --env` takes it.
    #[arg(long, default_value = "arith")]
    env: String,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Distinct tasks.
    #[arg(long, default_value_t = 50)]
    tasks: usize,
    /// Episodes per task.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Candidate actions proposed per step.
    #[arg(long, default_value_t = 4)]
    candidates: usize,
    /// Turns, tokens and temperature (sampled at 1.0 unless told: collecting needs the policy's
    /// own spread of actions).
    #[command(flatten)]
    episode: EpisodeArgs,
    /// The run directory (created; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Task stream seed: keep it apart from the evaluation's.
    #[arg(long, default_value_t = 1000)]
    seed: u64,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[command(flatten)]
    prompt: PromptArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    super::run::run(super::run::Args {
        env: a.env,
        policy: a.policy,
        episodes: a.tasks,
        samples: a.samples,
        candidates: a.candidates,
        select: Some("random".into()),
        rerank: None,
        out: a.out,
        seed: a.seed,
        episode: a.episode,
        concurrency: a.concurrency,
        prompt: a.prompt,
        screenshots: false,
    })
}
