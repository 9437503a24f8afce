//! `kaizen evolve RECIPE`: Agent0's self-evolution loop — curriculum training, a pseudo-labelled
//! task pool, executor training with ADPO, held-out scores — iteration by iteration, with a
//! table at the end; everything lands in one run directory.

use kaizen_evolve::evolution::{resume, Event, IterationRecord};
use kaizen_evolve::{evolve, EvolveRecipe};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An evolve recipe TOML file (see `recipes/agent0-*.toml`).
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    recipe: Option<PathBuf>,
    /// The run directory (default `runs/<recipe name>`; an existing run is never overwritten).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a run after a crash or `kill -9`: it picks up at the first unfinished stage
    /// (a training stage from its latest checkpoint), with the recipe it was started with.
    #[arg(long, value_name = "RUN")]
    resume: Option<PathBuf>,
    /// Iterations (overrides the recipe's `iterations`).
    #[arg(long, conflicts_with = "resume")]
    iterations: Option<usize>,
    /// Ablation: no tool reward in the curriculum reward (`curriculum_reward.tool = 0`).
    #[arg(long, conflicts_with = "resume")]
    no_tool_reward: bool,
    /// Ablation: no repetition penalty (`curriculum_reward.repetition = 0`).
    #[arg(long, conflicts_with = "resume")]
    no_repetition_penalty: bool,
    /// The executor's estimator on the pool (overrides `executor_rl.estimator`): `grpo` is the
    /// ablation of ADPO.
    #[arg(long, conflicts_with = "resume")]
    estimator: Option<kaizen_rl::Estimator>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut on = |e: Event| match e {
        Event::Stage(i, what) => eprintln!("[iteration {i}] {what}"),
        Event::Metrics(m) if m.phase == "rl" => eprintln!(
            "    step {:>3}  reward {:.3}  tool use {:>3.0}%  zero-advantage {:>3.0}%  ({:.0} s)",
            m.step,
            m.reward,
            100.0 * m.tool_use_rate,
            100.0 * m.zero_advantage_rate,
            m.rollout_s + m.train_s
        ),
        Event::Metrics(_) => {}
        Event::Iteration(r) => eprintln!("[iteration {}] done: {}", r.iteration, held_out_cells(r).join("  ")),
    };
    let (records, out) = match (&a.recipe, &a.resume) {
        (_, Some(run)) => {
            eprintln!("resuming {} at its first unfinished stage", run.display());
            (resume(run, &mut on)?, run.clone())
        }
        (Some(path), None) => {
            let mut recipe = EvolveRecipe::load(path).map_err(anyhow::Error::msg)?;
            if let Some(n) = a.iterations {
                recipe.iterations = n;
            }
            if a.no_tool_reward {
                recipe.curriculum_reward.tool = 0.0;
            }
            if a.no_repetition_penalty {
                recipe.curriculum_reward.repetition = 0.0;
            }
            if let Some(e) = a.estimator {
                recipe.executor_rl.estimator = e;
            }
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "evolve".into());
            let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name));
            (evolve(&recipe, &out, &mut on)?, out)
        }
        (None, None) => anyhow::bail!("give an evolve recipe file or --resume RUN"),
    };
    println!("\n{} → evolution.jsonl", out.display());
    print!("{}", table(&records));
    Ok(())
}

fn held_out_cells(r: &IterationRecord) -> Vec<String> {
    r.held_out
        .iter()
        .map(|s| {
            format!(
                "{} {:.1}% [{:.1}, {:.1}] ({}/{})",
                s.set,
                100.0 * s.accuracy,
                100.0 * s.low,
                100.0 * s.high,
                s.solved,
                s.tasks
            )
        })
        .collect()
}

/// The per-iteration table: held-out accuracy with 95% intervals, then the curriculum's tasks.
fn table(records: &[IterationRecord]) -> String {
    let mut s = format!(
        "{:<5} {:<44} {:>9} {:>10} {:>11} {:>9} {:>9} {:>10}\n",
        "iter", "held-out accuracy [95% CI]", "own p̂", "tools/task", "pool kept", "clusters", "format ✗", "curr. R"
    );
    for r in records {
        let cells = held_out_cells(r).join("; ");
        match (&r.tasks, &r.pool, &r.curriculum) {
            (Some(t), Some(p), Some(c)) => s.push_str(&format!(
                "{:<5} {:<44} {:>9.2} {:>10.2} {:>11} {:>9} {:>8.0}% {:>10.3}\n",
                r.iteration,
                cells,
                t.executor_pass_rate,
                t.tool_calls_per_task,
                format!("{}/{}", p.kept, p.judged),
                format!("{} (≤{})", t.clusters, t.largest_cluster),
                100.0 * t.format_failure_rate,
                c.mean_reward
            )),
            _ => s.push_str(&format!("{:<5} {:<44}   (the base executor)\n", r.iteration, cells)),
        }
    }
    s
}
