//! HTTP handlers: request parsing and validation, queueing, and the response shapes.

use crate::errors::ApiError;
use crate::worker::WorkerEvent;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::{self, StreamExt};
use kaizen_core::openai::{
    finish_reason_str, wire_logprob, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Choice,
    ChoiceLogprobs, ChunkChoice, Delta, EmbeddingData, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, Usage,
};
use kaizen_models::LlmError;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.cfg.max_body_bytes;
    Router::new()
        .route("/health", get(|| async { "ok" }).fallback(method_not_allowed))
        .route("/v1/models", get(models).fallback(method_not_allowed))
        .route("/v1/chat/completions", post(chat_completions).fallback(method_not_allowed))
        .route("/v1/embeddings", post(embeddings).fallback(method_not_allowed))
        .route("/kaizen/stats", get(stats).fallback(method_not_allowed))
        .fallback(|| async { ApiError::not_found("no such endpoint", "unknown_url") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

pub(crate) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::refused(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed here"))
}

/// The body, or the refusal in OpenAI's error shape (413 past `max_body_bytes`).
pub(crate) fn body_of(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::refused(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is over {limit} bytes"))
        }
        status => ApiError::refused(status, r.body_text()),
    })
}

/// KV-cache positions a request may come to hold: every choice keeps the prompt and up to
/// `max_tokens` more, no more than the context window has room for.
pub(crate) fn request_tokens(n: usize, prompt: usize, max_tokens: usize, context: usize) -> usize {
    n.saturating_mul(prompt + max_tokens.min(context.saturating_sub(prompt)))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) fn next_id(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{:x}{:04x}", now(), N.fetch_add(1, Ordering::Relaxed))
}

/// Parses a JSON body ourselves so that malformed JSON (or invalid UTF-8) is an OpenAI-style 400.
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}"), None))
}

async fn models(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut data = Vec::new();
    if st.llm.is_some() {
        data.push(serde_json::json!({"id": st.cfg.model_name, "object": "model", "created": 0, "owned_by": "kaizen"}));
    }
    if let Some(e) = &st.embedder {
        data.push(serde_json::json!({"id": e.id, "object": "model", "created": 0, "owned_by": "kaizen"}));
    }
    Json(serde_json::json!({"object": "list", "data": data}))
}

async fn chat_completions(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatCompletionRequest = parse(&body_of(body, st.cfg.max_body_bytes)?)?;
    let (Some(llm), Some(jobs)) = (&st.llm, &st.jobs) else {
        return Err(ApiError::not_found("this server has no chat model loaded", "model_not_found"));
    };
    if !req.model.is_empty() && req.model != st.cfg.model_name {
        return Err(ApiError::not_found(
            format!("model '{}' does not exist; this server serves '{}'", req.model, st.cfg.model_name),
            "model_not_found",
        ));
    }
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages must not be empty", Some("messages")));
    }
    let messages = req.kaizen_messages().map_err(|e| ApiError::invalid(e, Some("messages")))?;
    if let (None, Some(i)) = (llm.model.vision(), messages.iter().position(|m| !m.images.is_empty())) {
        return Err(ApiError::invalid(
            format!("messages[{i}] has an image; '{}' reads text only", st.cfg.model_name),
            Some("messages"),
        ));
    }
    let params = req.sampling_params(st.cfg.default_max_tokens);
    if let Err(e) = params.validate() {
        let param = e.split_whitespace().next().map(String::from);
        return Err(ApiError::invalid(e, param.as_deref()));
    }
    let prompt =
        llm.encode_chat(&messages, &req.tools).map_err(|e| ApiError::invalid(e.to_string(), Some("messages")))?;
    if prompt.len() >= llm.context_len() {
        return Err(ApiError::invalid(
            format!("the prompt is {} tokens; this model's context window is {}", prompt.len(), llm.context_len()),
            Some("messages"),
        )
        .with_code("context_length_exceeded"));
    }
    let need = request_tokens(params.n, prompt.len(), params.max_tokens, llm.context_len());
    if need > st.cfg.max_request_tokens {
        return Err(ApiError::invalid(
            format!(
                "n × (prompt + max_tokens) = {} × ({} + {}) = {need} tokens is over this server's \
                 per-request budget of {} (--max-request-tokens); lower n or max_tokens",
                params.n,
                prompt.len(),
                params.max_tokens.min(llm.context_len() - prompt.len()),
                st.cfg.max_request_tokens
            ),
            Some("max_tokens"),
        )
        .with_code("request_too_large"));
    }
    let stream = req.stream.unwrap_or(false);
    let with_logprobs = req.logprobs.unwrap_or(false);
    let n = params.n;
    let prompt_tokens = prompt.len();
    // The messages before the last user turn are the chat's opening (for an agent: the system
    // turn, tools and worked examples; its task is the last user turn, tool results come
    // back as tool turns), as a local episode splits its prompt: every turn of every episode
    // shares it.
    let shared = match messages.iter().rposition(|m| m.role == kaizen_core::Role::User) {
        Some(task) if task > 0 => llm.shared_prefix_len(&messages[..task], &req.tools, &prompt),
        _ => 0,
    };
    let pictures = kaizen_models::LocalLlm::vision_pictures(&messages);
    // A picture that does not decode is the client's error, said before the request queues.
    for (i, url) in pictures.iter().enumerate() {
        kaizen_core::image::decode_url(url)
            .map_err(|e| ApiError::invalid(format!("picture {i} of the request: {e}"), Some("messages")))?;
    }
    let mut rx = jobs.submit(prompt, shared, pictures, params, stream).ok_or_else(|| {
        ApiError::busy(format!("the server is busy ({} requests queued); retry later", st.cfg.queue_capacity))
    })?;
    let id = next_id("chatcmpl");
    let model = st.cfg.model_name.clone();

    if !stream {
        while let Some(ev) = rx.recv().await {
            if let WorkerEvent::Done(result) = ev {
                let completions = result.map_err(llm_error)?;
                let completion_tokens = completions.iter().map(|c| c.token_ids.len()).sum();
                let resp = ChatCompletionResponse {
                    id,
                    object: "chat.completion".into(),
                    created: now(),
                    model,
                    choices: completions
                        .iter()
                        .enumerate()
                        .map(|(i, c)| Choice::from_completion(i, c, with_logprobs))
                        .collect(),
                    usage: Some(Usage {
                        prompt_tokens,
                        completion_tokens,
                        total_tokens: prompt_tokens + completion_tokens,
                    }),
                };
                return Ok(Json(resp).into_response());
            }
        }
        return Err(ApiError::internal("the model worker stopped"));
    }

    // Streaming: a role chunk per choice, then content deltas, then finish, then [DONE].
    let created = now();
    let chunk = move |choices: Vec<ChunkChoice>| -> Event {
        let c = ChatCompletionChunk {
            id: id.clone(),
            object: "chat.completion.chunk".into(),
            created,
            model: model.clone(),
            choices,
        };
        Event::default().data(serde_json::to_string(&c).unwrap_or_default())
    };
    let opening: Vec<Event> = (0..n)
        .map(|i| {
            chunk(vec![ChunkChoice {
                index: i,
                delta: Delta { role: Some("assistant".into()), content: Some(String::new()) },
                logprobs: None,
                finish_reason: None,
            }])
        })
        .collect();
    let chunk_for_tokens = chunk.clone();
    let tokens = stream::poll_fn(move |cx| rx.poll_recv(cx)).filter_map(move |ev| {
        let out = match ev {
            WorkerEvent::Token { index, token, delta, finish } => Some(chunk_for_tokens(vec![ChunkChoice {
                index,
                delta: Delta { role: None, content: Some(delta) },
                logprobs: with_logprobs.then(|| ChoiceLogprobs { content: Some(vec![wire_logprob(&token)]) }),
                finish_reason: finish.map(|f| finish_reason_str(f).to_string()),
            }])),
            WorkerEvent::Done(Ok(_)) => None,
            WorkerEvent::Done(Err(e)) => Some(
                Event::default()
                    .data(serde_json::json!({"error": {"message": e.to_string(), "type": "server_error"}}).to_string()),
            ),
        };
        async move { out }
    });
    let done = stream::once(async { Event::default().data("[DONE]") });
    let all = stream::iter(opening).chain(tokens).chain(done).map(Ok::<_, Infallible>);
    Ok(Sse::new(all).keep_alive(KeepAlive::default()).into_response())
}

/// What the model worker has done: requests served, batched decode steps, the mean and peak
/// number of continuations per step, requests dropped because their client left.
async fn stats(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(jobs) = &st.jobs else { return Json(serde_json::json!({})) };
    let s = &jobs.stats;
    let (steps, rows) = (s.decode_steps.load(Relaxed), s.decoded_rows.load(Relaxed));
    Json(serde_json::json!({
        "requests": s.requests.load(Relaxed),
        "decode_steps": steps,
        "mean_batch": if steps == 0 { 0.0 } else { rows as f64 / steps as f64 },
        "decoded_rows": rows,
        "peak_batch": s.peak_batch.load(Relaxed),
        "cancelled": s.cancelled.load(Relaxed),
        "kv_positions_per_slot": s.kv_positions.load(Relaxed),
        "batch_slots": st.cfg.batch_slots,
    }))
}

fn llm_error(e: LlmError) -> ApiError {
    match e {
        LlmError::InvalidRequest(m) => ApiError::invalid(m, None),
        other => ApiError::internal(other.to_string()),
    }
}

async fn embeddings(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EmbeddingResponse>, ApiError> {
    let req: EmbeddingRequest = parse(&body_of(body, st.cfg.max_body_bytes)?)?;
    let Some(emb) = st.embedder.clone() else {
        return Err(ApiError::not_found("this server has no embedding model loaded", "model_not_found"));
    };
    if !req.model.is_empty() && req.model != emb.id {
        return Err(ApiError::not_found(
            format!("model '{}' does not exist; embeddings use '{}'", req.model, emb.id),
            "model_not_found",
        ));
    }
    let texts = match req.input {
        EmbeddingInput::One(s) => vec![s],
        EmbeddingInput::Many(v) => v,
    };
    if texts.is_empty() || texts.len() > 2048 {
        return Err(ApiError::invalid("input must hold 1 to 2048 strings", Some("input")));
    }
    let id = emb.id.clone();
    let (vectors, tokens) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens: usize = refs.iter().map(|t| emb.count_tokens(t)).sum();
        emb.embed(&refs, 32).map(|v| (v, tokens))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(EmbeddingResponse {
        object: "list".into(),
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(index, embedding)| EmbeddingData { object: "embedding".into(), index, embedding })
            .collect(),
        model: id,
        usage: Usage { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens },
    }))
}

#[cfg(test)]
mod tests {
    use super::request_tokens;

    #[test]
    fn the_request_budget_counts_every_choice_up_to_the_context() {
        // n = 16 choices of a 100-token prompt and 100,000 new tokens, in an 8,192 context:
        // each choice can hold at most the whole context, 16 × 8,192 = 131,072.
        assert_eq!(request_tokens(16, 100, 100_000, 8192), 131_072);
        // A small request: 4 × (30 + 20) = 200.
        assert_eq!(request_tokens(4, 30, 20, 8192), 200);
        assert_eq!(request_tokens(usize::MAX, 2, 2, 8192), usize::MAX);
    }
}
