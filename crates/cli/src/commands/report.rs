//! `kaizen report RUN … --out report.html`: one self-contained HTML file of one or more run
//! directories (training curves, evaluation tables, a trajectory browser), opened offline in
//! any browser; `--plots DIR` also writes every chart as an SVG file and, drawn by headless
//! Chromium, a PNG one; `--serve` serves the page on loopback, rebuilt from the run directories
//! on every load, and the open page reloads itself when their records grow.

use kaizen_models::arch::gguf::GgufFile;
use kaizen_models::text::tokenizer::GgufTokenizer;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  kaizen report runs/tiny-grpo runs/tiny-axpo --out report.html --plots plots/\n  \
    kaizen report runs/tiny-grpo --serve --port 8765    # live, while the run trains")]
pub struct Args {
    /// Run directories (of `kaizen train`, `run`, `collect`); several are overlaid.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
    /// Also write every chart as DIR/PHASE-METRIC.svg and .png (the PNG drawn by headless
    /// Chromium at twice the chart's size; skipped with a warning where Chromium is missing).
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Serve the report on 127.0.0.1 instead of writing it: rebuilt on every load, and the page
    /// reloads itself when the runs' metrics or trajectories change.
    #[arg(long)]
    serve: bool,
    /// Port for `--serve` (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8765)]
    port: u16,
}

/// The tokenizer of the policy a run sampled from, for the log-prob heat-map: a training run's
/// own `policy.gguf`, else the model its `config.json` names (`policy_spec`: what `--policy`
/// said, e.g. `smollm2` or a path; older runs: `policy`). `None` when neither is at hand
/// (a remote policy, a reference agent): the heat-map then shows token ids.
fn tokenizer_of(run: &Path) -> Option<GgufTokenizer> {
    let own = run.join("policy.gguf");
    let gguf = if own.exists() {
        own
    } else {
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).ok()?).ok()?;
        let policy = cfg["policy_spec"].as_str().or_else(|| cfg["policy"].as_str())?;
        if policy.ends_with(".gguf") {
            PathBuf::from(policy)
        } else {
            kaizen_models::home::gguf_path(policy).ok()?
        }
    };
    GgufTokenizer::from_gguf(&GgufFile::open(&gguf).ok()?).ok()
}

/// The page of `runs` with their tokenizers.
fn page(runs: &[kaizen_report::Run], tokenizers: &[Option<GgufTokenizer>]) -> std::io::Result<String> {
    let token_text = |run: &kaizen_report::Run, ids: &[u32]| -> Option<Vec<String>> {
        let i = runs.iter().position(|r| std::ptr::eq(r, run))?;
        let tok = tokenizers[i].as_ref()?;
        Some(ids.iter().map(|&id| tok.token_text(id)).collect())
    };
    kaizen_report::page::render(runs, &token_text)
}

/// What changes when a run's records grow: each record file's length and modification time.
fn version(dirs: &[PathBuf]) -> String {
    let mut v = String::new();
    for d in dirs {
        for f in ["metrics.jsonl", kaizen_rollout::run_dir::TRAJECTORIES, "summary.json"] {
            if let Ok(m) = std::fs::metadata(d.join(f)) {
                let t =
                    m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
                v.push_str(&format!("{}:{}.{};", m.len(), t.as_secs(), t.subsec_nanos()));
            }
        }
    }
    v
}

/// `--serve`: one thread per connection; `/` is the report built afresh, `/version` what the
/// page polls to know when to reload.
fn serve(a: &Args, tokenizers: Vec<Option<GgufTokenizer>>) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", a.port))
        .map_err(|e| anyhow::anyhow!("binding 127.0.0.1:{}: {e}", a.port))?;
    println!("kaizen report: serving http://{}/ (Ctrl-C to stop)", listener.local_addr()?);
    let tokenizers = std::sync::Arc::new(tokenizers);
    for stream in listener.incoming().flatten() {
        let (dirs, tokenizers) = (a.runs.clone(), tokenizers.clone());
        std::thread::spawn(move || {
            // The request head, capped (64 lines of 8 KiB): only the path and Host are used.
            let mut head = Vec::new();
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => return,
            });
            for _ in 0..64 {
                let mut l = String::new();
                match (&mut reader).take(8192).read_line(&mut l) {
                    Ok(n) if n > 2 => head.push(l),
                    _ => break,
                }
            }
            let line = head.first().cloned().unwrap_or_default();
            // A page elsewhere could reach this loopback port through a DNS name that resolves
            // to 127.0.0.1 (DNS rebinding) and read the runs: only loopback names are served.
            let host_ok = head.iter().any(|h| {
                h.to_ascii_lowercase().strip_prefix("host:").is_some_and(|v| {
                    let name = v.trim().rsplit_once(':').map_or(v.trim(), |(n, _)| n);
                    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
                })
            });
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, kind, body) = match path {
                _ if !host_ok => ("403 Forbidden", "text/plain", "loopback names only".to_string()),
                "/" | "/index.html" => match kaizen_report::load_runs(&dirs)
                    .and_then(|runs| page(&runs, &tokenizers).map_err(|e| format!("building the report: {e}")))
                {
                    Ok(html) => {
                        let live = html.replace("</body>", &format!("{}</body>", kaizen_report::page::LIVE_SCRIPT));
                        ("200 OK", "text/html; charset=utf-8", live)
                    }
                    Err(e) => ("500 Internal Server Error", "text/plain; charset=utf-8", e),
                },
                "/version" => ("200 OK", "text/plain", version(&dirs)),
                _ => ("404 Not Found", "text/plain", "not found".to_string()),
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
    }
    Ok(())
}

/// Every chart as PNG, drawn by headless Chromium from the SVG files in `dir` at twice their
/// size. Chromium missing is a warning, not an error: the SVG files stand.
fn pngs(dir: &Path, names: &[String]) -> anyhow::Result<usize> {
    use kaizen_tools::browser::{Browser, BrowserConfig, StaticServer};
    let cfg = BrowserConfig { window: (720, 440), ..Default::default() };
    let mut b = match Browser::launch(&cfg) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("warning: no PNG plots ({e}); the SVG files are written");
            return Ok(0);
        }
    };
    let server = StaticServer::start(dir.to_path_buf())?;
    for name in names {
        b.navigate(&server.url(&format!("{name}.svg"))).map_err(|e| anyhow::anyhow!("{e}"))?;
        let shot = b.screenshot().map_err(|e| anyhow::anyhow!("{e}"))?;
        use base64::Engine;
        let png =
            base64::engine::general_purpose::STANDARD.decode(shot.trim_start_matches("data:image/png;base64,"))?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
    }
    Ok(names.len())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let runs = kaizen_report::load_runs(&a.runs).map_err(anyhow::Error::msg)?;
    for w in runs.iter().flat_map(|r| &r.warnings) {
        eprintln!("warning: {w}");
    }
    let tokenizers: Vec<Option<GgufTokenizer>> = runs.iter().map(|r| tokenizer_of(&r.path)).collect();
    if a.serve {
        return serve(&a, tokenizers);
    }
    let html = page(&runs, &tokenizers)?;
    kaizen_core::durable::write_atomic(&a.out, html.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", a.out.display()))?;
    let charts = kaizen_report::charts(&runs);
    let mut png_count = 0;
    if let Some(dir) = &a.plots {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        for (name, svg) in &charts {
            // Smoothed as the page shows by default (level 1).
            std::fs::write(dir.join(format!("{name}.svg")), kaizen_report::svg::standalone(svg, 1))?;
        }
        png_count = match pngs(dir, &charts.iter().map(|c| c.0.clone()).collect::<Vec<_>>()) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("warning: PNG plots stopped ({e}); the SVG files are written");
                0
            }
        };
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
        println!("{} charts as SVG, {png_count} as PNG, in {}", charts.len(), dir.display());
    }
    Ok(())
}
