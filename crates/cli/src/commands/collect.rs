//! `kaizen collect`: data for Best-of-Q — the frozen policy runs each task several times,
//! proposing N candidate actions per step; a random one is executed (the policy's own
//! distribution) and all are recorded, so the run holds successes, failures and the
//! candidate sets TD targets take their max over.

use super::policy::PolicyArgs;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
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
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Tokens a turn may write (a candidate that rambles holds up its whole batch).
    #[arg(long, default_value_t = 256)]
    max_tokens_per_turn: usize,
    /// The run directory (created; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Task stream seed: keep it apart from the evaluation's.
    #[arg(long, default_value_t = 1000)]
    seed: u64,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Worked examples shown before each task (as `kaizen run --shots`); use the same number
    /// when evaluating, so the Q-function sees the policy it was trained on.
    #[arg(long, default_value_t = 0)]
    shots: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    super::run::run(super::run::Args::collect(
        a.env,
        a.policy,
        a.tasks,
        a.samples,
        a.candidates,
        a.temperature,
        a.out,
        a.seed,
        a.concurrency,
        a.shots,
        a.max_tokens_per_turn,
    ))
}
