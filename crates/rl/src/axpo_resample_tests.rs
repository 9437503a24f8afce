//! Unit tests of `axpo_resample` (kept in their own file beside it).

use super::*;

/// Tokens: 0 the prompt; turn 0 writes two calls (1–6), 7 is its observation; turn 1 writes a
/// third call (8–10). Probabilities: call A's tokens (2, 3, 4: up to the second opening's
/// prefix end) 0.9 each, call B's (5, 6) 0.5 and 0.7, call C's (9, 10) 0.1 each.
fn episode(turn_1_malformed: bool) -> (Vec<&'static str>, Trajectory) {
    let texts = vec![
        "prompt",
        "<tool_call>",
        "{a}",
        "</tool_call>",
        "<tool_call>",
        "{b}",
        "</tool_call>",
        "obs",
        "<tool_call>",
        "{c}",
        "</tool_call>",
    ];
    let lp = |p: f64| p.ln();
    let logprobs = [0.0, lp(0.9), lp(0.9), lp(0.9), lp(0.9), lp(0.5), lp(0.7), 0.0, lp(0.1), lp(0.1), lp(0.1)];
    let call = serde_json::json!({"id": "c", "name": "calculator", "arguments": {"expr": "1"}});
    let turn_1 = if turn_1_malformed {
        serde_json::json!({"text": "", "tool_calls": [], "malformed": ["not JSON"], "observations": [], "generated_tokens": 3})
    } else {
        serde_json::json!({"text": "", "tool_calls": [call], "malformed": [], "observations": [], "generated_tokens": 3})
    };
    let t = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "arith", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "p", "answer": "1", "checker": {"kind": "exact"}},
        "turns": [{"text": "", "tool_calls": [call, call], "malformed": [], "observations": [], "generated_tokens": 6}, turn_1],
        "token_ids": (0..11).collect::<Vec<u32>>(), "loss_mask": [0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1],
        "logprobs": logprobs, "prompt_tokens": 1, "final_answer": null, "reward": 0.0, "end": {"kind": "max_turns"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap();
    (texts, t)
}

#[test]
fn the_prefix_ends_at_the_least_confident_well_formed_call() {
    // Calls: A 0.9 (prefix end 2), B (0.5 + 0.7) / 2 = 0.6 (prefix end 5), C 0.1 (prefix end 9).
    let (texts, t) = episode(false);
    let (end, c) = least_confident_opening(&texts, &t).unwrap();
    assert_eq!(end, 9);
    assert!((c - 0.1).abs() < 1e-6, "{c}");
    // C's turn has a malformed call: passed over, B is the least confident left — not the
    // first call (A) of the episode.
    let (texts, t) = episode(true);
    let (end, c) = least_confident_opening(&texts, &t).unwrap();
    assert_eq!(end, 5);
    assert!((c - 0.6).abs() < 1e-6, "{c}");
}
