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
//!
//! Nor is it amplified or unbounded: the upstream's answer is read up to `max_body_bytes`
//! (more is a 502, and nothing of it is logged), redirects are not followed (the request body
//! would go wherever the upstream points), an upstream error (a 429 or any 4xx) is passed back
//! as it is — the N single requests are sent only when the upstream refused the `n` or
//! `logprobs` parameter itself — and `candidates` is at most `MAX_CANDIDATES`. A choice
//! without a message is a 502, never a 200 with an empty answer.

use crate::errors::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use kaizen_q::state::{best_index, describe_action, full_state, state_text, wire_state, ActionScorer};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DECISIONS: &str = "decisions.jsonl";
/// The most choices the proxy asks one request for (each costs the upstream a generation).
pub const MAX_CANDIDATES: usize = 32;

pub struct ProxyConfig {
    /// The upstream's base URL, e.g. `http://127.0.0.1:8000/v1`; several, comma-separated, make
    /// a pool (least-busy first, a failing server out of rotation for a doubling back-off, a
    /// failed request retried on the next: `kaizen_models::remote::server_pool`'s rules).
    pub upstream: String,
    pub candidates: usize,
    pub timeout: Duration,
    /// Where `decisions.jsonl` is appended.
    pub log_dir: PathBuf,
    /// The largest body read from a client or from the upstream.
    pub max_body_bytes: usize,
}

/// One upstream server of the pool and what the pool knows of it.
struct Upstream {
    url: String,
    outstanding: std::sync::atomic::AtomicUsize,
    health: Mutex<kaizen_models::remote::server_pool::Health>,
}

pub struct ProxyState {
    cfg: ProxyConfig,
    upstreams: Vec<Upstream>,
    client: reqwest::Client,
    scorer: Arc<dyn ActionScorer>,
    log: Mutex<std::fs::File>,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyStartError {
    #[error("candidates must be in 1..={MAX_CANDIDATES}, got {0}")]
    Candidates(usize),
    #[error("--upstream names no server")]
    NoUpstream,
    #[error("the decision log {path}: {source}")]
    Log { path: std::path::PathBuf, source: std::io::Error },
    #[error("the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl ProxyState {
    pub fn new(cfg: ProxyConfig, scorer: Arc<dyn ActionScorer>) -> Result<Arc<Self>, ProxyStartError> {
        if !(1..=MAX_CANDIDATES).contains(&cfg.candidates) {
            return Err(ProxyStartError::Candidates(cfg.candidates));
        }
        let path = cfg.log_dir.join(DECISIONS);
        let log = std::fs::create_dir_all(&cfg.log_dir)
            .and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(&path))
            .map_err(|source| ProxyStartError::Log { path, source })?;
        let client =
            reqwest::Client::builder().timeout(cfg.timeout).redirect(reqwest::redirect::Policy::none()).build()?;
        let upstreams: Vec<Upstream> = cfg
            .upstream
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| Upstream {
                url: u.trim_end_matches('/').to_string(),
                outstanding: Default::default(),
                health: Mutex::new(Default::default()),
            })
            .collect();
        if upstreams.is_empty() {
            return Err(ProxyStartError::NoUpstream);
        }
        Ok(Arc::new(ProxyState { cfg, upstreams, client, scorer, log: Mutex::new(log) }))
    }

    /// Appends one line and flushes it to disk, so a crash loses no decision. The write and
    /// fsync run on the blocking pool, never on the event loop.
    async fn record(self: &Arc<Self>, line: Value) -> Result<(), ApiError> {
        let state = self.clone();
        let write = move || -> std::io::Result<()> {
            let mut f = state.log.lock().unwrap_or_else(|p| p.into_inner());
            writeln!(f, "{line}")?;
            f.flush()?;
            f.sync_data()
        };
        match tokio::task::spawn_blocking(write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ApiError::internal(format!("writing {DECISIONS}: {e}"))),
            Err(e) => Err(ApiError::internal(format!("writing {DECISIONS}: {e}"))),
        }
    }
}

pub fn proxy_router(state: Arc<ProxyState>) -> Router {
    let limit = state.cfg.max_body_bytes;
    Router::new()
        .route("/health", get(|| async { "ok" }).fallback(crate::handlers::method_not_allowed))
        .route("/v1/chat/completions", post(chat).fallback(crate::handlers::method_not_allowed))
        .route("/v1/feedback", post(feedback).fallback(crate::handlers::method_not_allowed))
        .fallback(|| async { ApiError::not_found("no such endpoint", "unknown_url") })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The client's episode id (`X-Kaizen-Episode`), or a new one.
fn episode_id(headers: &HeaderMap) -> String {
    let given = headers.get("x-kaizen-episode").and_then(|v| v.to_str().ok()).map(str::to_string);
    given.unwrap_or_else(|| crate::handlers::next_id("ep"))
}

/// One upstream call through the pool: the servers in `try_order`, the next one tried when a
/// server cannot be reached, times out or answers 5xx (that server then out of rotation for
/// `backoff` of its consecutive failures), or is busy (429, 503: it stays in rotation). Any
/// other 4xx, or a fault in the answer itself, comes back at once; when every server failed,
/// the last failure does.
async fn upstream(state: &ProxyState, body: &Value) -> Result<(StatusCode, Value), ApiError> {
    use kaizen_models::remote::server_pool::{try_order, MemberState};
    use std::sync::atomic::Ordering;
    let now = std::time::Instant::now();
    let states: Vec<MemberState> = state
        .upstreams
        .iter()
        .map(|u| MemberState {
            outstanding: u.outstanding.load(Ordering::Relaxed),
            down: u.health.lock().map(|h| h.is_down(now)).unwrap_or(false),
        })
        .collect();
    let mut last = None;
    for i in try_order(&states) {
        let u = &state.upstreams[i];
        u.health.lock().unwrap_or_else(|p| p.into_inner()).claim_probe(std::time::Instant::now());
        let got = {
            // Dropped however the call ends, a client gone mid-request included.
            let _busy = kaizen_models::remote::server_pool::Outstanding::enter(&u.outstanding);
            upstream_once(state, &u.url, body).await
        };
        // The server is down when it cannot be reached, times out or answers 5xx; loaded (429,
        // 503) it stays in rotation and the next is tried; a fault in this one answer (too
        // large, malformed, a redirect) or another 4xx is the answer.
        let (down, next) = match &got {
            Ok((status, _)) if matches!(status.as_u16(), 429 | 503) => (false, true),
            Ok((status, _)) => (status.is_server_error(), status.is_server_error()),
            Err(e) => {
                let gone = matches!(e.code, Some("upstream_unavailable" | "upstream_timeout"));
                (gone, gone)
            }
        };
        let mut health = u.health.lock().unwrap_or_else(|p| p.into_inner());
        if !next {
            if got.is_ok() {
                health.record_success();
            }
            return got;
        }
        if down {
            health.record_failure(std::time::Instant::now());
        }
        last = Some(got);
    }
    last.unwrap_or_else(|| Err(ApiError::internal("no upstream to ask")))
}

/// One call to one upstream server; every failure becomes an OpenAI-style error.
async fn upstream_once(state: &ProxyState, base: &str, body: &Value) -> Result<(StatusCode, Value), ApiError> {
    let url = format!("{base}/chat/completions");
    let resp = state.client.post(&url).json(body).send().await.map_err(|e| {
        if e.is_timeout() {
            ApiError::upstream(StatusCode::GATEWAY_TIMEOUT, format!("upstream timed out: {e}"), "upstream_timeout")
        } else {
            ApiError::upstream(StatusCode::BAD_GATEWAY, format!("upstream unreachable: {e}"), "upstream_unavailable")
        }
    })?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            format!("upstream answered {status} (a redirect, not followed)"),
            "upstream_error",
        ));
    }
    let bytes = read_capped(resp, state.cfg.max_body_bytes).await?;
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

/// The upstream's body, refused (502) past `cap` bytes before more than `cap` is held.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, ApiError> {
    let too_big = || {
        ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            format!("the upstream's answer is over {cap} bytes"),
            "upstream_too_large",
        )
    };
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() > cap => return Err(too_big()),
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return Ok(bytes),
            Err(e) => {
                let code = if e.is_timeout() { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_GATEWAY };
                return Err(ApiError::upstream(
                    code,
                    format!("reading the upstream's answer: {e}"),
                    "upstream_unavailable",
                ));
            }
        }
    }
}

/// Whether an upstream's 4xx refused the `n` or `logprobs` parameter itself (then N single
/// requests are worth sending); any other refusal is passed back as it is.
fn refused_n(status: StatusCode, v: &Value) -> bool {
    if !(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY) {
        return false;
    }
    let message = v["error"]["message"].as_str().unwrap_or("").to_ascii_lowercase();
    let names = |p: &str| message.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|w| w == p);
    // The parameter an error names decides; only an error naming none is read for the words.
    match v["error"]["param"].as_str() {
        Some(param) => matches!(param, "n" | "logprobs"),
        None => names("n") || names("logprobs"),
    }
}

/// Each choice as a kaizen completion: its text with any structured tool calls written in the
/// Hermes form (what the Q-function was trained on), and its total log-prob.
fn candidates_of(choices: &[Value]) -> Result<Vec<(String, f32)>, ApiError> {
    choices
        .iter()
        .map(|c| {
            if !c["message"].is_object() {
                return Err(ApiError::upstream(
                    StatusCode::BAD_GATEWAY,
                    "an upstream choice has no message",
                    "upstream_malformed",
                ));
            }
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

/// The state's text from the chat, as the runner builds it from an episode's messages, the
/// uncut state actions are described against, and the state's latest picture
/// (`kaizen_q::state::wire_state`, which `kaizen q train` also reads the logged chat with).
fn state_of(messages: &Value) -> (String, String, Option<String>) {
    let (task, history, picture) = wire_state(messages);
    (state_text(&task, &history), full_state(&task, &history), picture)
}

async fn chat(
    State(state): State<Arc<ProxyState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = crate::handlers::body_of(body, state.cfg.max_body_bytes)?;
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
    if refused_n(status, &resp) {
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
    let (stateful, full, picture) = state_of(&req["messages"]);
    // Scored as the runner scores: each action described against the uncut state.
    let raw = candidates_of(&choices)?;
    let actions: Vec<(String, f32)> = raw.iter().map(|(text, lp)| (describe_action(&full, text), *lp)).collect();
    // One choice: nothing to rank. Otherwise score off the event loop; a scorer failure
    // degrades to the likeliest candidate rather than failing the request.
    let scores = if choices.len() > 1 {
        let (scorer, s, p, a) = (state.scorer.clone(), stateful.clone(), picture.clone(), actions.clone());
        tokio::task::spawn_blocking(move || scorer.score(&s, p.as_deref(), &a)).await.ok().and_then(Result::ok)
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
        "candidates": actions.iter().zip(&raw).enumerate().map(|(i, ((action, lp), (text, _)))| json!({
            "text": text, "action": action, "logprob": lp, "score": scores.as_ref().and_then(|s| s.get(i)),
            "chosen": i == chosen,
        })).collect::<Vec<_>>(),
    });
    state.record(decision).await?;
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

async fn feedback(
    State(state): State<Arc<ProxyState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = crate::handlers::body_of(body, state.cfg.max_body_bytes)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}"), None))?;
    let episode = v["episode_id"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("'episode_id' must be a string", Some("episode_id")))?;
    let reward = v["reward"]
        .as_f64()
        .filter(|r| r.is_finite())
        .ok_or_else(|| ApiError::invalid("'reward' must be a number", Some("reward")))?;
    state.record(json!({"feedback": {"episode_id": episode, "reward": reward}})).await?;
    Ok(Json(json!({"ok": true})))
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
