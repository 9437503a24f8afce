//! `kaizen evolve RECIPE`: Agent0's self-evolution loop — curriculum training, a pseudo-labelled
//! task pool, executor training with ADPO, held-out scores — iteration by iteration, with a
//! table at the end; everything lands in one run directory. `--mode vl`: Agent0-VL's cycle —
//! the policy solves, verifies and repairs its own steps and trains on the process rewards.

use kaizen_evolve::evolution::{resume, Event, IterationRecord};
use kaizen_evolve::vl::{Rate, VlRecord};
use kaizen_evolve::{evolve, evolve_vl, is_vl_run, resume_vl, EvolveRecipe, VlRecipe};
use std::path::PathBuf;

/// Which self-evolution runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Agent0: a curriculum agent writes tasks, the executor learns from their majority votes.
    Agent0,
    /// Agent0-VL: one policy solves, verifies its steps, repairs the unsure ones, and trains
    /// on the process rewards (`recipes/agent0-vl-*.toml`).
    Vl,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An evolve recipe TOML file (`recipes/agent0-*.toml`; with `--mode vl`,
    /// `recipes/agent0-vl-*.toml`).
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
    /// `agent0` or `vl` (Agent0-VL). A resumed run keeps the mode it was started with.
    #[arg(long, value_enum, default_value = "agent0", conflicts_with = "resume")]
    mode: Mode,
}

/// Prints each stage, each RL step and each scored iteration as the loop runs.
fn progress(e: Event) {
    match e {
        Event::Stage(i, what) => eprintln!("[iteration {i}] {what}"),
        Event::Warning(what) => eprintln!("warning: {what}"),
        Event::Metrics(m) if m.phase == "rl" => {
            let repairs = m.repairs.map_or(String::new(), |r| {
                format!("  repairs {r} (+{} −{})", m.repairs_fixed.unwrap_or(0), m.repairs_broke.unwrap_or(0))
            });
            eprintln!(
                "    step {:>3}  reward {:.3}  tool use {:>3.0}%  zero-advantage {:>3.0}%{repairs}  ({:.0} s)",
                m.step,
                m.reward,
                100.0 * m.tool_use_rate,
                100.0 * m.zero_advantage_rate,
                m.rollout_s + m.train_s
            )
        }
        Event::Metrics(m) if m.phase == "sft" && m.step % 100 == 0 => {
            eprintln!("    sft step {:>4}  loss {:.3}", m.step, m.loss)
        }
        Event::Metrics(_) => {}
        Event::Iteration(r) => eprintln!("[iteration {}] done: {}", r.iteration, held_out_cells(r).join("  ")),
        Event::VlIteration(r) => eprintln!(
            "[iteration {}] solver alone {}, with verifier + repair {}; {} repairs (+{} −{})",
            r.iteration,
            rate(&r.solver_rate()),
            rate(&r.repaired_rate()),
            r.repairs,
            r.wrong_to_right,
            r.right_to_wrong
        ),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let vl = match (&a.resume, a.mode) {
        (Some(run), _) => is_vl_run(run),
        (None, m) => m == Mode::Vl,
    };
    if vl {
        anyhow::ensure!(
            !a.no_tool_reward && !a.no_repetition_penalty && a.estimator.is_none(),
            "--no-tool-reward, --no-repetition-penalty and --estimator are Agent0's curriculum and pool settings; \
             the Agent0-VL cycle has neither (its train recipe sets rl.process)"
        );
        return run_vl(a);
    }
    let (records, out) = match (&a.recipe, &a.resume) {
        (_, Some(run)) => {
            eprintln!("resuming {} at its first unfinished stage", run.display());
            (resume(run, &mut progress)?, run.clone())
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
            let out = a.out.clone().unwrap_or_else(|| default_out(path));
            (evolve(&recipe, &out, &mut progress)?, out)
        }
        (None, None) => anyhow::bail!("give an evolve recipe file or --resume RUN"),
    };
    println!("\n{} → evolution.jsonl", out.display());
    print!("{}", table(&records));
    Ok(())
}

/// `runs/<recipe name>`.
fn default_out(recipe: &std::path::Path) -> PathBuf {
    let name = recipe.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "evolve".into());
    PathBuf::from("runs").join(name)
}

fn run_vl(a: Args) -> anyhow::Result<()> {
    let (records, out) = match (&a.recipe, &a.resume) {
        (_, Some(run)) => {
            eprintln!("resuming the Agent0-VL cycle {} at its first unfinished stage", run.display());
            (resume_vl(run, &mut progress)?, run.clone())
        }
        (Some(path), None) => {
            let mut recipe = VlRecipe::load(path).map_err(anyhow::Error::msg)?;
            if let Some(n) = a.iterations {
                recipe.iterations = n;
            }
            let out = a.out.clone().unwrap_or_else(|| default_out(path));
            (evolve_vl(&recipe, &out, &mut progress)?, out)
        }
        (None, None) => anyhow::bail!("give an Agent0-VL cycle recipe file or --resume RUN"),
    };
    println!("\n{} → evolution.jsonl", out.display());
    print!("{}", vl_table(&records));
    Ok(())
}

fn rate(r: &Rate) -> String {
    format!("{:.1}% [{:.1}, {:.1}]", 100.0 * r.share(), 100.0 * r.low, 100.0 * r.high)
}

/// The cycle's per-iteration table: held-out accuracy of the solver alone and with verifier +
/// repair (95% Wilson intervals), the repairs, then the verifier as a PRM where measured.
fn vl_table(records: &[VlRecord]) -> String {
    let prm = records.iter().any(|r| r.prm.is_some());
    let mut s = format!(
        "{:<5} {:<24} {:<24} {:>12} {:>7} {:>7} {:>11} {:>11}",
        "iter",
        "solver alone [95% CI]",
        "verifier + repair",
        "repair rate",
        "✗ → ✓",
        "✓ → ✗",
        "unreadable",
        "RL reward"
    );
    if prm {
        s.push_str(&format!("  {:<30} {:<24} {:<24} {:<24}", "PRM best-of-N", "majority", "random", "pass@N"));
    }
    s.push('\n');
    for r in records {
        let reward = r.training.as_ref().map_or("(before RL)".to_string(), |t| format!("{:.3}", t.mean_reward));
        let unreadable = r.unreadable.map_or("—".to_string(), |u| format!("{:.0}%", 100.0 * u));
        s.push_str(&format!(
            "{:<5} {:<24} {:<24} {:>12} {:>7} {:>7} {:>11} {:>11}",
            r.iteration,
            rate(&r.solver_rate()),
            rate(&r.repaired_rate()),
            format!(
                "{:.1}% ({})",
                100.0 * r.episodes_repaired as f64 / r.solver.tasks.max(1) as f64,
                r.episodes_repaired
            ),
            r.wrong_to_right,
            r.right_to_wrong,
            unreadable,
            reward
        ));
        if let Some(p) = &r.prm {
            s.push_str(&format!(
                "  {:<30} {:<24} {:<24} {:<24}",
                format!("{} N={}", rate(&p.prm), p.candidates),
                rate(&p.majority),
                rate(&p.random),
                rate(&p.oracle)
            ));
        }
        s.push('\n');
    }
    s
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
