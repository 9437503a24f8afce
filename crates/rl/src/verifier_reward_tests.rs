//! Unit tests of `verifier_reward`: repair records and their counts, and a repair round.

use super::*;

fn with(reward: f32, repairs: serde_json::Value, judged: bool) -> Trajectory {
    let verdict = judged.then(|| serde_json::json!({"score": 0.0, "confidence": 1.0, "parsed": false}));
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "arith", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "p", "answer": "7", "checker": {"kind": "numeric"}},
        "turns": [{"text": "t", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 1,
                   "verdict": verdict}],
        "token_ids": [], "loss_mask": [], "logprobs": [], "prompt_tokens": 0, "final_answer": "7",
        "reward": reward, "end": {"kind": "answered"}, "reward_detail": {"repairs": repairs},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap()
}

#[test]
fn repairs_are_counted_by_what_they_did_to_the_outcome() {
    let r = |before: f32, after: Option<f32>, patch: Option<&str>| serde_json::json!({"step": 1, "patch": patch, "gate": 0.6, "before": before, "after": after});
    let rollouts = [
        // wrong → right, and a later repair of the same episode right → wrong.
        with(0.0, serde_json::json!([r(0.0, Some(1.0), Some("a")), r(1.0, Some(0.0), Some("b"))]), true),
        // wrong → wrong; a declined one ("no change") is not a repair.
        with(0.0, serde_json::json!([r(0.0, Some(0.0), Some("c")), r(0.0, None, None)]), true),
        with(1.0, serde_json::json!([]), true),
    ];
    assert_eq!(repair_counts(&rollouts), Some((3, 1, 1)));
    assert_eq!(declined_repairs(&rollouts), 1);
    assert_eq!(repairs_of(&rollouts[1]).len(), 2);
    // A run that does not verify reports none.
    assert_eq!(repair_counts(&[with(0.0, serde_json::json!([]), false)]), None);
}

/// An untrained tiny byte-level policy seeded `seed`, loaded from its GGUF file (kept in the
/// returned folder while the test runs).
fn tiny_policy(seed: u64) -> (tempfile::TempDir, kaizen_models::LocalLlm) {
    use kaizen_models::trainable::{LmConfig, TrainableLm};
    let dir = tempfile::Builder::new().prefix("kaizen-verifier-").tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let m = TrainableLm::new(LmConfig::bytes(1, 16, 2, 1024), &candle_core::Device::Cpu, seed).unwrap();
    m.write_gguf(&path, candle_core::quantized::GgmlDType::F32).unwrap();
    let llm = kaizen_models::LocalLlm::load(&path, kaizen_models::WeightFormat::F32).unwrap();
    (dir, llm)
}

/// Episodes of one sampled turn of at most 8 tokens, no examples, no tool schemas.
fn one_short_turn() -> kaizen_rollout::EpisodeConfig {
    let args = kaizen_rollout::EpisodeArgs {
        max_turns: 1,
        max_tokens_per_turn: 8,
        max_episode_tokens: None,
        temperature: 1.0,
    };
    args.config(Vec::new(), false, false)
}

/// "Is i even?", answered "yes".
fn task(i: u32) -> kaizen_core::Task {
    kaizen_core::Task {
        id: format!("t{i}"),
        prompt: format!("Is {i} even?"),
        answer: "yes".into(),
        checker: kaizen_core::Checker::Exact,
        meta: serde_json::Value::Null,
        images: vec![],
    }
}

/// A real repair round on a tiny untrained policy: the rollout whose first step got an unsure
/// verdict is re-derived from that step — its prompt kept token for token, the correction
/// shown (loss mask 0) before the new step, the repair recorded with its gate and both
/// outcomes — and the rollout whose verdict was unreadable is left exactly as it was.
#[test]
fn an_unsure_step_is_repaired_and_an_unreadable_one_is_left_alone() {
    use kaizen_rollout::episode::Job;
    let (_dir, llm) = tiny_policy(3);
    let env = kaizen_envs::JsonlEnv::from_tasks("even", vec![task(2), task(4)]);
    let tools = kaizen_tools::ToolRegistry::standard();
    let cfg = one_short_turn();
    let jobs = vec![Job::new(task(2), 1, "a"), Job::new(task(4), 2, "b")];
    let mut rollouts = Runner::new(Agent::Local(&llm), &env, &tools, 2).run_in_order(jobs, &cfg);
    let unsure = Verdict { score: -1.0, confidence: 0.3, critique: "odd?".into(), parsed: true, repair_gate: None };
    rollouts[0].turns[0].verdict = Some(unsure);
    rollouts[1].turns[0].verdict = Some(Verdict::NEUTRAL);
    let before = rollouts.clone();
    let vr = VerifierReward { process: ProcessConfig::default(), tools: Vec::new(), seed: 1, verifier: None };
    let at = Scoring { step: 0, policy: &llm, tools: &tools, env: &env, episode: &cfg };
    let due = vr.due_repairs(&rollouts, &[Some(0), Some(0)]);
    assert_eq!(due, vec![(0, 0)]);
    let done = vr.rederive(&at, &mut rollouts, &due, &[Some("2 is even".into())]);
    assert_eq!((done.next, done.changed), (vec![Some(1), None], vec![true, false]));
    assert_eq!(rollouts[1], before[1], "an unreadable verdict opened a repair");
    let (old, new) = (&before[0], &rollouts[0]);
    let records = repairs_of(new);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.step, 1);
    // g = σ(5 · (0.7 − 0.3)) = σ(2) = 0.8807971.
    assert!((r.gate - 0.880_797_1).abs() < 1e-6, "{}", r.gate);
    assert_eq!((r.before, r.after), (old.reward, Some(new.reward)));
    assert_eq!(r.patch.as_deref(), Some("2 is even"));
    let note = repair_note("2 is even");
    assert!(new.turns[0].text.starts_with(&note), "{:?}", new.turns[0].text);
    let start = old.written_runs()[0].start;
    assert_eq!(new.token_ids[..start], old.token_ids[..start]);
    let shown = llm.tokenizer.encode(&note).unwrap().len();
    assert!(new.loss_mask[start..start + shown].iter().all(|&m| m == 0));
    assert_eq!(new.episode_id, old.episode_id, "the repaired episode keeps its place in the group");
    assert_eq!(r.original.as_deref(), Some(old), "the replaced episode is kept");
    assert_ne!(new.seed, old.seed + 1, "a sibling's seed");
    // The repaired step pays for it: its verdict carries the gate once priced.
    let mut priced = rollouts.clone();
    priced[0].turns[0].verdict = Some(Verdict::NEUTRAL);
    price_repairs(&mut priced);
    assert_eq!(priced[0].turns[0].verdict.as_ref().unwrap().repair_gate, Some(r.gate));
    assert_eq!(priced[1], before[1]);
    // A repaired episode replays with its note (a second repair or AXPO continues from it):
    // continued from right after the note, it keeps the note, in its tokens and in its text.
    let end = start + shown;
    let job = Job::continuing(std::sync::Arc::new(new.clone()), end, 9, "again");
    let again = Runner::new(Agent::Local(&llm), &env, &tools, 1).run_in_order(vec![job], &cfg);
    assert!(!matches!(again[0].end, kaizen_core::EpisodeEnd::Error { .. }), "{:?}", again[0].end);
    assert_eq!(again[0].token_ids[..end], new.token_ids[..end]);
    assert!(again[0].turns[0].text.starts_with(&note));
    // A declined correction ("no change") re-derives nothing and looks after the step next.
    let mut declined = before.clone();
    let done = vr.rederive(&at, &mut declined, &due, &[None]);
    assert_eq!((done.next, done.changed), (vec![Some(1), None], vec![false, false]));
    assert_eq!(repairs_of(&declined[0])[0].after, None);
}

/// A verifier that writes the same text whatever it is asked.
struct Says(&'static str);

impl kaizen_core::Policy for Says {
    fn name(&self) -> &str {
        "scripted-verifier"
    }
    fn chat(&self, req: &kaizen_core::ChatRequest) -> Result<Vec<kaizen_core::Completion>, kaizen_core::PolicyError> {
        Ok((0..req.params.n.max(1))
            .map(|_| kaizen_core::Completion {
                text: self.0.to_string(),
                token_ids: Vec::new(),
                logprobs: Vec::new(),
                finish_reason: kaizen_core::FinishReason::Stop,
                prompt_tokens: 0,
            })
            .collect())
    }
}

/// Must hold (issue 19): a verifier that always answers garbage leaves the solver's outcomes
/// exactly as they were — every verdict unreadable and neutral, no repair opened — while the
/// same episodes judged by a verifier that reads as unsure (confidence 0.1 < τ_c) do open
/// repairs: the garbage is what keeps them shut.
#[test]
fn a_verifier_answering_garbage_leaves_the_solver_alone() {
    use kaizen_rollout::episode::Job;
    let (_dir, llm) = tiny_policy(5);
    let env = kaizen_envs::JsonlEnv::from_tasks("even", (0..4).map(|i| task(2 * i)).collect());
    let tools = kaizen_tools::ToolRegistry::standard();
    let cfg = one_short_turn();
    let jobs = (0..4).map(|i| Job::new(task(2 * i), i as u64, format!("e{i}"))).collect();
    let mut solved = Runner::new(Agent::Local(&llm), &env, &tools, 4).run_in_order(jobs, &cfg);
    // Half of them right, as the checker would have said of the right answer.
    for (i, t) in solved.iter_mut().enumerate() {
        t.reward = if i % 2 == 0 { 1.0 } else { 0.0 };
    }
    let at = Scoring { step: 0, policy: &llm, tools: &tools, env: &env, episode: &cfg };
    let judged_by = |says: &'static str| {
        let mut vr = VerifierReward {
            process: ProcessConfig::default(),
            tools: Vec::new(),
            seed: 3,
            verifier: Some(std::sync::Arc::new(Says(says))),
        };
        let mut rollouts = solved.clone();
        vr.score(&at, &mut rollouts).unwrap();
        rollouts
    };
    let garbage = judged_by("<answer>the steps look fine to me</answer>");
    assert_eq!(garbage.iter().map(|t| t.reward).collect::<Vec<_>>(), [1.0, 0.0, 1.0, 0.0]);
    for (after, before) in garbage.iter().zip(&solved) {
        assert_eq!((&after.token_ids, &after.turns.len()), (&before.token_ids, &before.turns.len()));
        let v = after.turns[0].verdict.as_ref().unwrap();
        assert!(!v.parsed && v.score == 0.0, "{v:?}");
        assert_eq!(after.reward_detail["verification"]["unreadable"], 1);
        assert!(repairs_of(after).is_empty());
    }
    assert_eq!(repair_counts(&garbage), Some((0, 0, 0)));
    assert_eq!(declined_repairs(&garbage), 0);
    // Readable and unsure: every episode's first step opens a repair.
    let unsure = judged_by(r#"<answer>[{"step": 1, "score": -1, "confidence": 0.1, "critique": "check it"}]</answer>"#);
    assert!(unsure.iter().all(|t| t.turns[0].verdict.as_ref().is_some_and(|v| v.parsed)), "{:?}", unsure[0].turns);
    assert!(unsure.iter().all(|t| !repairs_of(t).is_empty()), "no repair opened on an unsure verdict");
    // Each at step 1, gated g = σ(5 · (0.7 − 0.1)) = σ(3) = 0.9525741.
    for t in &unsure {
        let r = &repairs_of(t)[0];
        assert_eq!(r.step, 1);
        assert!((r.gate - 0.952_574_1).abs() < 1e-6, "{}", r.gate);
    }
}
