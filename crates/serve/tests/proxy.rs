//! The Best-of-Q proxy against upstreams that behave and misbehave: choices reranked by the
//! scorer, `n` refused, one choice only, malformed JSON, too slow, gone. The upstream here is
//! a small axum server with scripted answers, the scorer a fixed rule (prefers the candidate
//! that mentions "Paris"): what is under test is the proxy's handling, not the model.

use axum::routing::post;
use axum::{Json, Router};
use kaizen_q::state::ActionScorer;
use kaizen_serve::proxy::{proxy_router, ProxyConfig, ProxyState, DECISIONS};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

struct PrefersParis;
impl ActionScorer for PrefersParis {
    fn score(&self, state: &str, picture: Option<&str>, actions: &[(String, f32)]) -> Result<Vec<f32>, String> {
        if let Some(p) = picture {
            SCORED_PICTURES.lock().unwrap().push((state.to_string(), p.to_string()));
        }
        Ok(actions.iter().map(|(a, _)| a.contains("Paris") as u8 as f32).collect())
    }
}

/// The (state, picture) pairs the scorer was handed.
static SCORED_PICTURES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn choice(i: usize, text: &str) -> Value {
    json!({"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
           "logprobs": {"content": [{"token": "x", "logprob": -0.1 * (i as f64 + 1.0)}]}})
}

/// An upstream whose behaviour is chosen by the request's first user message.
async fn upstream(Json(req): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let content = &req["messages"][0]["content"];
    let mode = content.as_str().or(content[0]["text"].as_str()).unwrap_or("").to_string();
    let n = req["n"].as_u64().unwrap_or(1) as usize;
    let ok = |choices: Vec<Value>| {
        Json(json!({"id": "x", "object": "chat.completion", "model": "m", "choices": choices})).into_response()
    };
    match mode.as_str() {
        "normal" => ok((0..n).map(|i| choice(i, ["Lyon", "Paris", "Nice", "Metz"][i % 4])).collect()),
        "one" => ok(vec![choice(0, "Lyon")]),
        "no-n" if req.get("n").is_some() => {
            (axum::http::StatusCode::BAD_REQUEST, Json(json!({"error": {"message": "n is not supported"}})))
                .into_response()
        }
        "no-n" => ok(vec![choice(0, if rand_like(&req) { "Paris" } else { "Lyon" })]),
        "garbage" => (axum::http::StatusCode::OK, "{not json").into_response(),
        // Hostile or failing upstreams: an answer over the proxy's 1 MiB cap, a redirect, a rate
        // limit (counted: the proxy must not answer it with N more requests), choices without
        // a message.
        "huge" => ok(vec![choice(0, &"x".repeat(3 << 20))]),
        "redirect" => {
            (axum::http::StatusCode::TEMPORARY_REDIRECT, [("location", "http://127.0.0.1:9/v1/chat/completions")])
                .into_response()
        }
        "rate" => {
            RATE_LIMITED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (axum::http::StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": {"message": "slow down", "param": "n"}})))
                .into_response()
        }
        "no-message" => ok((0..n).map(|i| json!({"index": i, "finish_reason": "stop"})).collect()),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ok(vec![choice(0, "late")])
        }
        _ => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
    }
}

static RATE_LIMITED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Alternates answers across the parallel single requests.
fn rand_like(_req: &Value) -> bool {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 == 1
}

async fn listen(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    format!("http://{addr}")
}

/// The proxy as the tests run it: N = 4, an 800 ms upstream deadline, a 1 MiB body cap,
/// decisions logged in `dir`.
fn proxy_state(upstream: String, dir: &std::path::Path) -> Arc<ProxyState> {
    let cfg = ProxyConfig {
        upstream,
        candidates: 4,
        timeout: Duration::from_millis(800),
        log_dir: dir.to_path_buf(),
        max_body_bytes: 1 << 20,
    };
    ProxyState::new(cfg, Arc::new(PrefersParis)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_reranks_and_degrades_gracefully() {
    let up = listen(Router::new().route("/v1/chat/completions", post(upstream))).await;
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-proxy-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    let state = |upstream: String| proxy_state(upstream, &dir);
    let proxy = listen(proxy_router(state(format!("{up}/v1")))).await;
    let client = reqwest::Client::new();
    let ask = |mode: &str| {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": mode}]});
        client.post(format!("{proxy}/v1/chat/completions")).header("x-kaizen-episode", mode).json(&body).send()
    };
    // Four choices: the scorer's favourite comes back as the only choice, with the scores.
    let r = ask("normal").await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"].as_array().unwrap().len(), 1);
    assert_eq!(v["choices"][0]["message"]["content"], "Paris");
    assert_eq!((v["kaizen"]["chosen"].clone(), v["kaizen"]["candidates"].clone()), (json!(1), json!(4)));
    assert_eq!(v["kaizen"]["q_scores"], json!([0.0, 1.0, 0.0, 0.0]));
    // A chat with a picture (content parts): the scorer reads its text as the state and its
    // picture; the decision log keeps the chat it came in (`kaizen q train` reads it back).
    let picture = "data:image/png;base64,iVBORw0KGgo=";
    let parts = json!([{"type": "text", "text": "normal"}, {"type": "image_url", "image_url": {"url": picture}}]);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": parts}]});
    let r = client.post(format!("{proxy}/v1/chat/completions")).header("x-kaizen-episode", "pic").json(&body).send();
    assert_eq!(r.await.unwrap().status(), 200);
    assert_eq!(*SCORED_PICTURES.lock().unwrap(), vec![("normal".to_string(), picture.to_string())]);
    let log = std::fs::read_to_string(dir.join(DECISIONS)).unwrap();
    let d: Value =
        log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|d| d["episode_id"] == "pic").unwrap();
    assert_eq!((d["state"].as_str(), &d["messages"][0]["content"]), (Some("normal"), &parts));
    // One choice only: returned as it is, unscored.
    let v: Value = ask("one").await.unwrap().json().await.unwrap();
    assert_eq!(
        (v["choices"][0]["message"]["content"].clone(), v["kaizen"]["q_scores"].clone()),
        (json!("Lyon"), Value::Null)
    );
    // An upstream without `n`: four parallel single requests, still reranked.
    let v: Value = ask("no-n").await.unwrap().json().await.unwrap();
    assert_eq!(v["kaizen"]["candidates"], 4, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Paris");
    // Malformed JSON → 502, too slow → 504, a 500 → 502; each an OpenAI-style error.
    for (mode, status, code) in
        [("garbage", 502, "upstream_malformed"), ("slow", 504, "upstream_timeout"), ("crash", 502, "upstream_error")]
    {
        let t = std::time::Instant::now();
        let r = ask(mode).await.unwrap();
        assert_eq!(r.status(), status, "{mode}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{mode}: {e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{mode} took {:?}", t.elapsed());
    }
    // An answer over the cap, a redirect, choices without a message: 502s; a 429 is passed
    // back after exactly one upstream request.
    for (mode, status, code) in [
        ("huge", 502, "upstream_too_large"),
        ("redirect", 502, "upstream_error"),
        ("no-message", 502, "upstream_malformed"),
        ("rate", 429, "upstream_error"),
    ] {
        let r = ask(mode).await.unwrap();
        assert_eq!(r.status(), status, "{mode}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], code, "{mode}: {e}");
    }
    assert_eq!(RATE_LIMITED.load(std::sync::atomic::Ordering::SeqCst), 1, "a 429 was amplified");
    // A client body over the cap is a 413, a GET a 405, both in OpenAI's error shape.
    let big = json!({"messages": [{"role": "user", "content": "y".repeat(2 << 20)}]});
    let r = client.post(format!("{proxy}/v1/chat/completions")).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    // A fresh connection: the 413's was left with an unread body on it, which a pooled
    // connection's next request could run into.
    let r = reqwest::Client::new().get(format!("{proxy}/v1/chat/completions")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    // Upstream gone: 502 at once.
    let dead = listen(proxy_router(state("http://127.0.0.1:9/v1".into()))).await;
    let body = json!({"messages": [{"role": "user", "content": "normal"}]});
    let r = client.post(format!("{dead}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "upstream_unavailable");
    // Bad requests are 400s; feedback is recorded with the decisions.
    let r = client.post(format!("{proxy}/v1/chat/completions")).body("{").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(format!("{proxy}/v1/feedback"))
        .json(&json!({"episode_id": "normal", "reward": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client.post(format!("{proxy}/v1/feedback")).json(&json!({"episode_id": "normal"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let log = std::fs::read_to_string(dir.join(DECISIONS)).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "normal, pic, one, no-n decisions and one feedback (nothing of the failures):\n{log}");
    assert_eq!(lines[0]["episode_id"], "normal");
    assert_eq!(lines[0]["candidates"][1]["chosen"], true);
    assert_eq!(lines[4]["feedback"]["reward"], 1.0);
}

/// `--upstream URL1,URL2`: a pool. The first server is dead (nothing listens there): every
/// request is still answered, by the live one; a pool of dead servers is a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_upstreams_routes_around_a_dead_server() {
    let up = listen(Router::new().route("/v1/chat/completions", post(upstream))).await;
    // The discard port: nothing listens there (and no ephemeral port a test server gets).
    let dead = "http://127.0.0.1:9/v1".to_string();
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-proxy-pool-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    let state = |upstream: String| proxy_state(upstream, &dir);
    let client = reqwest::Client::new();
    let pool = listen(proxy_router(state(format!("{dead},{up}/v1")))).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "normal"}]});
    for _ in 0..3 {
        let r = client.post(format!("{pool}/v1/chat/completions")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Paris", "{v}");
    }
    let all_dead = listen(proxy_router(state(format!("{dead},{dead}")))).await;
    let r = client.post(format!("{all_dead}/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "upstream_unavailable", "{e}");
}
