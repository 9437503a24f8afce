//! `kaizen bench rerank`: what Best-of-Q costs. MiniLM embedding throughput; the reranking
//! share of a step (embedding the state and N candidates, scoring them) next to the local
//! model generating those N candidates; and the proxy's added latency under concurrent
//! clients, next to the same clients calling the upstream directly.

use kaizen_core::SamplingParams;
use kaizen_q::features::{FeatureCache, Features};
use kaizen_q::qnet::{Objective, QConfig, QNet};
use kaizen_q::scorer::QScorer;
use kaizen_q::state::{state_text, ActionScorer};
use kaizen_rollout::rerank::dedup;
use kaizen_rollout::{few_shot, Agent, Episode, EpisodeConfig, Job};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Candidates per step.
    #[arg(long, default_value_t = 8)]
    candidates: usize,
    /// Steps timed for the overhead (medians reported).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Tokens each candidate may generate.
    #[arg(long, default_value_t = 48)]
    max_tokens: usize,
    /// Concurrent clients for the proxy latency.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 8)]
    requests: usize,
    /// Worked examples before the task (as `kaizen run --shots`): a longer prompt to read
    /// makes each step longer, the reranking no dearer.
    #[arg(long, default_value_t = 0)]
    shots: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.candidates >= 2 && a.steps >= 1 && a.clients >= 1 && a.requests >= 1,
        "all counts must be ≥ 1 (candidates ≥ 2)"
    );
    let tmp = std::env::temp_dir().join(format!("kaizen-bench-rerank-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let embedder = Arc::new(kaizen_models::Embedder::load_installed()?);
    let features = Features::MiniLm(embedder.clone());
    let identity = features.identity();
    // A Q-head of the real size (its weights do not change its speed).
    let cfg = QConfig {
        dim: embedder.dim(),
        hidden: 256,
        embedder: identity.clone(),
        objective: Objective::Iql,
        gamma: 0.9,
        tau: 0.7,
        picture_side: 0,
    };
    let q_path = tmp.join("q.safetensors");
    std::fs::create_dir_all(&tmp)?;
    QNet::new(cfg)?.save(&q_path)?;

    // 1. Embedding throughput (no cache).
    let env = kaizen_envs::open("arith").map_err(anyhow::Error::msg)?;
    let texts: Vec<String> = env.tasks(77, 256).into_iter().map(|t| t.prompt).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    embedder.embed(&refs, 32)?;
    let sentences_per_s = texts.len() as f64 / t.elapsed().as_secs_f64();

    // 2. Reranking share of a step with the local model.
    let llm = kaizen_models::LocalLlm::load_installed("smollm2", kaizen_models::WeightFormat::Q8_0)?;
    // Its own cache dir, so the first scoring of a step is cold.
    let cache = FeatureCache::new(features, &tmp.join("cache"));
    let scorer = QScorer::new(QNet::load(&q_path, &identity)?, cache)?;
    let (mut gen_ms, mut cold_ms, mut warm_ms, mut distinct) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let registry = kaizen_tools::ToolRegistry::standard();
    let episode_cfg = EpisodeConfig {
        shots: few_shot(env.as_ref(), &registry, a.shots).map_err(anyhow::Error::msg)?,
        ..Default::default()
    };
    for (i, task) in env.tasks(91, a.steps).into_iter().enumerate() {
        // The first step's prompt exactly as an episode writes it (system, tools, examples, task).
        let job = Job::new(task.clone(), i as u64, "bench");
        let episode = Episode::new(&Agent::Local(&llm), env.as_ref(), &registry, job, &episode_cfg);
        let prompt = episode.token_ids().to_vec();
        let params = SamplingParams {
            n: a.candidates,
            max_tokens: a.max_tokens,
            temperature: 1.0,
            seed: i as u64,
            ..Default::default()
        };
        let t = Instant::now();
        let cands = llm.generate(&prompt, &params, &mut |_| true)?;
        gen_ms.push(t.elapsed().as_secs_f64() * 1e3);
        // The runner scores the distinct candidates only.
        let cands = dedup(cands);
        distinct.push(cands.len() as f64);
        let actions: Vec<(String, f32)> = cands.iter().map(|c| (c.text.clone(), c.total_logprob())).collect();
        for out in [&mut cold_ms, &mut warm_ms] {
            let t = Instant::now();
            scorer
                .score(&state_text(&task.prompt, &[]), task.images.last().map(String::as_str), &actions)
                .map_err(anyhow::Error::msg)?;
            out.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (g, c, w) = (median(gen_ms), median(cold_ms), median(warm_ms));

    // 3. Proxy latency under concurrent clients, against an instant upstream.
    let [direct, via, cached] = proxy_latency(&a, &q_path, &tmp.join("proxy-cache"))?;
    let _ = std::fs::remove_dir_all(&tmp);

    println!(
        "kaizen bench rerank — N = {} candidates, {} steps of arith ({} worked examples in the prompt), SmolLM2 Q8_0 \
         generating ≤ {} tokens each",
        a.candidates, a.steps, a.shots, a.max_tokens
    );
    println!(
        "{:<52} {:>12}",
        "MiniLM embedding throughput (batch 32, no cache)",
        format!("{sentences_per_s:.0} sent/s")
    );
    println!("{:<52} {:>12}", "generating N candidates (median per step)", format!("{g:.0} ms"));
    let mean_distinct = distinct.iter().sum::<f64>() / distinct.len().max(1) as f64;
    println!("{:<52} {:>12}", "distinct candidates scored (mean per step)", format!("{mean_distinct:.1}"));
    println!("{:<52} {:>12}", "reranking: embed state + N, score (cold cache)", format!("{c:.1} ms"));
    println!("{:<52} {:>12}", "reranking share of the step (cold cache)", format!("{:.2}%", 100.0 * c / (g + c)));
    println!("{:<52} {:>12}", "reranking: same texts again (warm cache)", format!("{w:.2} ms"));
    println!("{:<52} {:>12}", "reranking share of the step (warm cache)", format!("{:.2}%", 100.0 * w / (g + w)));
    println!(
        "\n{} clients × {} requests, N = {} choices from an instant local upstream:",
        a.clients, a.requests, a.candidates
    );
    println!("{:<44} {:>10} {:>10}", "", "p50 ms", "p99 ms");
    let row = |name: &str, v: &[f64]| {
        println!("{name:<44} {:>10.2} {:>10.2}", pct(v.to_vec(), 0.5), pct(v.to_vec(), 0.99));
    };
    row("direct to the upstream", &direct);
    row("through the proxy, every text new (no cache)", &via);
    row("through the proxy, same requests (cache hits)", &cached);
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        "added by the proxy, texts new",
        pct(via.clone(), 0.5) - pct(direct.clone(), 0.5),
        pct(via, 0.99) - pct(direct.clone(), 0.99)
    );
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        "added by the proxy, cache hits",
        pct(cached.clone(), 0.5) - pct(direct.clone(), 0.5),
        pct(cached, 0.99) - pct(direct, 0.99)
    );
    Ok(())
}

/// Latencies (ms) of the same requests sent straight to an instant upstream, through the
/// proxy with every text new to it (real Q-function scoring with MiniLM features, a fresh
/// embedding cache; each request's text, and the candidates the upstream echoes from it, are
/// distinct and salted per run), and through the proxy again with exactly those requests
/// (every text a cache hit).
fn proxy_latency(a: &Args, q: &std::path::Path, cache_dir: &std::path::Path) -> anyhow::Result<[Vec<f64>; 3]> {
    use axum::{routing::post, Json, Router};
    use kaizen_serve::proxy::{proxy_router, ProxyConfig, ProxyState};
    use serde_json::{json, Value};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let n = a.candidates;
    let features = Features::open("minilm")?;
    let identity = features.identity();
    let scorer = Arc::new(QScorer::new(QNet::load(q, &identity)?, FeatureCache::new(features, cache_dir))?);
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    rt.block_on(async move {
        let upstream = Router::new().route(
            "/v1/chat/completions",
            post(move |Json(req): Json<Value>| async move {
                let k = req["n"].as_u64().unwrap_or(1) as usize;
                // Candidates as distinct as the request: no embedding is shared across requests.
                let asked = req["messages"][0]["content"].as_str().unwrap_or("").to_string();
                let choices: Vec<Value> = (0..k)
                    .map(|i| json!({"index": i, "message": {"role": "assistant", "content": format!("answer {i} to {asked}")}, "finish_reason": "stop"}))
                    .collect();
                Json(json!({"id": "x", "object": "chat.completion", "model": "m", "choices": choices}))
            }),
        );
        let listen = |router: Router| async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            tokio::spawn(async move { axum::serve(l, router).await });
            anyhow::Ok(format!("http://{addr}/v1"))
        };
        let up = listen(upstream).await?;
        let log_dir = std::env::temp_dir().join(format!("kaizen-bench-proxy-{}", std::process::id()));
        let cfg = ProxyConfig { upstream: up.clone(), candidates: n, timeout: std::time::Duration::from_secs(30), log_dir: log_dir.clone(), max_body_bytes: kaizen_serve::DEFAULT_MAX_BODY_BYTES };
        let proxy = listen(proxy_router(ProxyState::new(cfg, scorer)?)).await?;
        let client = reqwest::Client::new();
        let mut out = Vec::new();
        for (base, ask_n) in [(up, n), (proxy.clone(), 1), (proxy, 1)] {
            let tasks = (0..a.clients).map(|c| {
                let (client, base) = (client.clone(), base.clone());
                let requests = a.requests;
                tokio::spawn(async move {
                    let mut ms = Vec::new();
                    for r in 0..requests {
                        let text = format!("run {salt} client {c} request {r}: what next?");
                        let body = json!({"model": "m", "n": ask_n, "messages": [{"role": "user", "content": text}]});
                        let t = Instant::now();
                        let resp = client.post(format!("{base}/chat/completions")).json(&body).send().await?;
                        anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
                        resp.bytes().await?;
                        ms.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    anyhow::Ok(ms)
                })
            });
            let mut all = Vec::new();
            for t in futures::future::join_all(tasks).await {
                all.extend(t??);
            }
            out.push(all);
        }
        let _ = std::fs::remove_dir_all(&log_dir);
        let cached = out.pop().unwrap_or_default();
        let via = out.pop().unwrap_or_default();
        let direct = out.pop().unwrap_or_default();
        Ok([direct, via, cached])
    })
}
