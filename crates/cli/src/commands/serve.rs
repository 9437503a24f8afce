//! `kaizen serve`: the OpenAI-compatible server.

use super::policy::{Backend, PolicyArgs};
use kaizen_models::Embedder;
use kaizen_serve::{AppState, ServerConfig};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    policy: PolicyArgs,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The model id clients send (default: the --policy name).
    #[arg(long)]
    served_name: Option<String>,
    /// Requests allowed to wait for the model; more get HTTP 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Continuations decoding together (a request's n take n of them); requests join the batch
    /// as slots free up. While requests run, each slot holds a KV-cache row as long as the
    /// longest sequence among them (SmolLM2: 46 KB a position, so 8 slots at its 8,192-token
    /// context hold about 3 GB); an idle server goes back to 1,024 positions a slot.
    #[arg(long, default_value_t = kaizen_serve::DEFAULT_BATCH_SLOTS)]
    batch_slots: usize,
    /// The most KV-cache positions one request may hold, n × (prompt + max_tokens); more is
    /// a 400 that names this limit.
    #[arg(long, default_value_t = 32_768)]
    max_request_tokens: usize,
    /// The largest request body (and, for the proxy, upstream answer) read; more is a 413
    /// (a 502 from the upstream).
    #[arg(long, default_value_t = kaizen_serve::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Do not load the embedding model (no /v1/embeddings).
    #[arg(long)]
    no_embeddings: bool,
    /// Best-of-Q proxy mode: forward chat requests to this OpenAI-compatible base URL
    /// (e.g. http://127.0.0.1:8000/v1) and rerank its N choices with --q.
    #[arg(long, value_name = "URL", requires = "q")]
    upstream: Option<String>,
    /// The Q-function (`kaizen q train`) the proxy ranks with.
    #[arg(long, value_name = "Q.safetensors")]
    q: Option<std::path::PathBuf>,
    /// Choices the proxy asks the upstream for (1 to 32).
    #[arg(long, default_value_t = 4)]
    candidates: usize,
    /// Seconds the proxy waits for the upstream before answering 504.
    #[arg(long, default_value_t = 120)]
    upstream_timeout: u64,
    /// Where the proxy appends `decisions.jsonl` (input for `kaizen q train`).
    #[arg(long, default_value = "runs/proxy")]
    log_dir: std::path::PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if let Some(upstream) = &a.upstream {
        return proxy(&a, upstream);
    }
    let llm = match Backend::open(&a.policy)? {
        Backend::Local(l) => Arc::new(l),
        Backend::Remote(_) => {
            anyhow::bail!("kaizen serve runs a local model; --policy openai:… is for clients")
        }
    };
    let embedder = if a.no_embeddings { None } else { Some(Arc::new(Embedder::load_installed()?)) };
    let cfg = ServerConfig {
        model_name: a.served_name.clone().unwrap_or_else(|| a.policy.policy.clone()),
        queue_capacity: a.queue,
        batch_slots: a.batch_slots,
        max_request_tokens: a.max_request_tokens,
        max_body_bytes: a.max_body_bytes,
        ..Default::default()
    };
    let name = cfg.model_name.clone();
    let state =
        AppState::new(cfg, Some(llm), embedder).map_err(|e| anyhow::anyhow!("starting the model worker: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener =
            tokio::net::TcpListener::bind(&addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        eprintln!("kaizen serve: model '{name}' on http://{}/v1 (ctrl-c to stop)", listener.local_addr()?);
        kaizen_serve::serve(listener, state).await?;
        Ok(())
    })
}

/// `kaizen serve --upstream URL --q Q`: the Best-of-Q proxy.
fn proxy(a: &Args, upstream: &str) -> anyhow::Result<()> {
    use kaizen_serve::proxy::{proxy_router, ProxyConfig, ProxyState};
    let q = a.q.as_ref().ok_or_else(|| anyhow::anyhow!("--upstream needs --q Q.safetensors"))?;
    let max = kaizen_serve::proxy::MAX_CANDIDATES;
    anyhow::ensure!((1..=max).contains(&a.candidates), "--candidates must be in 1..={max}, got {}", a.candidates);
    let scorer = Arc::new(kaizen_q::scorer::QScorer::load(q)?);
    let cfg = ProxyConfig {
        upstream: upstream.to_string(),
        candidates: a.candidates,
        timeout: std::time::Duration::from_secs(a.upstream_timeout.max(1)),
        log_dir: a.log_dir.clone(),
        max_body_bytes: a.max_body_bytes,
    };
    let state = ProxyState::new(cfg, scorer)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener =
            tokio::net::TcpListener::bind(&addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        eprintln!(
            "kaizen serve: Best-of-Q proxy (N = {}) in front of {upstream} on http://{}/v1, decisions in {}",
            a.candidates,
            listener.local_addr()?,
            a.log_dir.join(kaizen_serve::proxy::DECISIONS).display()
        );
        axum::serve(listener, proxy_router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
