//! `kaizen bench report`: how a report of a large run behaves — a synthetic run directory of N
//! episodes (two turns each: a calculator call with its observation, then an answer; ~120
//! policy tokens with log-probs) and S training steps is written, `kaizen report` renders it,
//! and headless Chromium opens the file: time until the page's script is done, DOM nodes, and
//! the time to filter and to open an episode. The report's file size is printed beside them.

use kaizen_tools::browser::{Browser, BrowserConfig, NetworkTrap, StaticServer};
use std::io::Write;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    episodes: usize,
    /// Training steps in the synthetic `metrics.jsonl`.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Page loads timed; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long)]
    json: bool,
}

/// One synthetic episode: distinct task text, reward and tokens per index.
fn episode(i: usize) -> serde_json::Value {
    let (a, b) = (1000 + i * 7 % 9000, 300 + i * 13 % 700);
    let tokens = 120;
    let ids: Vec<u32> = (0..200 + tokens).map(|k| ((i * 31 + k * 17) % 49_000) as u32).collect();
    let mask: Vec<u8> = (0..200 + tokens).map(|k| u8::from(k >= 200)).collect();
    let lps: Vec<f32> =
        (0..200 + tokens).map(|k| if k >= 200 { -(((k * i) % 97) as f32) / 20.0 } else { 0.0 }).collect();
    serde_json::json!({
        "schema_version": 1, "episode_id": format!("{i:05}-00"), "env": "arith", "policy": "synthetic", "seed": i,
        "task": {"id": format!("t{i}"), "prompt": format!("A warehouse had {a} boxes and received {b} more. How many?"),
                 "answer": (a + b).to_string(), "checker": {"kind": "exact"}},
        "turns": [
            {"text": format!("I will add them.\n<tool_call>\n{{\"name\": \"calculator\", \"arguments\": {{\"expr\": \"{a} + {b}\"}}}}"),
             "tool_calls": [{"id": "c", "name": "calculator", "arguments": {"expr": format!("{a} + {b}")}}],
             "malformed": [], "observations": [{"content": (a + b).to_string(), "ok": true, "elapsed_ms": 0.2}],
             "generated_tokens": tokens / 2},
            {"text": format!("The answer is \\boxed{{{}}}.", a + b + i % 3), "tool_calls": [], "malformed": [],
             "observations": [], "generated_tokens": tokens / 2}
        ],
        "token_ids": ids, "loss_mask": mask, "logprobs": lps, "prompt_tokens": 200,
        "final_answer": (a + b + i % 3).to_string(), "reward": if i % 3 == 0 { 1.0 } else { 0.0 },
        "end": {"kind": "answered"}, "timing": {"generation_ms": 10.0, "tool_ms": 0.2, "total_ms": 10.2}
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("kaizen-bench-report-{}", std::process::id()));
    let run = dir.join("synthetic");
    std::fs::create_dir_all(&run)?;
    let mut t = std::io::BufWriter::new(std::fs::File::create(run.join("trajectories.jsonl"))?);
    for i in 0..a.episodes {
        writeln!(t, "{}", episode(i))?;
    }
    t.flush()?;
    let mut m = std::io::BufWriter::new(std::fs::File::create(run.join("metrics.jsonl"))?);
    for s in 0..a.steps {
        let x = s as f64 / a.steps.max(1) as f64;
        writeln!(
            m,
            "{}",
            serde_json::json!({"phase": "rl", "step": s, "reward": x * 0.8, "kl": 0.01 * x, "entropy": 1.0 - x / 2.0,
                "clip_fraction": 0.1, "zero_advantage_rate": 0.3, "tool_use_rate": 1.0, "response_tokens": 120})
        )?;
    }
    m.flush()?;
    let page = dir.join("report.html");
    let t0 = Instant::now();
    let runs = kaizen_report::load_runs(std::slice::from_ref(&run)).map_err(anyhow::Error::msg)?;
    let html =
        kaizen_report::page::render(&runs, &|_, ids| Some(ids.iter().map(|id| format!("t{}", id % 1000)).collect()))?;
    std::fs::write(&page, &html)?;
    let render_s = t0.elapsed().as_secs_f64();

    let trap = NetworkTrap::start()?;
    let server = StaticServer::start(dir.clone())?;
    let cfg = BrowserConfig { window: (1280, 1000), proxy_trap: Some(trap.port()), ..Default::default() };
    let mut b = Browser::launch(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let js = |b: &mut Browser, s: &str| b.execute(s, &[]).map_err(|e| anyhow::anyhow!("{e}"));
    let mut open_ms = f64::MAX;
    for _ in 0..a.repeats.max(1) {
        // The page's own clock gives the time from the start of navigation to the end of its
        // script (the data unpacked, filters and list built), which it writes into the body.
        b.navigate(&server.url("report.html")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let ms = loop {
            let v = js(&mut b, "return document.body.dataset.readyMs || null")?;
            if let Some(ms) = v.as_str().and_then(|s| s.parse::<f64>().ok()) {
                break ms;
            }
            anyhow::ensure!(Instant::now() < deadline, "the report's script did not finish in 60 s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        open_ms = open_ms.min(ms);
    }
    let nodes = js(&mut b, "return document.getElementsByTagName('*').length")?.as_u64().unwrap_or(0);
    let rows = js(&mut b, "return document.querySelectorAll('.row').length")?.as_u64().unwrap_or(0);
    let filter_ms = js(
        &mut b,
        "const t = performance.now(); const f = document.getElementById('f-reward'); f.value = 'solved';\
         f.dispatchEvent(new Event('change')); return performance.now() - t;",
    )?
    .as_f64()
    .unwrap_or(f64::NAN);
    let episode_ms = js(
        &mut b,
        "const t = performance.now(); document.querySelector('.row').click(); return performance.now() - t;",
    )?
    .as_f64()
    .unwrap_or(f64::NAN);
    let requests = trap.attempts().len();
    let _ = std::fs::remove_dir_all(&dir);
    let mb = html.len() as f64 / 1e6;
    println!(
        "kaizen bench report — {} episodes, {} training steps, headless Chromium, best of {}",
        a.episodes, a.steps, a.repeats
    );
    println!("{:<38} {:>12}", "measurement", "value");
    println!("{:<38} {:>11.1}s", "render the report (kaizen)", render_s);
    println!("{:<38} {:>10.1}MB", "report file", mb);
    println!("{:<38} {:>10.0}ms", "page open (navigation → script done)", open_ms);
    println!("{:<38} {:>12}", "DOM nodes", nodes);
    println!("{:<38} {:>12}", "episode list rows in the DOM", rows);
    println!("{:<38} {:>10.1}ms", "filter to solved episodes", filter_ms);
    println!("{:<38} {:>10.1}ms", "open an episode", episode_ms);
    println!("{:<38} {:>12}", "requests off loopback", requests);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"bench": "report", "episodes": a.episodes, "render_s": render_s, "megabytes": mb,
                "open_ms": open_ms, "dom_nodes": nodes, "rows": rows, "filter_ms": filter_ms, "episode_ms": episode_ms,
                "requests": requests})
        );
    }
    Ok(())
}
