//! End-to-end tests of the local runtime on the real SmolLM2-135M-Instruct GGUF installed by
//! `scripts/setup.sh`.

use kaizen_core::{ChatRequest, FinishReason, Message, Policy, SamplingParams};
use kaizen_models::{LocalLlm, WeightFormat};
use std::sync::OnceLock;

fn llm() -> &'static LocalLlm {
    static LLM: OnceLock<LocalLlm> = OnceLock::new();
    LLM.get_or_init(|| LocalLlm::load_installed("smollm2", WeightFormat::Q8_0).expect("run scripts/setup.sh first"))
}

fn prompt(text: &str) -> Vec<u32> {
    llm().encode_chat(&[Message::user(text)], &[]).unwrap()
}

fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams { temperature: 0.0, max_tokens, ..Default::default() }
}

#[test]
fn greedy_answer_is_sensible_and_logprobs_are_consistent() {
    let p = prompt("What is the capital of France? Answer in one sentence.");
    let out = llm().generate(&p, &greedy(40), &mut |_| true).unwrap();
    let c = &out[0];
    println!("greedy: {:?}", c.text);
    assert!(c.text.contains("Paris"), "{:?}", c.text);
    assert_eq!(c.token_ids.len(), c.logprobs.len());
    assert!(c.logprobs.iter().all(|t| t.logprob <= 0.0 && t.logprob.is_finite()));
    if c.finish_reason == FinishReason::Stop {
        // The end-of-turn token is kept in the ids (RL must learn to emit it) but not in the text.
        assert_eq!(*c.token_ids.last().unwrap(), llm().tokenizer.eos_id);
        assert!(!c.text.contains("<|im_end|>"));
    }
}

#[test]
fn same_seed_same_tokens_and_different_seed_differs() {
    let p = prompt("Write a short poem about the sea.");
    let params = |seed| SamplingParams { temperature: 1.0, max_tokens: 24, seed, ..Default::default() };
    let a = llm().generate(&p, &params(11), &mut |_| true).unwrap();
    let b = llm().generate(&p, &params(11), &mut |_| true).unwrap();
    let c = llm().generate(&p, &params(12), &mut |_| true).unwrap();
    assert_eq!(a[0].token_ids, b[0].token_ids);
    assert_ne!(a[0].token_ids, c[0].token_ids);
}

#[test]
fn n_continuations_share_prefill_and_match_independent_runs() {
    let p = prompt("Name a fruit.");
    let params = SamplingParams { n: 4, temperature: 1.0, max_tokens: 16, seed: 5, ..Default::default() };
    let batch = llm().generate(&p, &params, &mut |_| true).unwrap();
    assert_eq!(batch.len(), 4);
    let distinct: std::collections::HashSet<_> = batch.iter().map(|c| c.token_ids.clone()).collect();
    assert!(distinct.len() >= 2, "4 samples at T=1 should not all agree");
    // Continuation 0 of the batch is the same draw as a single run with the same seed.
    let single = llm().generate(&p, &SamplingParams { n: 1, ..params.clone() }, &mut |_| true).unwrap();
    assert_eq!(batch[0].token_ids, single[0].token_ids);
    for (x, y) in batch[0].logprobs.iter().zip(&single[0].logprobs) {
        assert!((x.logprob - y.logprob).abs() < 1e-3);
    }
}

#[test]
fn teacher_forced_scores_match_sampled_logprobs() {
    for (temperature, seed) in [(0.0, 0), (1.0, 3), (0.7, 9)] {
        let p = prompt("Explain what a prime number is.");
        let params = SamplingParams { temperature, max_tokens: 48, seed, ..Default::default() };
        let c = &llm().generate(&p, &params, &mut |_| true).unwrap()[0];
        let scored = llm().score(&p, &c.token_ids, temperature).unwrap();
        assert_eq!(scored.len(), c.token_ids.len());
        let worst = c.logprobs.iter().zip(&scored).map(|(a, b)| (a.logprob - b).abs()).fold(0.0f32, f32::max);
        println!("T={temperature}: {} tokens, max |Δ logprob| = {worst:.2e}", scored.len());
        assert!(worst < 1e-3, "max |Δ| = {worst}");
    }
}

#[test]
fn one_pass_scoring_is_exact_on_f32_weights() {
    let f32_llm = LocalLlm::load_installed("smollm2", WeightFormat::F32).unwrap();
    let p = f32_llm.encode_chat(&[Message::user("Why is the sky blue?")], &[]).unwrap();
    let params = SamplingParams { temperature: 1.0, max_tokens: 24, seed: 4, ..Default::default() };
    let c = &f32_llm.generate(&p, &params, &mut |_| true).unwrap()[0];
    let scored = f32_llm.score_parallel(&p, &c.token_ids, 1.0).unwrap();
    let worst = c.logprobs.iter().zip(&scored).map(|(a, b)| (a.logprob - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "max |Δ| = {worst}");
}

#[test]
fn top_logprobs_are_sorted_and_contain_the_greedy_token() {
    let p = prompt("Say hello.");
    let params = SamplingParams { top_logprobs: 5, ..greedy(6) };
    let c = &llm().generate(&p, &params, &mut |_| true).unwrap()[0];
    for t in &c.logprobs {
        assert_eq!(t.top.len(), 5);
        assert!(t.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
        assert_eq!(Some(t.top[0].token_id), t.token_id, "greedy picks the most likely token");
    }
}

#[test]
fn stop_strings_end_generation_and_are_not_returned() {
    let p = prompt("Count from 1 to 20.");
    let free = &llm().generate(&p, &greedy(60), &mut |_| true).unwrap()[0];
    // Pick a stop string the free run really produces, then check it cuts there.
    let stop = "5.".to_string();
    assert!(free.text.contains(&stop), "{:?}", free.text);
    let params = SamplingParams { stop: vec![stop.clone()], ..greedy(60) };
    let cut = &llm().generate(&p, &params, &mut |_| true).unwrap()[0];
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    assert_eq!(cut.text, free.text[..free.text.find(&stop).unwrap()]);
    assert!(cut.token_ids.len() < free.token_ids.len());
}

#[test]
fn streaming_deltas_add_up_to_the_text() {
    let p = prompt("List three colours.");
    let mut streamed = String::new();
    let mut last_finish = None;
    let out = llm()
        .generate(&p, &greedy(30), &mut |e| {
            streamed.push_str(e.text_delta);
            last_finish = e.finish_reason;
            true
        })
        .unwrap();
    assert_eq!(streamed, out[0].text);
    assert_eq!(last_finish, Some(out[0].finish_reason));
}

#[test]
fn max_tokens_gives_length_finish() {
    let p = prompt("Tell me a long story about a dragon.");
    let c = &llm().generate(&p, &greedy(5), &mut |_| true).unwrap()[0];
    assert_eq!(c.token_ids.len(), 5);
    assert_eq!(c.finish_reason, FinishReason::Length);
}

#[test]
fn over_long_prompt_and_bad_ids_are_clear_errors() {
    let long = vec![28u32; llm().context_len() + 10];
    let err = llm().generate(&long, &greedy(4), &mut |_| true).unwrap_err().to_string();
    assert!(err.contains("context window"), "{err}");
    let err = llm().generate(&[1, 999_999], &greedy(4), &mut |_| true).unwrap_err().to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
    let err = llm().generate(&[], &greedy(4), &mut |_| true).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let bad = SamplingParams { top_p: 0.0, ..greedy(4) };
    let err = llm().generate(&[1, 2], &bad, &mut |_| true).unwrap_err().to_string();
    assert!(err.contains("top_p"), "{err}");
}

#[test]
fn policy_trait_runs_a_chat() {
    let req = ChatRequest {
        messages: vec![Message::user("What is 2 + 2?")],
        tools: vec![],
        params: SamplingParams { n: 2, temperature: 0.7, max_tokens: 20, seed: 1, ..Default::default() },
    };
    let out = llm().chat(&req).unwrap();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|c| !c.text.is_empty() && c.prompt_tokens > 10));
}

#[test]
fn continuous_batch_matches_single_runs_exactly_and_replays_multi_turn() {
    use kaizen_models::SequenceBatch;
    let prompts = [prompt("Name a fruit."), prompt("What is 12 times 7? Think step by step."), prompt("Say hi.")];
    assert!(prompts[0].len() != prompts[1].len(), "rows must sit at different positions");
    let params = |seed| SamplingParams { temperature: 0.8, max_tokens: 12, seed, ..Default::default() };
    let mut batch = SequenceBatch::new(llm(), 3, 256);
    let mut got: Vec<Option<kaizen_core::Completion>> = vec![None, None, None];
    for (slot, p) in prompts.iter().enumerate() {
        if let Some(c) = batch.start(slot, p, params(slot as u64), 0).unwrap() {
            got[slot] = Some(c);
        }
    }
    while batch.generating() > 0 {
        for (slot, c) in batch.step().unwrap() {
            got[slot] = Some(c);
        }
    }
    // Each row equals the same request run alone: same tokens, bit-identical log-probs.
    for (slot, p) in prompts.iter().enumerate() {
        let alone = &llm().generate(p, &params(slot as u64), &mut |_| true).unwrap()[0];
        let c = got[slot].as_ref().unwrap();
        assert_eq!(c.token_ids, alone.token_ids, "slot {slot}");
        let a: Vec<f32> = c.logprobs.iter().map(|t| t.logprob).collect();
        let b: Vec<f32> = alone.logprobs.iter().map(|t| t.logprob).collect();
        assert_eq!(a, b, "slot {slot}");
    }

    // A second turn in slot 1: its history plus an "observation", fed as one chunk while
    // slot 0 decodes beside it. Replaying the whole history reproduces every log-prob.
    let first = got[1].take().unwrap();
    let obs = llm().tokenizer.encode("<|im_start|>user\nNow add 5.<|im_end|>\n<|im_start|>assistant\n").unwrap();
    let mut history: Vec<u32> = prompts[1].iter().chain(&first.token_ids).chain(&obs).copied().collect();
    let mut mask: Vec<u8> = prompts[1].iter().map(|_| 0).chain(first.token_ids.iter().map(|_| 1)).collect();
    mask.extend(obs.iter().map(|_| 0));
    let mut logprobs: Vec<f32> = vec![0.0; prompts[1].len()];
    logprobs.extend(first.logprobs.iter().map(|t| t.logprob));
    logprobs.extend(obs.iter().map(|_| 0.0));
    batch.release(0);
    batch.start(0, &prompts[0], params(7), 0).unwrap();
    let mut second = batch.start(1, &history, params(8), 0).unwrap();
    while second.is_none() {
        second = batch.step().unwrap().into_iter().find(|(s, _)| *s == 1).map(|(_, c)| c);
    }
    let second = second.unwrap();
    history.extend(&second.token_ids);
    mask.extend(second.token_ids.iter().map(|_| 1));
    logprobs.extend(second.logprobs.iter().map(|t| t.logprob));
    let replay = llm().score_trajectory(&history, &mask, 0.8, 0, &[]).unwrap();
    assert_eq!(replay, logprobs);
    // A prompt that does not extend the slot's history is refused.
    assert!(batch.start(1, &prompts[2], params(1), 0).is_err());
}
