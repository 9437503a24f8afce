//! Unit tests of `dataset` (kept in their own file beside it).

use super::*;

#[test]
fn proxy_decisions_become_labelled_steps() {
    let log = [
        r#"{"episode_id":"a","state":"S0","candidates":[{"text":"x","logprob":-1.0,"chosen":false},{"text":"y","logprob":-2.0,"chosen":true}]}"#,
        r#"{"episode_id":"b","state":"T0","candidates":[{"text":"z","logprob":0.0,"chosen":true}]}"#,
        r#"{"episode_id":"a","state":"S1","candidates":[{"text":"w","logprob":-0.5,"chosen":true}]}"#,
        r#"{"feedback":{"episode_id":"a","reward":1.0}}"#,
        r#"{"episode_id":"c","sta"#,
    ]
    .join("\n");
    let steps = decision_steps(&log).unwrap();
    // Episode b has no feedback; the torn last line is skipped.
    assert_eq!(steps.len(), 2);
    assert_eq!((steps[0].action.as_str(), steps[0].logprob, steps[0].success), ("y", -2.0, true));
    assert_eq!(steps[0].next_candidates, vec![("w".to_string(), -0.5)]);
    assert_eq!((steps[1].step, steps[1].steps, steps[1].next_candidates.len()), (1, 2, 0));
    assert!(decision_steps("{bad\n{\"episode_id\":\"a\"}").unwrap_err().contains("line 1"));
}

/// A two-turn episode without recorded candidates (a plain run): prompt tokens, turn 0 (two
/// tokens), an observation, turn 1 (three tokens).
fn plain_episode(candidates: serde_json::Value) -> Trajectory {
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "arith", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "2+2?", "answer": "4", "checker": {"kind": "exact"}},
        "turns": [
            {"text": "call", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 2,
             "candidates": candidates},
            {"text": "\\boxed{4}", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 3},
        ],
        "token_ids": [1, 2, 3, 4, 5, 6, 7, 8],
        "loss_mask": [0, 1, 1, 0, 1, 1, 1, 0],
        "logprobs": [0.0, -0.5, -0.25, 0.0, -1.0, -0.125, -0.375, 0.0],
        "prompt_tokens": 1, "final_answer": "4", "reward": 1.0, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0},
    }))
    .unwrap()
}

#[test]
fn training_reads_the_taken_actions_real_log_prob() {
    // No candidates recorded: each turn's log-prob is the sum over its tokens, as the scorer
    // is handed `Completion::total_logprob` — −0.5 − 0.25 = −0.75 and −1 − 0.125 − 0.375 = −1.5.
    let steps = text_steps(&plain_episode(serde_json::json!([])));
    assert_eq!(steps[0].logprob, -0.75);
    assert_eq!(steps[0].next_candidates, vec![("\\boxed{4}".to_string(), -1.5)]);
    assert_eq!(steps[1].logprob, -1.5);
    // A recorded candidate (one is a set too) gives its own log-prob.
    let one = serde_json::json!([{"text": "call", "logprob": -0.7, "chosen": true}]);
    assert_eq!(text_steps(&plain_episode(one))[0].logprob, -0.7);
}

#[test]
fn each_step_reads_the_latest_picture_of_its_state() {
    let pic = |k: u8| kaizen_core::image::png_url(&image::RgbImage::from_pixel(2, 2, image::Rgb([k, k, k]))).unwrap();
    let mut t = plain_episode(serde_json::json!([]));
    t.task.images = vec![pic(10)];
    t.turns[0].observations =
        vec![kaizen_core::Observation { images: vec![pic(20)], ..kaizen_core::Observation::ok("crop") }];
    let steps = text_steps(&t);
    // Step 0 sees the task's picture; step 1 the one the tool returned.
    assert_eq!(steps[0].picture.as_deref(), Some(pic(10).as_str()));
    assert_eq!(steps[1].picture.as_deref(), Some(pic(20).as_str()));
    // A proxy decision's picture is the latest of its logged chat from the task's turn on: an
    // example's picture before it is not the state; a message that does not parse still counts.
    let chat = serde_json::json!([
        {"role": "user", "content": [{"type": "text", "text": "example"}, {"type": "image_url", "image_url": {"url": pic(1)}}]},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "the task"}, {"type": "image_url", "image_url": {"url": pic(30)}}]},
        {"role": "assistant", "content": [{"type": "audio"}]},
    ]);
    let decision = serde_json::json!({"episode_id": "a", "state": "S", "messages": chat,
        "candidates": [{"text": "x", "chosen": true}]});
    let log = format!("{decision}\n{{\"feedback\":{{\"episode_id\":\"a\",\"reward\":1}}}}");
    assert_eq!(
        crate::state::wire_state(&chat),
        ("the task".to_string(), vec!["assistant: ".to_string()], Some(pic(30)))
    );
    assert_eq!(decision_steps(&log).unwrap()[0].picture.as_deref(), Some(pic(30).as_str()));
}

fn step(episode: &str, step: usize, steps: usize) -> TextStep {
    TextStep {
        task: "t".into(),
        episode: episode.into(),
        state: format!("{episode}{step}"),
        full_state: String::new(),
        picture: None,
        action: "a".into(),
        logprob: 0.0,
        next_candidates: vec![],
        step,
        steps,
        success: true,
    }
}

#[test]
fn steps_link_within_their_episode_only() {
    // a0 → a1 (a's last); b0 claims a next step but b's log is cut; c1 follows b0 but is
    // another episode's; c1 → c2.
    let steps = [step("a", 0, 2), step("a", 1, 2), step("b", 0, 3), step("c", 1, 3), step("c", 2, 3)];
    assert_eq!(next_steps(&steps), vec![Some(1), None, None, Some(4), None]);
}

proptest::proptest! {
    #[test]
    fn any_log_links_without_panicking(raw in proptest::collection::vec((0u8..3, 0usize..5, 0usize..5), 0..40)) {
        let steps: Vec<TextStep> = raw.iter().map(|&(e, s, n)| step(&format!("e{e}"), s, n)).collect();
        for (i, next) in next_steps(&steps).into_iter().enumerate() {
            if let Some(n) = next {
                proptest::prop_assert_eq!(n, i + 1);
                proptest::prop_assert_eq!(&steps[n].episode, &steps[i].episode);
                proptest::prop_assert_eq!(steps[n].step, steps[i].step + 1);
            }
        }
    }

    #[test]
    fn any_decision_log_parses_or_errors_without_panicking(lines in proptest::collection::vec(
        proptest::prop_oneof![
            proptest::strategy::Just(r#"{"episode_id":"a","state":"S","candidates":[{"text":"x","chosen":true}]}"#.to_string()),
            proptest::strategy::Just(r#"{"feedback":{"episode_id":"a","reward":1}}"#.to_string()),
            proptest::strategy::Just(r#"{"episode_id":"b","candidates":"nope"}"#.to_string()),
            proptest::strategy::Just(r#"{"feedback":{"episode_id":7}}"#.to_string()),
            "[ -~]{0,40}",
        ],
        0..20,
    )) {
        let log = lines.join("\n");
        if let Ok(steps) = decision_steps(&log) {
            for s in &steps {
                proptest::prop_assert!(s.step < s.steps);
            }
            let _ = next_steps(&steps);
        }
    }
}
