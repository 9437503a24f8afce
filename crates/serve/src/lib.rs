//! `kaizen serve`: an OpenAI-compatible HTTP server over kaizen's local models —
//! `/v1/models`, `/v1/chat/completions` (with `n`, seeds, stop strings, log-probs, tools and
//! SSE streaming) and `/v1/embeddings` — or (`proxy`) the Best-of-Q proxy in front of any
//! OpenAI-compatible server.
//!
//! The event loop never computes: generation requests go through a bounded queue to one model
//! worker thread (a full queue answers 503 at once) that decodes them together on the
//! continuous-batching engine (`worker`), embeddings run on the blocking pool.
//! `GET /kaizen/stats` tells what the worker has done (requests, decode steps, mean batch).

mod errors;
mod handlers;
pub mod proxy;
mod worker;

pub use errors::ApiError;
pub use handlers::router;

use kaizen_models::{Embedder, LocalLlm};
use std::sync::Arc;

/// Continuations the model worker decodes at once by default.
pub const DEFAULT_BATCH_SLOTS: usize = 8;

/// The largest request (and, in the proxy, upstream answer) body read by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model id clients use (`/v1/models` lists it).
    pub model_name: String,
    /// Generation requests allowed to wait; more get 503.
    pub queue_capacity: usize,
    /// Continuations decoding together in the model worker's batch.
    pub batch_slots: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
    /// The most KV-cache positions one request may hold: `n × (prompt + max_tokens)`, with
    /// `max_tokens` capped by the context window. A request over it is a 400 naming the limit,
    /// so one request cannot reserve more memory than this (SmolLM2: 45 KiB a position, so the
    /// default 32,768 is 1.4 GiB).
    pub max_request_tokens: usize,
    /// The largest request body accepted; more is a 413.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            model_name: "smollm2".into(),
            queue_capacity: 64,
            batch_slots: DEFAULT_BATCH_SLOTS,
            default_max_tokens: 512,
            max_request_tokens: 32_768,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

pub struct AppState {
    pub cfg: ServerConfig,
    pub llm: Option<Arc<LocalLlm>>,
    pub embedder: Option<Arc<Embedder>>,
    jobs: Option<worker::JobQueue>,
}

impl AppState {
    /// Starts the model worker thread (when there is an LLM) and returns the shared state.
    pub fn new(
        cfg: ServerConfig,
        llm: Option<Arc<LocalLlm>>,
        embedder: Option<Arc<Embedder>>,
    ) -> std::io::Result<Arc<Self>> {
        let jobs = llm
            .as_ref()
            .map(|l| worker::JobQueue::start(l.clone(), cfg.queue_capacity, cfg.batch_slots))
            .transpose()?;
        Ok(Arc::new(AppState { cfg, llm, embedder, jobs }))
    }
}

/// Serves until the listener fails or ctrl-c.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
