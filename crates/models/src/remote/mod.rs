//! The remote policy backend: any OpenAI-compatible `/v1/chat/completions` server (vLLM,
//! SGLang, llama.cpp's server, `kaizen serve`), with the same sampling options and log-probs as
//! the local runtime.

pub mod server_pool;

use kaizen_core::openai::{ChatCompletionRequest, ChatCompletionResponse, ErrorBody};
use kaizen_core::{ChatRequest, Completion, Policy, PolicyError};
use std::time::Duration;

/// A server endpoint and model: cheap to clone (the HTTP connection pool is shared).
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    model: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

/// An `Endpoint` plus a runtime for the blocking `Policy` face, whatever thread calls it.
pub struct OpenAiClient {
    endpoint: Endpoint,
    runtime: tokio::runtime::Runtime,
}

impl std::ops::Deref for OpenAiClient {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl OpenAiClient {
    /// `url` is the server root or its `/v1`; `model` the name the server knows the model by.
    /// The API key, if any, comes from `OPENAI_API_KEY`.
    pub fn new(url: &str, model: &str) -> Result<Self, PolicyError> {
        Self::with_timeout(url, model, Duration::from_secs(600))
    }

    pub fn with_timeout(url: &str, model: &str, timeout: Duration) -> Result<Self, PolicyError> {
        let trimmed = url.trim_end_matches('/');
        if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
            return Err(PolicyError::InvalidRequest(format!(
                "server URL must start with http:// or https://, got '{url}'"
            )));
        }
        let base = if trimmed.ends_with("/v1") { trimmed.to_string() } else { format!("{trimmed}/v1") };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PolicyError::Backend(format!("HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| PolicyError::Backend(format!("runtime: {e}")))?;
        let endpoint = Endpoint {
            base,
            model: model.to_string(),
            api_key: std::env::var("OPENAI_API_KEY").ok().filter(|k| !k.is_empty()),
            http,
        };
        Ok(OpenAiClient { endpoint, runtime })
    }
}

impl Endpoint {
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub async fn chat_completion(&self, req: &ChatCompletionRequest) -> Result<ChatCompletionResponse, PolicyError> {
        let url = format!("{}/chat/completions", self.base);
        let mut rb = self.http.post(&url).json(req);
        if let Some(k) = &self.api_key {
            rb = rb.bearer_auth(k);
        }
        let resp = rb.send().await.map_err(|e| PolicyError::Backend(format!("POST {url}: {}", describe(&e))))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| PolicyError::Backend(format!("reading {url}: {}", describe(&e))))?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
            let m = format!("{url} answered {status}: {msg}");
            return Err(match status.as_u16() {
                429 | 503 => PolicyError::Busy(m),
                _ if status.is_client_error() => PolicyError::InvalidRequest(m),
                _ => PolicyError::Backend(m),
            });
        }
        serde_json::from_slice(&body).map_err(|e| PolicyError::Backend(format!("{url}: malformed response JSON: {e}")))
    }

    /// Model ids the server lists at `/v1/models`.
    pub async fn list_models(&self) -> Result<Vec<String>, PolicyError> {
        let url = format!("{}/models", self.base);
        let v: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| PolicyError::Backend(format!("GET {url}: {}", describe(&e))))?
            .json()
            .await
            .map_err(|e| PolicyError::Backend(format!("GET {url}: {e}")))?;
        Ok(v["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(String::from)).collect())
            .unwrap_or_default())
    }

    /// `n` completions; servers that return fewer choices than asked (no `n` support) are
    /// topped up with single requests at the next seeds.
    pub async fn chat_async(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        req.params.validate().map_err(PolicyError::InvalidRequest)?;
        let wire = ChatCompletionRequest::from_parts(&self.model, &req.messages, &req.tools, &req.params);
        let resp = self.chat_completion(&wire).await?;
        let prompt_tokens = resp.usage.map(|u| u.prompt_tokens).unwrap_or(0);
        let mut out: Vec<Completion> = resp.choices.iter().map(|c| c.to_completion(prompt_tokens)).collect();
        let mut seed = req.params.seed;
        while out.len() < req.params.n {
            seed = seed.wrapping_add(1);
            let one = ChatCompletionRequest { n: Some(1), seed: Some(seed), ..wire.clone() };
            let r = self.chat_completion(&one).await?;
            match r.choices.first() {
                Some(c) => out.push(c.to_completion(prompt_tokens)),
                None => return Err(PolicyError::Backend("server returned no choices".into())),
            }
        }
        out.truncate(req.params.n);
        Ok(out)
    }
}

impl Policy for OpenAiClient {
    fn name(&self) -> &str {
        &self.model
    }

    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        // Spawn on our own runtime and wait on a plain channel: safe from async and sync callers.
        let (tx, rx) = std::sync::mpsc::channel();
        let req = req.clone();
        let endpoint = self.endpoint.clone();
        self.runtime.spawn(async move {
            let _ = tx.send(endpoint.chat_async(&req).await);
        });
        rx.recv().map_err(|_| PolicyError::Backend("request task ended without an answer".into()))?
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect ({e})")
    } else {
        e.to_string()
    }
}
