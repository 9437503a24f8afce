//! `kaizen q …`: Best-of-Q's offline side. `kaizen q train RUN… --out q.safetensors` turns
//! logged episodes into transitions, embeds them (cached), trains the Q-head, and reports on
//! held-out tasks.

use indicatif::{ProgressBar, ProgressStyle};
use kaizen_q::features::{FeatureCache, Features};
use kaizen_q::qnet::{Objective, QConfig, QNet};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Q {
    /// Train a Q-function offline on run directories (from `kaizen collect` or `kaizen run`).
    #[command(after_help = "Example:\n  kaizen collect --env miniwob-easy --policy random --out runs/web-data\n  \
                            kaizen q train runs/web-data --objective iql --out q.safetensors")]
    Train(TrainArgs),
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Run directories with recorded episodes (all of one env).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// `mc` (Monte-Carlo returns), `td` (fitted-Q, target network, max over logged
    /// candidates) or `iql` (expectile value learning).
    #[arg(long, default_value = "iql")]
    objective: String,
    #[arg(long)]
    out: PathBuf,
    /// Full-batch optimizer steps.
    #[arg(long, default_value_t = 400)]
    epochs: usize,
    #[arg(long, default_value_t = 0.9)]
    gamma: f32,
    /// IQL's expectile.
    #[arg(long, default_value_t = 0.7)]
    tau: f32,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Share of tasks held out for validation (split by task, never by episode).
    #[arg(long, default_value_t = 0.2)]
    val_share: f64,
    /// What the Q-function reads: `minilm` (all-MiniLM-L6-v2 sentence embeddings) or
    /// `smollm2` (the policy's own final hidden states, mean-pooled; slower to embed).
    #[arg(long, default_value = "minilm")]
    features: String,
    /// Side of the thumbnail of each state's latest picture the Q-function also reads (0: text
    /// only). Default: 16 when the logged episodes show pictures, else 0.
    #[arg(long, value_name = "PIXELS")]
    picture_side: Option<usize>,
}

pub fn run(q: Q) -> anyhow::Result<()> {
    match q {
        Q::Train(a) => train(a),
    }
}

/// A stable hash of a task id into [0, 1), for the split: FNV-1a, then splitmix64's
/// finaliser (FNV alone leaves the top bits to the first bytes, which put every task of one
/// kind on the same side).
fn unit_hash(s: &str) -> f64 {
    let mut h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let objective: Objective = a.objective.parse().map_err(anyhow::Error::msg)?;
    anyhow::ensure!((0.0..1.0).contains(&a.val_share), "--val-share must be in [0, 1)");
    anyhow::ensure!((0.0..=1.0).contains(&a.gamma), "--gamma must be in [0, 1]");
    anyhow::ensure!(a.epochs >= 1, "--epochs must be at least 1 (0 would save an untrained Q-function)");
    // Steps as text, each action described as the runner and the proxy describe it for
    // scoring (`kaizen_q::state::describe_action`: web actions get their element's line); proxy logs
    // (`decisions.jsonl`) hold the described actions already.
    let mut steps: Vec<kaizen_q::dataset::TextStep> = Vec::new();
    let mut env_name: Option<String> = None;
    // What the Q-function sees of tasks, saved with it so evaluations hold it out by content.
    let mut trained_on = std::collections::BTreeSet::new();
    for run in &a.runs {
        let decisions = run.join(kaizen_serve::proxy::DECISIONS);
        if decisions.exists() {
            let log = std::fs::read_to_string(&decisions)?;
            let got =
                kaizen_q::dataset::decision_steps(&log).map_err(|e| anyhow::anyhow!("{}: {e}", decisions.display()))?;
            steps.extend(got);
            eprintln!(
                "note: {} is a proxy log, which names no env tasks: an evaluation can hold out only the tasks of the run directories",
                decisions.display()
            );
            continue;
        }
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("config.json"))
                .map_err(|e| anyhow::anyhow!("{} is not a run directory: {e}", run.display()))?,
        )?;
        let name = cfg["env"].as_str().unwrap_or_default().to_string();
        match &env_name {
            Some(e) if *e != name => anyhow::bail!("{} is a run of {name}, the others of {e}", run.display()),
            _ => env_name = Some(name.clone()),
        }
        use kaizen_q::state::describe_action;
        for t in kaizen_rollout::run_dir::load(run).map_err(anyhow::Error::msg)? {
            trained_on.insert(t.task.content_key());
            let mut ep = kaizen_q::dataset::text_steps(&t);
            for k in 0..ep.len() {
                let next_state = ep.get(k + 1).map(|n| n.full_state.clone()).unwrap_or_default();
                let s = &mut ep[k];
                s.action = describe_action(&s.full_state, &s.action);
                for c in &mut s.next_candidates {
                    c.0 = describe_action(&next_state, &c.0);
                }
            }
            steps.extend(ep);
        }
    }
    anyhow::ensure!(!steps.is_empty(), "the runs hold no labelled steps (proxy episodes need /v1/feedback)");
    let (val, train): (Vec<_>, Vec<_>) = steps.into_iter().partition(|s| unit_hash(&s.task) < a.val_share);
    let features = Features::open(&a.features)?;
    let (identity, dim) = (features.identity(), features.dim());
    let cache = FeatureCache::new(features, &kaizen_q::scorer::default_cache_dir());
    eprintln!("embedding {} training and {} validation steps …", train.len(), val.len());
    let as_is = |_: &str, action: &str| action.to_string();
    let shows_pictures = train.iter().chain(&val).any(|s| s.picture.is_some());
    let picture_side = a.picture_side.unwrap_or(if shows_pictures { kaizen_q::picture::DEFAULT_SIDE } else { 0 });
    anyhow::ensure!(picture_side <= 64, "--picture-side must be at most 64 (a thumbnail of 3 · side² values)");
    if picture_side > 0 {
        eprintln!("states also read a {picture_side}×{picture_side} thumbnail of their latest picture");
    }
    let (train_t, hits_t) = kaizen_q::dataset::transitions(&train, &as_is, &cache, a.gamma, picture_side)?;
    let (val_t, _) = kaizen_q::dataset::transitions(&val, &as_is, &cache, a.gamma, picture_side)?;
    let successes = train_t.iter().filter(|t| t.success).count();
    anyhow::ensure!(
        successes > 0 && successes < train_t.len(),
        "the {} training transitions all {}: a Q-function cannot learn to rank actions from one outcome; \
         collect runs with both (more --samples, a higher --temperature, or more tasks)",
        train_t.len(),
        if successes == 0 { "failed" } else { "succeeded" }
    );
    let cfg =
        QConfig { dim, hidden: a.hidden, embedder: identity, objective, gamma: a.gamma, tau: a.tau, picture_side };
    let mut net = QNet::new(cfg)?;
    net.trained_on = trained_on;
    let bar = ProgressBar::new(a.epochs as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")?);
    let report = net.fit(&train_t, &val_t, a.epochs, a.lr, 20, &mut |_, loss| {
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    net.save(&a.out)?;
    let tasks = |ts: &[kaizen_q::dataset::TextStep]| {
        ts.iter().map(|t| t.task.as_str()).collect::<std::collections::BTreeSet<_>>().len()
    };
    let success = |ts: &[kaizen_q::qnet::Transition]| {
        if ts.is_empty() {
            0.0
        } else {
            ts.iter().filter(|t| t.success).count() as f64 / ts.len() as f64
        }
    };
    let opt = |x: Option<f64>| x.map_or("— (one outcome only)".to_string(), |v| format!("{v:.3}"));
    println!("Q-function ({:?}) → {}", objective, a.out.display());
    println!("{:<34} {:>10} {:>10}", "", "train", "validation");
    println!("{:<34} {:>10} {:>10}", "tasks", tasks(&train), tasks(&val));
    println!("{:<34} {:>10} {:>10}", "transitions (steps)", train_t.len(), val_t.len());
    println!("{:<34} {:>10.3} {:>10.3}", "steps of successful episodes", success(&train_t), success(&val_t));
    println!("{:<34} {:>10.4} {:>10.4}", "loss", report.train_loss, report.val_loss);
    println!("{:<34} {:>10} {:>10}", "success-prediction AUC", "", opt(report.val_auc));
    println!(
        "{:<34} {:>10} {:>10}",
        format!("top-1 ranking accuracy ({} states)", report.val_top1_groups),
        "",
        opt(report.val_top1)
    );
    println!("{:<34} {:>9.0}%", "embeddings from the cache", 100.0 * hits_t);
    Ok(())
}
