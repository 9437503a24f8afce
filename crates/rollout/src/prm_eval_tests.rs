//! Unit tests of `prm_eval`: the scores and picks on hand-made solutions.

use super::*;
use kaizen_core::Verdict;

fn v(score: f32, confidence: f32) -> Verdict {
    Verdict { score, confidence, critique: String::new(), parsed: true, repair_gate: None }
}

fn answering(answer: Option<&str>, reward: f32) -> Trajectory {
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "arith", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "p", "answer": "12", "checker": {"kind": "numeric"}},
        "turns": [], "token_ids": [], "loss_mask": [], "logprobs": [], "prompt_tokens": 0,
        "final_answer": answer, "reward": reward, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap()
}

#[test]
fn the_prm_score_is_the_mean_of_score_times_confidence() {
    // (1 · 0.9 + (−1) · 0.5 + 0) / 3 = 0.1333333.
    let check = Verification { verdicts: vec![v(1.0, 0.9), v(-1.0, 0.5), Verdict::NEUTRAL], unreadable: 1 };
    assert!((prm_score(&check) - 0.133_333_3).abs() < 1e-6);
    assert_eq!(prm_score(&Verification { verdicts: vec![], unreadable: 0 }), -1.0);
    assert_eq!(best(&[0.1, 0.5, 0.5, -1.0]), Some(1));
    assert_eq!(best(&[]), None);
}

#[test]
fn the_majority_is_the_largest_group_of_equal_answers() {
    let task = answering(None, 0.0).task;
    // "12" and "12.0" are one answer to a numeric checker: 3 votes against 2.
    let sols = [
        answering(Some("7"), 0.0),
        answering(Some("12.0"), 1.0),
        answering(None, 0.0),
        answering(Some("7"), 0.0),
        answering(Some("12"), 1.0),
        answering(Some("12"), 1.0),
    ];
    assert_eq!(majority(&task, &sols), Some(1));
    assert_eq!(majority(&task, &[answering(None, 0.0)]), None);
    let o =
        TaskOutcome { right: vec![false, true], prm: Some(0), majority: Some(1), random: 1, steps: 2, unreadable: 0 };
    assert!(!o.prm_solved() && o.majority_solved() && o.random_solved() && o.oracle_solved());
    // (5 · 6364136223846793005 + 1442695040888963407 mod 2⁶⁴) >> 33, mod 8.
    assert_eq!(random_pick(5, 8), 0);
}
