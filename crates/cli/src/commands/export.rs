//! `kaizen export verl`: an env's tasks (or a self-evolution task pool) as verl's RL dataset
//! Parquet plus its `compute_score` reward file.

use kaizen_rollout::verl_export;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Export {
    /// Tasks as verl's RL dataset: `DIR/SPLIT.parquet` (data_source, prompt as chat messages,
    /// ability, reward_model.ground_truth, extra_info) and `DIR/compute_score.py`.
    #[command(
        after_help = "Examples:\n  kaizen export verl --env jsonl:runs/agent0/iter-3/pool.jsonl --out verl-data\n  \
        kaizen export verl --env arith --tasks 5000 --shots 3 --out verl-data\n\n\
        Then, in verl: data.train_files=verl-data/train.parquet \
        custom_reward_function.path=verl-data/compute_score.py"
    )]
    Verl(VerlArgs),
}

#[derive(clap::Args, Debug)]
pub struct VerlArgs {
    /// The env whose tasks to export (`arith`, `arith:LEVEL`, `jsonl:PATH` — a pool is one).
    #[arg(long)]
    env: String,
    /// How many tasks (default: a task file's every task once; 1000 for a generated env).
    #[arg(long)]
    tasks: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worked examples in every prompt (from `--shots-from`, else the env's own).
    #[arg(long, default_value_t = 0)]
    shots: usize,
    #[arg(long)]
    shots_from: Option<String>,
    /// The split's name (the file is `SPLIT.parquet`; `extra_info.split`).
    #[arg(long, default_value = "train")]
    split: String,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(e: Export) -> anyhow::Result<()> {
    let Export::Verl(a) = e;
    let env = kaizen_envs::open(&a.env).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !env.has_sessions(),
        "{}: web tasks are scored on their page; verl cannot check them by text",
        a.env
    );
    let tools = kaizen_tools::ToolRegistry::standard();
    let shots =
        kaizen_rl::setup::worked_examples(env.as_ref(), a.shots_from.as_deref(), &kaizen_envs::open, &tools, a.shots)?;
    let n = match (a.tasks, a.env.starts_with("jsonl:")) {
        (Some(n), _) => n,
        (None, true) => kaizen_envs::JsonlEnv::load(std::path::Path::new(&a.env["jsonl:".len()..]))
            .map_err(anyhow::Error::msg)?
            .len(),
        (None, false) => 1000,
    };
    let tasks = env.tasks(a.seed, n);
    let mut opening = vec![kaizen_core::Message::system(env.system_prompt())];
    opening.extend(shots);
    let rows = verl_export::rows(&tasks, &opening).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&a.out)?;
    let parquet = a.out.join(format!("{}.parquet", a.split));
    verl_export::write(&rows, env.name(), &a.split, &parquet).map_err(anyhow::Error::msg)?;
    let score = a.out.join("compute_score.py");
    std::fs::write(&score, verl_export::COMPUTE_SCORE_PY)?;
    println!("{} tasks → {}", rows.len(), parquet.display());
    println!("reward function → {} (compute_score)", score.display());
    Ok(())
}
