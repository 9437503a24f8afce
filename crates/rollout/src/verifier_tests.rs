//! Unit tests of `verifier`: reading verdicts never fails, and every unreadable step is counted.

use super::*;

fn v(score: f32, confidence: f32, critique: &str) -> Verdict {
    Verdict { score, confidence, critique: critique.into(), parsed: true, repair_gate: None }
}

#[test]
fn a_list_of_verdicts_is_read_step_by_step() {
    let a = r#"[{"step": 2, "score": -1, "confidence": 0.4, "critique": "7 + 5 is 12"},
               {"step": 1, "score": 1, "confidence": 0.9}]"#;
    let r = read_verdicts(Some(a), 2);
    assert_eq!(r.verdicts, vec![v(1.0, 0.9, ""), v(-1.0, 0.4, "7 + 5 is 12")]);
    assert_eq!(r.unreadable, 0);
    // One object, or one per line (a trailing comma tolerated), read the same way.
    let one = read_verdicts(Some(r#"{"step": 1, "score": 0.5, "confidence": 1}"#), 1);
    assert_eq!((one.verdicts, one.unreadable), (vec![v(0.5, 1.0, "")], 0));
    let lines = "{\"step\": 1, \"score\": 0, \"confidence\": 0.5},\n{\"step\": 2, \"score\": 1, \"confidence\": 0.5}";
    assert_eq!(read_verdicts(Some(lines), 2).unreadable, 0);
}

#[test]
fn garbage_and_out_of_range_verdicts_are_neutral_and_counted() {
    for garbage in [None, Some(""), Some("the steps look fine"), Some("[1, 2, 3]"), Some("{\"step\": \"one\"}")] {
        let r = read_verdicts(garbage, 3);
        assert_eq!(r.verdicts, vec![Verdict::NEUTRAL; 3], "{garbage:?}");
        assert_eq!(r.unreadable, 3, "{garbage:?}");
    }
    // Score out of [−1, 1], confidence out of [0, 1], a step that does not exist, a repeat:
    // only step 2's first verdict stands.
    let a = r#"[{"step": 1, "score": 1.5, "confidence": 0.9}, {"step": 2, "score": 1, "confidence": 0.8},
               {"step": 2, "score": -1, "confidence": 0.1}, {"step": 3, "score": 0, "confidence": -0.1},
               {"step": 0, "score": 0, "confidence": 0.5}, {"step": 9, "score": 0, "confidence": 0.5}]"#;
    let r = read_verdicts(Some(a), 3);
    assert_eq!(r.verdicts, vec![Verdict::NEUTRAL, v(1.0, 0.8, ""), Verdict::NEUTRAL]);
    assert_eq!(r.unreadable, 2);
    // An episode without steps has nothing to judge.
    assert_eq!(read_verdicts(Some("garbage"), 0).unreadable, 0);
}

#[test]
fn the_verification_task_shows_every_step_its_tools_and_pictures() {
    let solver: Trajectory = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "s7", "env": "shape-grid", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "Which shape is in cell B2?", "answer": "circle", "checker": {"kind": "exact"},
                 "images": ["data:image/png;base64,AAAA"]},
        "turns": [
            {"text": "Let me crop B2.", "tool_calls": [{"id": "c", "name": "crop", "arguments": {"box": [8, 8, 16, 16]}}],
             "malformed": [], "observations": [{"content": "cropped", "ok": true, "elapsed_ms": 1.0,
             "images": ["data:image/png;base64,BBBB"]}], "generated_tokens": 5},
            {"text": "It is a \\boxed{circle}.", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 6}
        ],
        "token_ids": [], "loss_mask": [], "logprobs": [], "prompt_tokens": 0,
        "final_answer": "circle", "reward": 1.0, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap();
    let t = verification_task(&solver);
    for part in [
        "Which shape is in cell B2?",
        "Step 1: Let me crop B2.",
        "Tool crop",
        "returned: cropped",
        "Step 2:",
        "Final answer: circle",
        "each of the 2 steps",
    ] {
        assert!(t.prompt.contains(part), "{part} missing from {}", t.prompt);
    }
    assert_eq!(t.images, vec!["data:image/png;base64,AAAA".to_string(), "data:image/png;base64,BBBB".to_string()]);
    assert_eq!(t.id, "verify-s7");
    assert!(VerifierEnv::new(vec!["crop".into()]).system_prompt().contains("<answer>"));
}

#[test]
fn a_patch_is_read_unless_it_says_no_change() {
    assert_eq!(read_patch(Some(" 7 + 5 = 12 ")), Some("7 + 5 = 12".to_string()));
    for none in [None, Some(""), Some("  "), Some("no change"), Some("No change."), Some("NO  CHANGE!")] {
        assert_eq!(read_patch(none), None, "{none:?}");
    }
    assert_eq!(repair_note("7 + 5 = 12"), "(Correction: 7 + 5 = 12)\n");
}

#[test]
fn the_repair_task_shows_the_steps_up_to_the_doubtful_one_and_the_verdict() {
    let solver: Trajectory = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "s3", "env": "arith", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "What is 7 + 5?", "answer": "12", "checker": {"kind": "numeric"}},
        "turns": [
            {"text": "7 + 5 = 13", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 5},
            {"text": "\\boxed{13}", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 6}
        ],
        "token_ids": [], "loss_mask": [], "logprobs": [], "prompt_tokens": 0,
        "final_answer": "13", "reward": 0.0, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap();
    let t = repair_task(&solver, 0, &v(-1.0, 0.4, "7 + 5 is 12"));
    for part in ["What is 7 + 5?", "Step 1: 7 + 5 = 13", "score -1 with confidence 0.4: 7 + 5 is 12", "Correct step 1."]
    {
        assert!(t.prompt.contains(part), "{part} missing from {}", t.prompt);
    }
    assert!(!t.prompt.contains("Step 2"), "{}", t.prompt);
    assert!(RepairEnv.tool_names().is_empty() && RepairEnv.system_prompt().contains("no change"));
}

#[test]
fn cold_start_labels_follow_the_outcome_and_the_tools_and_read_back() {
    let solver = |reward: f32, tool_ok: bool| -> Trajectory {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "episode_id": format!("s{reward}{tool_ok}"), "env": "arith", "policy": "p", "seed": 0,
            "task": {"id": "t", "prompt": "What is 7 + 5?", "answer": "12", "checker": {"kind": "numeric"}},
            "turns": [
                {"text": "calc", "tool_calls": [{"id": "c", "name": "calculator", "arguments": {"expression": "7+5"}}],
                 "malformed": [], "observations": [{"content": "12", "ok": tool_ok, "elapsed_ms": 1.0}], "generated_tokens": 3},
                {"text": "\\boxed{12}", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 4}
            ],
            "token_ids": [], "loss_mask": [], "logprobs": [], "prompt_tokens": 0,
            "final_answer": "12", "reward": reward, "end": {"kind": "answered"},
            "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
        }))
        .unwrap()
    };
    let scores = |t: &Trajectory| label_verdicts(t).iter().map(|v| (v.score, v.confidence)).collect::<Vec<_>>();
    assert_eq!(scores(&solver(1.0, true)), vec![(1.0, 0.9), (1.0, 0.9)]);
    // Wrong: unsure of every step, so a repair opens at the first; a failed tool is sure.
    assert_eq!(scores(&solver(0.0, true)), vec![(-1.0, 0.5), (-1.0, 0.5)]);
    assert_eq!(scores(&solver(1.0, false)), vec![(-1.0, 0.9), (1.0, 0.9)]);
    // The labelled answer is what the verifier writes, and it reads back to the same verdicts.
    let wrong = solver(0.0, true);
    let answer = verdicts_answer(&label_verdicts(&wrong));
    assert!(answer.contains("\"confidence\":0.5") && !answer.contains("0.89999"), "{answer}");
    assert_eq!(read_verdicts(Some(&answer), 2).verdicts, label_verdicts(&wrong));
    // As worked verifications: each task answered with its labels, its own demonstration.
    let env = VerifierEnv::with_examples(vec![], &[solver(1.0, true), wrong]);
    let tasks = env.tasks(1, 3);
    assert_eq!(
        tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["verify-s0true", "verify-s1true", "verify-s0true"]
    );
    assert_eq!(env.demonstration(&tasks[0]), Some(vec![format!("<answer>{answer}</answer>")]));
    assert_eq!(tasks[0].reward(Some(&answer)), 1.0, "the labelled answer checks");
    assert!(VerifierEnv::new(vec![]).tasks(0, 3).is_empty());
}
