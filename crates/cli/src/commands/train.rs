//! `kaizen train RECIPE`: SFT cold start then RL on an env, as the recipe says, with a
//! progress bar and a summary table; everything lands in the run directory.

use indicatif::{ProgressBar, ProgressStyle};
use kaizen_rl::{Recipe, StepMetrics};
use std::path::PathBuf;

/// The `--verifier` a run was started with, beside its recipe.
const VERIFIER_FILE: &str = "verifier.txt";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A recipe TOML file (see `recipes/`).
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    recipe: Option<PathBuf>,
    /// The run directory (default `runs/<recipe name>`; an existing run is never overwritten).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a run from its latest checkpoint (after a crash or `kill -9`), with the recipe
    /// it was started with; it ends as the uninterrupted run would.
    #[arg(long, value_name = "RUN")]
    resume: Option<PathBuf>,
    /// Take the SFT phase from an earlier run's `sft.safetensors` (same `[policy]`) instead of
    /// training it again: compare RL estimators from one cold start.
    #[arg(long, value_name = "RUN", conflicts_with = "resume")]
    sft_from: Option<PathBuf>,
    /// With `rl.estimator = "process"`: another model judges the policy's steps instead of the
    /// policy itself — `openai:URL` (e.g. Qwen2.5-VL on vLLM, prompted only), a .gguf file or
    /// an installed model (loaded as Q8_0). Kept in the run as `verifier.txt`: `--resume` must
    /// give the same.
    #[arg(long, value_name = "MODEL")]
    verifier: Option<String>,
    /// The model name to send a remote verifier (`--verifier openai:URL`), as the server
    /// serves it (vLLM refuses others), e.g. `Qwen/Qwen2.5-VL-7B-Instruct`.
    #[arg(long, default_value = "default", requires = "verifier")]
    verifier_model: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (recipe, out, label) = match (&a.recipe, &a.resume) {
        (_, Some(run)) => (kaizen_rl::run_recipe(run)?, run.clone(), format!("resumed {}", run.display())),
        (Some(path), None) => {
            let recipe = Recipe::load(path).map_err(|e| anyhow::anyhow!(e))?;
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "train".into());
            let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name));
            (recipe, out, path.display().to_string())
        }
        (None, None) => anyhow::bail!("give a recipe file or --resume RUN"),
    };
    let total = (recipe.sft.steps + recipe.rl.steps) as u64;
    let bar = ProgressBar::new(total)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")?);
    if a.resume.is_some() {
        bar.println(format!("resuming {} from its latest checkpoint", out.display()));
    }
    let mut last_eval = String::new();
    let mut on_metrics = |m: &StepMetrics| match m.phase.as_str() {
        "sft" => {
            if let Some(p) = m.pass_at_1 {
                last_eval = format!("validation pass {p:.2}");
            }
            bar.set_message(format!("sft loss {:.3}  {last_eval}", m.loss));
            bar.inc(1);
        }
        "rl" => {
            bar.set_message(format!(
                "rl reward {:.2}  tool use {:.0}%  KL {}  clip {:.2}  {last_eval}",
                m.reward,
                100.0 * m.tool_use_rate,
                m.kl.map_or("off".to_string(), |k| format!("{k:.4}")),
                m.clip_fraction
            ));
            bar.inc(1);
        }
        _ => {
            if m.step == 0 {
                // SFT may have ended early (sft.target_pass): RL's steps are what is left.
                bar.set_length(bar.position() + recipe.rl.steps as u64);
            }
            last_eval = format!("held-out pass@1 {:.2}", m.pass_at_1.unwrap_or(0.0));
            bar.println(format!(
                "eval after RL step {}: pass@1 {:.3}  pass@k {:.3}  tool use {:.0}%",
                m.step,
                m.pass_at_1.unwrap_or(0.0),
                m.pass_at_k.unwrap_or(0.0),
                100.0 * m.tool_use_rate
            ));
        }
    };
    let mut setup = kaizen_rl::Setup::of_recipe(&recipe, &kaizen_envs::open, kaizen_tools::ToolRegistry::standard())?;
    // `--verifier` is not in the recipe: the run keeps it beside, and a resume must say the same.
    let recorded = out.join(VERIFIER_FILE);
    match (&a.resume, std::fs::read_to_string(&recorded).ok()) {
        (Some(_), before) => anyhow::ensure!(
            before.as_deref() == a.verifier.as_deref(),
            "{} was started with {}; resume it with the same --verifier",
            out.display(),
            before.map_or("the policy as its own verifier".to_string(), |v| format!("--verifier {v}"))
        ),
        (None, _) => {
            if let Some(spec) = &a.verifier {
                anyhow::ensure!(
                    !out.join("config.json").exists(),
                    "{} already holds a run; choose another --out",
                    out.display()
                );
                std::fs::create_dir_all(&out)?;
                kaizen_core::durable::write_atomic(&recorded, spec.as_bytes())?;
            }
        }
    }
    if let Some(spec) = &a.verifier {
        let args = super::policy::PolicyArgs {
            policy: spec.clone(),
            remote_model: a.verifier_model.clone(),
            weights: kaizen_models::WeightFormat::Q8_0,
        };
        setup = setup.judged_by(&recipe, super::policy::Backend::open(&args)?.into_policy())?;
        eprintln!("the verifier role: {spec}");
    }
    let metrics = match &a.resume {
        Some(run) => kaizen_rl::resume(run, setup, &mut on_metrics)?,
        None => {
            let sft = a.sft_from.as_ref().map(|run| run.join(kaizen_rl::trainer::SFT_WEIGHTS));
            kaizen_rl::train(&recipe, &out, setup, sft.as_deref(), &mut on_metrics)?
        }
    };
    bar.finish();
    let evals: Vec<&StepMetrics> = metrics.iter().filter(|m| m.phase == "eval").collect();
    println!("\n{label} → {}", out.display());
    println!(
        "{:<10} {:>16} {:>17} {:>10} {:>10}",
        "RL step", "pass@1 (greedy)", "pass@1 (sampled)", "pass@k", "tool use"
    );
    for m in &evals {
        println!(
            "{:<10} {:>16.3} {:>17.3} {:>10.3} {:>9.0}%",
            m.step,
            m.pass_at_1.unwrap_or(0.0),
            m.reward,
            m.pass_at_k.unwrap_or(0.0),
            100.0 * m.tool_use_rate
        );
    }
    println!("policy: {} (runs with `kaizen run --policy PATH`)", out.join("policy.gguf").display());
    Ok(())
}
