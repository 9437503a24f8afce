//! `kaizen serve` end to end on loopback with the real SmolLM2 and MiniLM: the HTTP API, its
//! errors, streaming, concurrency, and kaizen's own OpenAI client as the peer.

use kaizen_core::{ChatRequest, Message, Policy, SamplingParams};
use kaizen_models::{Embedder, LocalLlm, OpenAiClient, WeightFormat};
use kaizen_serve::{AppState, ServerConfig};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn llm() -> Arc<LocalLlm> {
    static L: OnceLock<Arc<LocalLlm>> = OnceLock::new();
    L.get_or_init(|| Arc::new(LocalLlm::load_installed("smollm2", WeightFormat::Q8_0).expect("run scripts/setup.sh")))
        .clone()
}

/// Starts a server on its own thread and runtime (outliving each test's runtime); returns its URL.
fn start(cfg: ServerConfig) -> String {
    let embedder = Some(Arc::new(Embedder::load_installed().expect("run scripts/setup.sh")));
    let state = AppState::new(cfg, Some(llm()), embedder).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
            kaizen_serve::serve(listener, state).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn server() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| start(ServerConfig::default()))
}

async fn post(url: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn chat_body(extra: Value) -> String {
    let mut b = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 12, "temperature": 0});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

#[tokio::test]
async fn models_lists_chat_and_embedding_models() {
    let v: Value = reqwest::get(format!("{}/v1/models", server())).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["smollm2", "all-minilm-l6-v2"]);
}

#[tokio::test]
async fn chat_completion_with_n_seed_and_logprobs() {
    let body = chat_body(json!({"n": 3, "temperature": 1.0, "seed": 7, "logprobs": true, "top_logprobs": 2}));
    let (status, v) = post(&format!("{}/v1/chat/completions", server()), &body).await;
    assert_eq!(status, 200, "{v}");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for c in choices {
        let lps = c["logprobs"]["content"].as_array().unwrap();
        assert!(!lps.is_empty());
        assert_eq!(lps[0]["top_logprobs"].as_array().unwrap().len(), 2);
        assert!(lps.iter().all(|t| t["logprob"].as_f64().unwrap() <= 0.0));
        assert_eq!(c["token_ids"].as_array().unwrap().len(), lps.len());
    }
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    // Same seed, same answer.
    let (_, again) = post(&format!("{}/v1/chat/completions", server()), &body).await;
    assert_eq!(v["choices"], again["choices"]);
}

#[tokio::test]
async fn streaming_deltas_add_up_to_the_non_streamed_text() {
    let url = format!("{}/v1/chat/completions", server());
    let (_, full) = post(&url, &chat_body(json!({}))).await;
    let text = full["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let sse = reqwest::Client::new().post(&url).body(chat_body(json!({"stream": true}))).send().await.unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let body = sse.text().await.unwrap();
    let mut streamed = String::new();
    let mut finish = None;
    let mut done = false;
    for line in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(line).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        let c = &chunk["choices"][0];
        streamed.push_str(c["delta"]["content"].as_str().unwrap_or(""));
        if let Some(f) = c["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert!(done);
    assert_eq!(streamed, text);
    assert_eq!(finish.as_deref(), full["choices"][0]["finish_reason"].as_str());
}

#[tokio::test]
async fn bad_requests_get_openai_style_errors() {
    let url = format!("{}/v1/chat/completions", server());
    let cases: Vec<(String, u16, Option<&str>)> = vec![
        ("{not json".into(), 400, None),
        (chat_body(json!({"model": "gpt-17"})), 404, None),
        (chat_body(json!({"temperature": -1})), 400, Some("temperature")),
        (chat_body(json!({"top_p": 0})), 400, Some("top_p")),
        (chat_body(json!({"n": 0})), 400, Some("n")),
        (chat_body(json!({"max_tokens": 0})), 400, Some("max_tokens")),
        // 16 choices of up to the whole context each: over the per-request token budget.
        (chat_body(json!({"n": 16, "max_tokens": 100000})), 400, Some("max_tokens")),
        (json!({"messages": []}).to_string(), 400, Some("messages")),
        (json!({"messages": [{"role": "robot", "content": "x"}]}).to_string(), 400, Some("messages")),
        (json!({"messages": [{"role": "user", "content": "word ".repeat(9000)}]}).to_string(), 400, Some("messages")),
    ];
    for (body, want, param) in cases {
        let (status, v) = post(&url, &body).await;
        assert_eq!(status, want, "{body:.80}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["error"]["type"].is_string());
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{v}");
        }
    }
    // Invalid UTF-8 in the body is a 400, not a crash.
    let r = reqwest::Client::new().post(&url).body(vec![b'{', 0xff, 0xfe, b'}']).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Over-long prompts say so.
    let (_, v) =
        post(&url, &json!({"messages": [{"role": "user", "content": "word ".repeat(9000)}]}).to_string()).await;
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let (status, _) = post(&format!("{}/v1/nope", server()), "{}").await;
    assert_eq!(status, 404);
    // The budget error names the limit; a request under it still runs.
    let (_, v) = post(&url, &chat_body(json!({"n": 16, "max_tokens": 100000}))).await;
    assert_eq!(v["error"]["code"], "request_too_large", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("--max-request-tokens"), "{v}");
    let (status, v) = post(&url, &chat_body(json!({"n": 2, "max_tokens": 2}))).await;
    assert_eq!((status, v["choices"].as_array().map(Vec::len)), (200, Some(2)), "{v}");
    // A body over the limit is a 413 and a wrong method a 405, both in OpenAI's error shape.
    let big = json!({"messages": [{"role": "user", "content": "y".repeat(17 << 20)}]}).to_string();
    let (status, v) = post(&url, &big).await;
    assert_eq!(status, 413);
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("bytes")), "{v}");
    let r = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn embeddings_match_the_library() {
    let (status, v) = post(
        &format!("{}/v1/embeddings", server()),
        &json!({"model": "all-minilm-l6-v2", "input": ["The weather is lovely today.", "It's so sunny outside!"]})
            .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let a: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    let b: Vec<f32> = serde_json::from_value(v["data"][1]["embedding"].clone()).unwrap();
    assert_eq!(a.len(), 384);
    assert!((kaizen_models::cosine(&a, &b) - 0.6660).abs() < 5e-4);
    let (status, _) = post(&format!("{}/v1/embeddings", server()), &json!({"input": []}).to_string()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn concurrent_requests_all_succeed_and_the_event_loop_stays_responsive() {
    let url = format!("{}/v1/chat/completions", server());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            post(&url, &chat_body(json!({"seed": i, "temperature": 0.8, "max_tokens": 24}))).await
        }));
    }
    // While generation runs, cheap endpoints answer at once: the model works off the event loop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let health = reqwest::get(format!("{}/health", server())).await.unwrap().text().await.unwrap();
    let waited = t.elapsed();
    assert_eq!(health, "ok");
    assert!(waited < Duration::from_millis(500), "/health took {waited:?} while the model was busy");
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
    }
}

#[tokio::test]
async fn a_full_queue_answers_503_at_once() {
    // One batch slot: one request decodes, one waits for the slot, one sits in the queue.
    let url = format!(
        "{}/v1/chat/completions",
        start(ServerConfig { queue_capacity: 1, batch_slots: 1, ..Default::default() })
    );
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        tasks.push(tokio::spawn(
            async move { post(&url, &chat_body(json!({"max_tokens": 64, "temperature": 1.0}))).await },
        ));
    }
    let mut codes = Vec::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        if status == 503 {
            assert_eq!(v["error"]["code"], "overloaded");
        }
        codes.push(status);
    }
    assert!(codes.contains(&200) && codes.contains(&503), "{codes:?}");
}

#[test]
fn kaizen_client_against_kaizen_serve_matches_local_sampling() {
    let client = OpenAiClient::new(server(), "smollm2").unwrap();
    let messages = vec![Message::user("Name a fruit.")];
    let params =
        SamplingParams { n: 3, temperature: 1.0, max_tokens: 16, seed: 21, top_logprobs: 1, ..Default::default() };
    let remote =
        client.chat(&ChatRequest { messages: messages.clone(), tools: vec![], params: params.clone() }).unwrap();
    let local = llm().chat(&ChatRequest { messages, tools: vec![], params }).unwrap();
    assert_eq!(remote.len(), 3);
    for (r, l) in remote.iter().zip(&local) {
        assert_eq!(r.text, l.text);
        assert_eq!(r.token_ids, l.token_ids);
        for (a, b) in r.logprobs.iter().zip(&l.logprobs) {
            assert!((a.logprob - b.logprob).abs() < 1e-6);
        }
    }
    // Errors come back as errors, not panics.
    let bad = SamplingParams { temperature: 50.0, ..Default::default() };
    assert!(client.chat(&ChatRequest { messages: vec![Message::user("x")], tools: vec![], params: bad }).is_err());
    let down = OpenAiClient::with_timeout("http://127.0.0.1:9", "m", Duration::from_secs(2)).unwrap();
    let err =
        down.chat(&ChatRequest { messages: vec![Message::user("x")], ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
}

async fn stats(base: &str) -> Value {
    reqwest::get(format!("{base}/kaizen/stats")).await.unwrap().json().await.unwrap()
}

/// Requests sent together decode in one batch (the worker's step count says so), and each
/// answer is the one the same request gets alone: token for token, log-prob for log-prob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_decode_together_and_answer_as_they_would_alone() {
    let base = start(ServerConfig::default());
    let url = format!("{base}/v1/chat/completions");
    // Distinct prompts and seeds; one asks for two continuations; none can stop early.
    let body = |i: usize| {
        let n = if i == 3 { 2 } else { 1 };
        let content = format!("Write a long story about {}.", ["a cat", "the sea", "a robot", "winter"][i]);
        json!({"model": "smollm2", "messages": [{"role": "user", "content": content}], "max_tokens": 24,
               "temperature": 1.0, "seed": 100 + i, "n": n, "logprobs": true})
        .to_string()
    };
    let mut alone = Vec::new();
    for i in 0..4 {
        let (status, v) = post(&url, &body(i)).await;
        assert_eq!(status, 200, "{v}");
        alone.push(v);
    }
    let before = stats(&base).await;
    assert!(before["peak_batch"].as_u64().unwrap() <= 2, "alone, at most one request's continuations: {before}");
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (url, b) = (url.clone(), body(i));
            tokio::spawn(async move { post(&url, &b).await })
        })
        .collect();
    let mut together = Vec::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        together.push(v);
    }
    let after = stats(&base).await;
    let steps = after["decode_steps"].as_u64().unwrap() - before["decode_steps"].as_u64().unwrap();
    let rows = after["decoded_rows"].as_u64().unwrap() - before["decoded_rows"].as_u64().unwrap();
    // Each continuation of L tokens took L − 1 decode steps (its first token comes from the
    // prefill): one after another that many steps, batched far fewer, several rows a step.
    let decoded: u64 = together
        .iter()
        .flat_map(|v| v["choices"].as_array().unwrap().iter())
        .map(|c| c["token_ids"].as_array().unwrap().len() as u64 - 1)
        .sum();
    assert!(decoded > 40, "the answers are long enough to batch: {decoded}");
    assert_eq!(rows, decoded, "{after}");
    assert!(steps * 3 < rows * 2 && after["peak_batch"].as_u64().unwrap() >= 3, "{steps} steps: {after}");
    for (a, b) in alone.iter().zip(&together) {
        for (ca, cb) in a["choices"].as_array().unwrap().iter().zip(b["choices"].as_array().unwrap()) {
            assert_eq!(ca["message"]["content"], cb["message"]["content"]);
            assert_eq!(ca["token_ids"], cb["token_ids"]);
            assert_eq!(ca["logprobs"], cb["logprobs"], "log-probs differ under load");
        }
    }
}

/// A long prompt grows every slot's KV row; once the server is idle the rows are small again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_gives_back_what_a_long_prompt_grew() {
    let base = start(ServerConfig { batch_slots: 2, ..Default::default() });
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(150);
    let body =
        json!({"model": "smollm2", "messages": [{"role": "user", "content": long}], "max_tokens": 2}).to_string();
    let (status, v) = post(&format!("{base}/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 1100, "{}", v["usage"]);
    let mut s = stats(&base).await;
    for _ in 0..40 {
        if s["kv_positions_per_slot"].as_u64().unwrap() <= 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = stats(&base).await;
    }
    assert!(s["kv_positions_per_slot"].as_u64().unwrap() <= 1024, "{s}");
    assert_eq!(s["requests"], 1, "{s}");
}

/// A client that leaves mid-answer frees its slot: the worker drops its request and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_frees_its_batch_slot() {
    let base = start(ServerConfig { batch_slots: 1, ..Default::default() });
    let url = format!("{base}/v1/chat/completions");
    let long = chat_body(json!({"max_tokens": 2000, "temperature": 1.0, "seed": 1, "stream": true}));
    let mut r =
        reqwest::Client::new().post(&url).header("content-type", "application/json").body(long).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.chunk().await.unwrap().is_some(), "the stream started");
    drop(r);
    // With the only slot freed, a short request is answered long before 2,000 tokens could be.
    let t = Instant::now();
    let (status, v) = post(&url, &chat_body(json!({"max_tokens": 4}))).await;
    assert_eq!(status, 200, "{v}");
    assert!(t.elapsed() < Duration::from_secs(20), "waited {:?}", t.elapsed());
    let s = stats(&base).await;
    assert_eq!(s["cancelled"], 1, "{s}");
}
