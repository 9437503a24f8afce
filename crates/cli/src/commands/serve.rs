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
    /// Do not load the embedding model (no /v1/embeddings).
    #[arg(long)]
    no_embeddings: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
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
