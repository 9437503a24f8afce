//! The Best-of-Q proxy: an OpenAI-compatible `/v1/chat/completions` in front of any server.
//! Each request is sent upstream asking for N choices (`n`; N parallel requests when the
//! upstream refuses `n`), the candidates are scored by the Q-function, and the best comes back
//! as a normal response, with the scores in a `kaizen` extension field. Every decision (state,
//! candidates, scores, choice) is appended to `decisions.jsonl` under an episode id;
//! `POST /v1/feedback {episode_id, reward}` appends the outcome. That file is what
//! `kaizen q train` reads.
//!
//! Failure is never a hang: the upstream call has a deadline (504), an unreachable upstream is
//! a 502, malformed upstream JSON a 502; fewer choices than asked are reranked as they are,
//! and a single choice is returned unscored.

use crate::errors::ApiError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use kaizen_rollout::rerank::{best_index, state_parts, state_text, ActionScorer};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DECISIONS: &str = "decisions.jsonl";

pub struct ProxyConfig {
    /// The upstream's base URL, e.g. `http://127.0.0.1:8000/v1`.
    pub upstream: String,
    pub candidates: usize,
    pub timeout: Duration,
    /// Where `decisions.jsonl` is appended.
    pub log_dir: PathBuf,
}

pub struct ProxyState {
    cfg: ProxyConfig,
    client: reqwest::Client,
    scorer: Arc<dyn ActionScorer>,
    log: Mutex<std::fs::File>,
}

impl ProxyState {
    pub fn new(cfg: ProxyConfig, scorer: Arc<dyn ActionScorer>) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&cfg.log_dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(cfg.log_dir.join(DECISIONS))?;
        let client = reqwest::Client::builder().timeout(cfg.timeout).build()?;
        Ok(Arc::new(ProxyState { cfg, client, scorer, log: Mutex::new(log) }))
    }

    /// Appends one line and flushes it to disk, so a crash loses no decision.
    fn record(&self, line: &Value) -> std::io::Result<()> {
        let mut f = self.log.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(f, "{line}")?;
        f.flush()?;
        f.sync_data()
    }
}

pub fn proxy_router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/feedback", post(feedback))
        .fallback(|| async { ApiError::not_found("no such endpoint", "unknown_url") })
        .with_state(state)
}

/// The client's episode id (`X-Kaizen-Episode`), or a new one.
fn episode_id(headers: &HeaderMap) -> String {
    let given = headers.get("x-kaizen-episode").and_then(|v| v.to_str().ok()).map(str::to_string);
    given.unwrap_or_else(|| crate::handlers::next_id("ep"))
}

/// One upstream call; every failure becomes an OpenAI-style error.
async fn upstream(state: &ProxyState, body: &Value) -> Result<(StatusCode, Value), ApiError> {
    let url = format!("{}/chat/completions", state.cfg.upstream.trim_end_matches('/'));
    let resp = state.client.post(&url).json(body).send().await.map_err(|e| {
        if e.is_timeout() {
            ApiError::upstream(StatusCode::GATEWAY_TIMEOUT, format!("upstream timed out: {e}"), "upstream_timeout")
        } else {
            ApiError::upstream(StatusCode::BAD_GATEWAY, format!("upstream unreachable: {e}"), "upstream_unavailable")
        }
    })?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| {
        let code = if e.is_timeout() { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_GATEWAY };
        ApiError::upstream(code, format!("reading the upstream's answer: {e}"), "upstream_unavailable")
    })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        if status.is_success() {
            ApiError::upstream(
                StatusCode::BAD_GATEWAY,
                format!("upstream answered malformed JSON: {e}"),
                "upstream_malformed",
            )
        } else {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            ApiError::upstream(StatusCode::BAD_GATEWAY, format!("upstream answered {status}: {text}"), "upstream_error")
        }
    })?;
    Ok((StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY), v))
}

/// Each choice as a kaizen completion: its text with any structured tool calls written in the
/// Hermes form (what the Q-function was trained on), and its total log-prob.
fn candidates_of(choices: &[Value]) -> Result<Vec<(String, f32)>, ApiError> {
    choices
        .iter()
        .map(|c| {
            let choice: kaizen_core::openai::Choice = serde_json::from_value(c.clone()).map_err(|e| {
                ApiError::upstream(
                    StatusCode::BAD_GATEWAY,
                    format!("upstream choice is malformed: {e}"),
                    "upstream_malformed",
                )
            })?;
            let completion = choice.to_completion(0);
            let logprob = completion.total_logprob();
            Ok((completion.text, logprob))
        })
        .collect()
}

/// The state's text from the chat, as the runner builds it from an episode's messages.
fn state_of(messages: &Value) -> String {
    let msgs = messages.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let turns = msgs.iter().map(|m| (m["role"].as_str().unwrap_or(""), m["content"].as_str().unwrap_or("")));
    let (task, history) = state_parts(turns);
    state_text(&task, &history)
}

async fn chat(State(state): State<Arc<ProxyState>>, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    let mut req: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}"), None))?;
    if !req.is_object() || !req["messages"].is_array() {
        return Err(ApiError::invalid("'messages' must be an array", Some("messages")));
    }
    if req["stream"].as_bool() == Some(true) {
        return Err(ApiError::invalid(
            "the Best-of-Q proxy does not stream (it must see every candidate)",
            Some("stream"),
        ));
    }
    let n = state.cfg.candidates.max(1);
    req["n"] = json!(n);
    if req.get("logprobs").is_none() {
        req["logprobs"] = json!(true);
    }
    let (status, mut resp) = upstream(&state, &req).await?;
    // An upstream that refuses `n` (or log-probs): N parallel single requests instead.
    if status.is_client_error() {
        let mut single = req.clone();
        if let Some(o) = single.as_object_mut() {
            o.remove("n");
            o.remove("logprobs");
        }
        let calls = (0..n).map(|_| upstream(&state, &single));
        let answers = futures::future::join_all(calls).await;
        let mut choices = Vec::new();
        let mut first = None;
        for a in answers {
            match a {
                Ok((s, v)) if s.is_success() => {
                    choices.extend(v["choices"].as_array().cloned().unwrap_or_default());
                    first.get_or_insert(v);
                }
                Ok((s, v)) => return Err(pass_error(s, v)),
                Err(e) => return Err(e),
            }
        }
        resp = first.ok_or_else(|| ApiError::upstream(StatusCode::BAD_GATEWAY, "no answer", "upstream_unavailable"))?;
        resp["choices"] = Value::Array(choices);
    } else if !status.is_success() {
        return Err(pass_error(status, resp));
    }
    let choices = resp["choices"].as_array().cloned().unwrap_or_default();
    if choices.is_empty() {
        return Err(ApiError::upstream(StatusCode::BAD_GATEWAY, "upstream returned no choices", "upstream_malformed"));
    }
    let episode = episode_id(&headers);
    let stateful = state_of(&req["messages"]);
    let actions = candidates_of(&choices)?;
    // One choice: nothing to rank. Otherwise score off the event loop; a scorer failure
    // degrades to the likeliest candidate rather than failing the request.
    let scores = if choices.len() > 1 {
        let (scorer, s, a) = (state.scorer.clone(), stateful.clone(), actions.clone());
        tokio::task::spawn_blocking(move || scorer.score(&s, &a)).await.ok().and_then(Result::ok)
    } else {
        None
    };
    let logprobs: Vec<f32> = actions.iter().map(|a| a.1).collect();
    let chosen = match &scores {
        Some(s) if s.len() == choices.len() => best_index(s, &logprobs),
        _ => best_index(&logprobs, &logprobs),
    };
    let decision = json!({
        "episode_id": episode,
        "messages": req["messages"],
        "state": stateful,
        "candidates": actions.iter().enumerate().map(|(i, (text, lp))| json!({
            "text": text, "logprob": lp, "score": scores.as_ref().and_then(|s| s.get(i)), "chosen": i == chosen,
        })).collect::<Vec<_>>(),
    });
    state.record(&decision).map_err(|e| ApiError::internal(format!("writing {DECISIONS}: {e}")))?;
    let mut best = choices[chosen].clone();
    best["index"] = json!(0);
    resp["choices"] = json!([best]);
    resp["kaizen"] = json!({"episode_id": episode, "chosen": chosen, "candidates": choices.len(), "q_scores": scores});
    Ok(Json(resp))
}

/// An upstream error answer, passed on when it is OpenAI-shaped, else a 502.
fn pass_error(status: StatusCode, v: Value) -> ApiError {
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("upstream answered {status}: {v}"));
    let code = if status.is_server_error() { StatusCode::BAD_GATEWAY } else { status };
    ApiError::upstream(code, message, "upstream_error")
}

async fn feedback(State(state): State<Arc<ProxyState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}"), None))?;
    let episode = v["episode_id"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("'episode_id' must be a string", Some("episode_id")))?;
    let reward = v["reward"]
        .as_f64()
        .filter(|r| r.is_finite())
        .ok_or_else(|| ApiError::invalid("'reward' must be a number", Some("reward")))?;
    state
        .record(&json!({"feedback": {"episode_id": episode, "reward": reward}}))
        .map_err(|e| ApiError::internal(format!("writing {DECISIONS}: {e}")))?;
    Ok(Json(json!({"ok": true})))
}
