//! `kaizen bench …`: speed measurements that print a table. Peers (llama.cpp) are run side by
//! side by the scripts in `bench/`, which read the `--json` line.

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use kaizen_models::arch::llama::Logits;
use kaizen_models::{LocalLlm, WeightFormat};
use std::time::Instant;

#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// Prefill and decode tokens/s of the local model: single stream and N continuations
    /// sharing one prefill. Like llama-bench's pp/tg: greedy, end-of-sequence ignored.
    #[command(after_help = "Example:\n  kaizen --threads 2 bench generate --prompt-tokens 128 --gen-tokens 64 --n 8")]
    Generate(GenerateArgs),
    /// Python tool call latency, p50 / p99: a bare `python3 -c` subprocess (no sandbox) next to
    /// kaizen's sandbox started cold for each call and warm (reused), in the same run.
    #[command(after_help = "Example:\n  kaizen bench sandbox --calls 200")]
    Sandbox(SandboxArgs),
    /// Training tokens/s of the tiny from-scratch transformer (llama architecture, byte
    /// vocabulary): forward, next-token loss, backward and an AdamW step. `bench/train_tiny.sh` runs PyTorch on the
    /// identical config and batch beside it.
    #[command(
        after_help = "Example:\n  kaizen --threads 2 bench train --layers 4 --width 256 --heads 4 --context 256 --batch 8"
    )]
    Train(TrainArgs),
    /// Web environment speed without a model: MiniWoB++ steps (an action and the page read
    /// back) per second and their latency with K browsers, and memory per browser. The floor
    /// beside it: a bare WebDriver round trip (`return 1`) on the same browser.
    #[command(after_help = "Example:\n  kaizen bench web --browsers 1,2,4 --steps 200")]
    Web(WebArgs),
    /// What Best-of-Q costs: MiniLM throughput, the reranking share of a step next to the
    /// local model generating the N candidates, and the proxy's added latency under
    /// concurrent clients next to calling the upstream directly.
    #[command(after_help = "Example:\n  kaizen --threads 2 bench rerank --candidates 8 --clients 32")]
    Rerank(super::bench_rerank::Args),
    /// How a large run's report behaves: a synthetic run of N episodes rendered by `kaizen
    /// report` and opened in headless Chromium — file size, time to open, DOM nodes, time to
    /// filter and to open an episode.
    #[command(after_help = "Example:\n  kaizen bench report --episodes 10000")]
    Report(super::bench_report::Args),
}

#[derive(clap::Args, Debug)]
pub struct WebArgs {
    /// Browser counts to measure, comma-separated.
    #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
    browsers: Vec<usize>,
    /// Steps per configuration (random actions on the page, episodes restarted as they end).
    #[arg(long, default_value_t = 200)]
    steps: usize,
    #[arg(long, default_value = "miniwob-easy")]
    env: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 256)]
    width: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Sequence length of every batch row (also the model's context).
    #[arg(long, default_value_t = 256)]
    context: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed steps (after 2 untimed warm-up steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Train SmolLM2-135M through LoRA adapters of this rank on q, k, v and the attention
    /// output (the recipes' default targets) instead of the tiny model; its sizes replace
    /// --layers/--width/--heads.
    #[arg(long, default_value_t = 0)]
    lora_rank: usize,
    /// The tiny model with previous-token embeddings (the recipes' `policy.prev_token`).
    #[arg(long)]
    prev_token: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// Calls per configuration.
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// The code each call runs.
    #[arg(long, default_value = "print(1)")]
    code: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// `smollm2` (installed) or a path to a .gguf file (another quantisation of it, say).
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// q8_0 (re-quantised to 8 bits at load, kaizen's int8 kernel), native (the file's own
    /// format on candle's kernels), f32.
    #[arg(long, default_value = "q8_0")]
    weights: WeightFormat,
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Continuations for the shared-prefix measurement.
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Timed repetitions; the best is reported (least disturbed by other load).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also print one JSON line with the results.
    #[arg(long)]
    json: bool,
}

pub fn run(b: Bench) -> anyhow::Result<()> {
    match b {
        Bench::Generate(a) => generate(a),
        Bench::Sandbox(a) => sandbox(a),
        Bench::Train(a) => train(a),
        Bench::Web(a) => web(a),
        Bench::Rerank(a) => super::bench_rerank::run(a),
        Bench::Report(a) => super::bench_report::run(a),
    }
}

/// One thread's share of `bench web`: episodes of random actions until `steps` are done.
fn web_worker(env: &kaizen_envs::MiniWob, worker: usize, steps: usize, bar: &ProgressBar) -> anyhow::Result<Vec<f64>> {
    use kaizen_core::{Env, SessionStatus, ToolCall};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
    let mut ms = Vec::with_capacity(steps);
    let mut episode = 0u64;
    while ms.len() < steps {
        let task = env.tasks(1000 * worker as u64 + episode, 1).remove(0);
        episode += 1;
        let mut s =
            env.open_session(&task).ok_or_else(|| anyhow::anyhow!("not a web env"))?.map_err(anyhow::Error::msg)?;
        let mut view = s.prompt();
        while s.status() == SessionStatus::Running && ms.len() < steps {
            let els = kaizen_envs::miniwob::dom::parse(view.split_once("Page:\n").map(|(_, p)| p).unwrap_or(""));
            anyhow::ensure!(!els.is_empty(), "{}: nothing on the page", task.id);
            let el = &els[rng.random_range(0..els.len())];
            let (name, arguments) = if el.tag.starts_with("input_") && el.tag != "input_checkbox" {
                ("type", serde_json::json!({"ref": el.r#ref, "text": "abc"}))
            } else {
                ("click", serde_json::json!({"ref": el.r#ref}))
            };
            let t = Instant::now();
            let obs = s.act(&ToolCall { id: String::new(), name: name.into(), arguments });
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            bar.inc(1);
            if let SessionStatus::Failed { message } = s.status() {
                anyhow::bail!("browser failed during the benchmark: {message}");
            }
            view = obs.content;
        }
    }
    Ok(ms)
}

fn web(a: WebArgs) -> anyhow::Result<()> {
    use kaizen_tools::browser::BrowserConfig;
    anyhow::ensure!(a.steps >= 2 && !a.browsers.is_empty(), "--steps must be at least 2 and --browsers non-empty");
    anyhow::ensure!(a.browsers.iter().all(|&k| (1..=16).contains(&k)), "--browsers takes counts from 1 to 16");
    let bar = ProgressBar::new((a.browsers.len() * a.steps) as u64)
        .with_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec}")?);
    let mut rows = Vec::new();
    for &k in &a.browsers {
        bar.set_message(format!("bench web, {k} browser(s)"));
        let env = kaizen_envs::MiniWob::open_with(&a.env, k, BrowserConfig::default()).map_err(anyhow::Error::msg)?;
        // Launch every browser (all held at once) and load a page, outside the timing.
        let warm: Vec<_> = std::thread::scope(|s| {
            let env = &env;
            let handles: Vec<_> = (0..k).map(|w| s.spawn(move || env.start("click-test", w as u64))).collect();
            handles.into_iter().map(|h| h.join().map_err(|_| anyhow::anyhow!("a browser thread panicked"))).collect()
        });
        for session in warm {
            drop(session?.map_err(anyhow::Error::msg)?);
        }
        let floor = {
            let mut b = env.pool().lease()?;
            let mut ms = Vec::with_capacity(100);
            for _ in 0..100 {
                let t = Instant::now();
                b.execute("return 1;", &[])?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            percentiles(ms)
        };
        let started = Instant::now();
        let per = a.steps.div_ceil(k);
        let lat: Vec<f64> = std::thread::scope(|s| {
            let (env, bar) = (&env, &bar);
            let handles: Vec<_> = (0..k).map(|w| s.spawn(move || web_worker(env, w, per, bar))).collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))?)
                .collect::<anyhow::Result<Vec<Vec<f64>>>>()
        })?
        .concat();
        let wall = started.elapsed().as_secs_f64();
        let (bytes, live) = env.pool().idle_memory();
        let (p50, p99) = percentiles(lat.clone());
        let mib = bytes as f64 / live.max(1) as f64 / 1048576.0;
        // Requests for anything but loopback, refused by the network trap (should be none).
        let outside = env.outside_requests().len();
        rows.push((k, lat.len() as f64 / wall, p50, p99, floor.0, mib, outside));
    }
    bar.finish_and_clear();
    println!("kaizen bench web — {} steps per row on {} (random clicks and typing; no model)", a.steps, a.env);
    println!(
        "{:>8} {:>10} {:>13} {:>13} {:>22} {:>16} {:>17}",
        "browsers",
        "steps/s",
        "step p50 ms",
        "step p99 ms",
        "WebDriver floor p50 ms",
        "MiB per browser",
        "outside requests"
    );
    for (k, sps, p50, p99, floor, mib, outside) in &rows {
        println!("{k:>8} {sps:>10.1} {p50:>13.1} {p99:>13.1} {floor:>22.2} {mib:>16.0} {outside:>17}");
    }
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(k, sps, p50, p99, floor, mib, outside)| {
                serde_json::json!({"browsers": k, "steps_per_second": sps, "step_p50_ms": p50, "step_p99_ms": p99,
                "webdriver_floor_p50_ms": floor, "mib_per_browser": mib, "outside_requests": outside})
            })
            .collect();
        println!("{}", serde_json::json!({"bench": "web", "env": a.env, "steps": a.steps, "rows": rows}));
    }
    Ok(())
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    use kaizen_models::trainable::{lora::DEFAULT_TARGETS, LmConfig, LoraConfig, TrainableLm};
    use kaizen_rl::optim::{AdamW, AdamWConfig};
    use rand::{Rng, SeedableRng};
    anyhow::ensure!(a.steps >= 1 && a.batch >= 1 && a.context >= 2, "--steps, --batch ≥ 1 and --context ≥ 2");
    let dev = candle_core::Device::Cpu;
    anyhow::ensure!(!(a.prev_token && a.lora_rank > 0), "--prev-token is for the tiny model, not with --lora-rank");
    let model = if a.lora_rank == 0 {
        let cfg = LmConfig { prev_token: a.prev_token, ..LmConfig::bytes(a.layers, a.width, a.heads, a.context) };
        cfg.validate().map_err(|e| anyhow::anyhow!(e))?;
        TrainableLm::new(cfg, &dev, 0)?
    } else {
        let targets = DEFAULT_TARGETS.map(String::from).to_vec();
        let lora = LoraConfig { rank: a.lora_rank, alpha: 2.0 * a.lora_rank as f32, targets };
        TrainableLm::with_lora(&kaizen_models::home::gguf_path("smollm2")?, lora, a.context, &dev, 0)?
    };
    let cfg = model.cfg;
    let trainable: usize = model.vars().all_vars().iter().map(|v| v.elem_count()).sum();
    // The trainer's optimizer (PyTorch's defaults; the peer runs torch.optim.AdamW).
    let mut opt = AdamW::new(&model.named_vars()?, AdamWConfig::default())?;
    // Random tokens (printable bytes for tiny: token 5 + b): the speed does not depend on the content.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let ids: Vec<u32> = (0..a.batch * a.context)
        .map(
            |_| if a.lora_rank == 0 { 5 + rng.random_range(32u32..127) } else { rng.random_range(0..cfg.vocab as u32) },
        )
        .collect();
    let batch = Tensor::from_vec(ids, (a.batch, a.context), &dev)?;
    let mut step = || -> anyhow::Result<f32> {
        let loss = model.token_logprobs(&batch, 1.0)?.mean_all()?.neg()?;
        opt.step(&loss.backward()?)?;
        Ok(loss.to_scalar::<f32>()?)
    };
    step()?;
    step()?;
    let bar = ProgressBar::new(a.steps as u64)
        .with_style(ProgressStyle::with_template("bench train [{bar:30}] {pos}/{len} {per_sec}")?);
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..a.steps {
        loss = step()?;
        bar.inc(1);
    }
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let tokens = (a.batch * (a.context - 1) * a.steps) as f64;
    let what =
        if a.lora_rank == 0 { "tiny transformer".to_string() } else { format!("SmolLM2 + LoRA rank {}", a.lora_rank) };
    println!(
        "kaizen bench train — {what}: {} layers × {} wide, {}/{} heads, {} parameters ({trainable} trained); batch {} × {} tokens",
        cfg.layers,
        cfg.width,
        cfg.heads,
        cfg.kv_heads,
        cfg.parameters(),
        a.batch,
        a.context
    );
    println!("{:<32} {:>12}", "training tokens/s", format!("{:.0}", tokens / secs));
    println!("{:<32} {:>12}", "ms per step", format!("{:.1}", 1e3 * secs / a.steps as f64));
    println!("{:<32} {:>12}", "loss after the timed steps", format!("{loss:.3}"));
    if a.json {
        println!(
            "{}",
            serde_json::json!({"bench": "train", "layers": cfg.layers, "width": cfg.width, "heads": cfg.heads,
                "kv_heads": cfg.kv_heads, "vocab": cfg.vocab, "ffn": cfg.ffn, "lora_rank": a.lora_rank, "rope_base": cfg.rope_base,
                "prev_token": cfg.prev_token,
                "trainable_parameters": trainable,
                "context": a.context, "batch": a.batch, "steps": a.steps, "parameters": cfg.parameters(),
                "tokens_per_second": tokens / secs, "ms_per_step": 1e3 * secs / a.steps as f64})
        );
    }
    Ok(())
}

fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let llm = if a.model.ends_with(".gguf") {
        LocalLlm::load(std::path::Path::new(&a.model), a.weights)?
    } else {
        LocalLlm::load_installed(&a.model, a.weights)?
    };
    let threads = candle_core::utils::get_num_threads();
    // A fixed, ordinary-text prompt of exactly `prompt_tokens` tokens.
    let text = "The quick brown fox jumps over the lazy dog while the curious cat watches from the warm windowsill. "
        .repeat(64);
    let mut prompt = llm.tokenizer.encode(&text)?;
    anyhow::ensure!(prompt.len() >= a.prompt_tokens, "prompt too short");
    prompt.truncate(a.prompt_tokens);
    let m = &llm.model;
    let dev = m.device().clone();
    let steps = 2 * a.repeats + 1;
    let bar = ProgressBar::new(steps as u64)
        .with_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")?);
    bar.set_message("bench generate");

    // Warm-up (first use packs weights, sizes pools).
    let mut cache = m.new_cache();
    m.forward(&Tensor::new(&prompt[..16], &dev)?.unsqueeze(0)?, &mut cache, Logits::Last)?;
    bar.inc(1);

    let (mut prefill, mut decode1, mut decode_n) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..a.repeats {
        let mut cache = m.new_cache();
        let t = Instant::now();
        let logits = m.forward(&Tensor::new(prompt.as_slice(), &dev)?.unsqueeze(0)?, &mut cache, Logits::Last)?;
        prefill = prefill.min(t.elapsed().as_secs_f64());
        let first = kaizen_models::runtime::sampler::argmax(&logits.squeeze(0)?.to_vec1::<f32>()?);
        let shared = cache.clone();

        let t = Instant::now();
        let mut tok = first;
        for _ in 0..a.gen_tokens {
            let l = m.forward(&Tensor::new(&[tok], &dev)?.unsqueeze(0)?, &mut cache, Logits::Last)?;
            tok = kaizen_models::runtime::sampler::argmax(&l.squeeze(0)?.to_vec1::<f32>()?);
        }
        decode1 = decode1.min(t.elapsed().as_secs_f64());
        bar.inc(1);

        let t = Instant::now();
        let mut cache = shared.repeat_batch(a.n)?;
        let mut toks = vec![first; a.n];
        for _ in 0..a.gen_tokens {
            let l = m.forward(&Tensor::new(toks.as_slice(), &dev)?.unsqueeze(1)?, &mut cache, Logits::Last)?;
            toks = l.to_vec2::<f32>()?.iter().map(|r| kaizen_models::runtime::sampler::argmax(r)).collect();
        }
        decode_n = decode_n.min(t.elapsed().as_secs_f64());
        bar.inc(1);
    }
    bar.finish_and_clear();

    let pp = a.prompt_tokens as f64 / prefill;
    let tg = a.gen_tokens as f64 / decode1;
    let tg_n = (a.n * a.gen_tokens) as f64 / decode_n;
    println!(
        "kaizen bench generate — {} ({:?} weights; int8 kernel: {}), {threads} thread(s), best of {}",
        a.model,
        a.weights,
        kaizen_models::kernels::q8_matmul::kernel_name(),
        a.repeats
    );
    println!("{:<34} {:>12}", "measurement", "tokens/s");
    println!("{:<34} {:>12.1}", format!("prefill ({} tokens)", a.prompt_tokens), pp);
    println!("{:<34} {:>12.1}", format!("decode, 1 stream ({} tokens)", a.gen_tokens), tg);
    println!("{:<34} {:>12.1}", format!("decode, {} streams shared prefix", a.n), tg_n);
    println!("{:<34} {:>12.2}x", format!("N={} aggregate / single stream", a.n), tg_n / tg);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"engine": "kaizen", "threads": threads, "weights": format!("{:?}", a.weights), "int8_kernel": kaizen_models::kernels::q8_matmul::kernel_name(),
                "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens, "n": a.n,
                "prefill_tps": pp, "decode_tps": tg, "decode_n_tps": tg_n})
        );
    }
    Ok(())
}

/// `(p50, p99)` in milliseconds.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn sandbox(a: SandboxArgs) -> anyhow::Result<()> {
    use kaizen_tools::{Limits, Sandbox};
    anyhow::ensure!(a.calls >= 2, "--calls must be at least 2");
    let bar = ProgressBar::new(3 * a.calls as u64)
        .with_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec}")?);
    bar.set_message("bench sandbox");
    let time_calls = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<(f64, f64)> {
        let mut ms = Vec::with_capacity(a.calls);
        for _ in 0..a.calls {
            let t = Instant::now();
            f()?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            bar.inc(1);
        }
        Ok(percentiles(ms))
    };
    let bare = time_calls(&mut || {
        // The interpreter the sandbox runs (a `python3` on PATH may be a slower shim).
        let out = std::process::Command::new("/usr/bin/python3").args(["-c", &a.code]).output()?;
        anyhow::ensure!(out.status.success(), "python3 failed");
        Ok(())
    })?;
    let cold_box = Sandbox::cold(Limits::default());
    let cold = time_calls(&mut || {
        let r = cold_box.run(&a.code);
        anyhow::ensure!(r.success(), "sandbox call failed: {r:?}");
        Ok(())
    })?;
    let warm_box = Sandbox::new(Limits::default());
    warm_box.run(&a.code); // start the server outside the timing
    let warm = time_calls(&mut || {
        let r = warm_box.run(&a.code);
        anyhow::ensure!(r.success(), "sandbox call failed: {r:?}");
        Ok(())
    })?;
    bar.finish_and_clear();
    println!("kaizen bench sandbox — {} calls of {:?} each", a.calls, a.code);
    println!("{:<40} {:>9} {:>9}", "configuration", "p50 ms", "p99 ms");
    for (name, (p50, p99)) in [
        ("bare `/usr/bin/python3 -c` (no sandbox)", bare),
        ("kaizen sandbox, cold (new per call)", cold),
        ("kaizen sandbox, warm (reused)", warm),
    ] {
        println!("{name:<40} {p50:>9.2} {p99:>9.2}");
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({"bench": "sandbox", "calls": a.calls, "bare_p50_ms": bare.0, "bare_p99_ms": bare.1,
                "cold_p50_ms": cold.0, "cold_p99_ms": cold.1, "warm_p50_ms": warm.0, "warm_p99_ms": warm.1})
        );
    }
    Ok(())
}
