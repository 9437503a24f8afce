//! `kaizen report RUN … --out report.html`: one self-contained HTML file of one or more run
//! directories (training curves, evaluation tables, a trajectory browser), opened offline in
//! any browser; `--plots DIR` also writes every chart as an SVG file.

use kaizen_models::gguf::GgufFile;
use kaizen_models::tokenizer::GgufTokenizer;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  kaizen report runs/tiny-grpo runs/tiny-axpo --out report.html --plots plots/")]
pub struct Args {
    /// Run directories (of `kaizen train`, `run`, `collect`); several are overlaid.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
    /// Also write every chart as DIR/PHASE-METRIC.svg.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
}

/// The tokenizer of the policy a run sampled from, for the log-prob heat-map: a training run's
/// own `policy.gguf`, else the model its `config.json` names. `None` when neither is at hand
/// (a remote policy, a reference agent): the heat-map then shows token ids.
fn tokenizer_of(run: &Path) -> Option<GgufTokenizer> {
    let own = run.join("policy.gguf");
    let gguf = if own.exists() {
        own
    } else {
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).ok()?).ok()?;
        let policy = cfg["policy"].as_str()?;
        if policy.ends_with(".gguf") {
            PathBuf::from(policy)
        } else {
            kaizen_models::home::gguf_path(policy).ok()?
        }
    };
    GgufTokenizer::from_gguf(&GgufFile::open(&gguf).ok()?).ok()
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let runs = kaizen_report::load_runs(&a.runs).map_err(anyhow::Error::msg)?;
    for w in runs.iter().flat_map(|r| &r.warnings) {
        eprintln!("warning: {w}");
    }
    let tokenizers: Vec<Option<GgufTokenizer>> = runs.iter().map(|r| tokenizer_of(&r.path)).collect();
    let token_text = |run: &kaizen_report::Run, ids: &[u32]| -> Option<Vec<String>> {
        let i = runs.iter().position(|r| std::ptr::eq(r, run))?;
        let tok = tokenizers[i].as_ref()?;
        Some(ids.iter().map(|&id| tok.token_text(id)).collect())
    };
    let html = kaizen_report::page::render(&runs, &token_text);
    kaizen_core::durable::write_atomic(&a.out, html.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", a.out.display()))?;
    let charts = kaizen_report::charts(&runs);
    if let Some(dir) = &a.plots {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        for (name, svg) in &charts {
            // A standalone SVG file needs its namespace (inline SVG in HTML does not).
            let file = svg.replacen("<svg ", "<svg xmlns=\"http://www.w3.org/2000/svg\" ", 1);
            std::fs::write(dir.join(format!("{name}.svg")), file)?;
        }
    }
    let episodes: usize = runs.iter().map(|r| r.trajectories.len()).sum();
    println!("kaizen report → {}", a.out.display());
    let w = runs.iter().map(|r| r.name.len()).max().unwrap_or(3).max(3);
    println!("{:<w$} {:>10} {:>10} {:>10}", "run", "metrics", "episodes", "tokenizer");
    for (r, t) in runs.iter().zip(&tokenizers) {
        println!(
            "{:<w$} {:>10} {:>10} {:>10}",
            r.name,
            r.metrics.len(),
            r.trajectories.len(),
            if t.is_some() { "yes" } else { "no" }
        );
    }
    println!("{} charts, {episodes} episodes, {:.1} MB", charts.len(), html.len() as f64 / 1e6);
    if let Some(dir) = &a.plots {
        println!("charts as SVG in {}", dir.display());
    }
    Ok(())
}
