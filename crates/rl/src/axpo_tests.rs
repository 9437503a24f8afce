//! Unit tests of `axpo` on hand-computed numbers.

use super::*;

fn v(reward: f32, used_tool: bool) -> RolloutView {
    RolloutView { reward, used_tool }
}

#[test]
fn triggers_only_on_an_all_wrong_tool_subgroup() {
    assert!(triggered(&[v(0., true), v(0., true), v(1., false)]));
    assert!(!triggered(&[v(0., true), v(1., true), v(0., false)]), "a tool rollout succeeded");
    assert!(!triggered(&[v(0., false), v(0., false)]), "no tool-using subgroup");
    assert!(!triggered(&[]));
}

#[test]
fn prefix_ends_after_the_opening_tag_even_split_over_tokens() {
    // prompt (mask 0) | "Let me " "<tool" "_call" ">" "{..." (mask 1)
    let texts = ["sys", "user", "Let me ", "<tool", "_call", ">", "{\"name\""];
    let mask = [0, 0, 1, 1, 1, 1, 1];
    assert_eq!(prefix_end(&texts, &mask, "<tool_call>"), Some(6));
    assert_eq!(call_span(&mask, 6), 6..7);
    // The tag in the prompt or across an observation does not count.
    let texts = ["<tool_call>", "a <tool", "_call>", "b"];
    assert_eq!(prefix_end(&texts, &[0, 1, 0, 1], "<tool_call>"), None);
    // A call span stops where the observation starts.
    assert_eq!(call_span(&[1, 1, 1, 0, 0, 1], 1), 1..3);
}

#[test]
fn confidence_is_the_mean_token_probability() {
    // exp(ln 0.5) = 0.5, exp(ln 0.25) = 0.25 → 0.375.
    let c = call_confidence(&[0.5f32.ln(), 0.25f32.ln()]);
    assert!((c - 0.375).abs() < 1e-6, "{c}");
    assert_eq!(call_confidence(&[]), 1.0);
}

#[test]
fn least_confident_prefixes_first_within_budget() {
    // One task each: plain uncertainty order.
    let cands = [(0, 0, 0.9), (1, 3, 0.2), (2, 5, 0.5), (3, 6, 0.1)];
    // Budget of 8 rollouts at K = 4 → 2 prefixes: the two least confident.
    assert_eq!(select_prefixes(&cands, 8, 4), vec![6, 3]);
    assert_eq!(select_prefixes(&cands, 3, 4), Vec::<usize>::new());
    assert_eq!(select_prefixes(&cands, 100, 4).len(), 4);
}

#[test]
fn the_budget_is_spread_over_tasks_breadth_first() {
    // Task 0 holds the three least confident prefixes (rollouts 0, 1, 2); task 1 one (rollout
    // 5). Three prefixes: round one takes task 0's least confident (0.1) and task 1's (0.6),
    // round two task 0's next (0.2) — not task 0's three.
    let cands = [(0, 1, 0.2), (0, 0, 0.1), (0, 2, 0.3), (1, 5, 0.6)];
    assert_eq!(select_prefixes(&cands, 12, 4), vec![0, 5, 1]);
    // Two: one per task.
    assert_eq!(select_prefixes(&cands, 8, 4), vec![0, 5]);
}

#[test]
fn every_opening_tag_is_found_with_its_turn() {
    // Turn 0 opens two calls, an observation, turn 1 opens one.
    let texts = ["sys", "a <tool_call>", "x</tool_call><tool", "_call>y", "obs", "<tool_call>z"];
    let mask = [0, 1, 1, 1, 0, 1];
    let got = call_openings(&texts, &mask, "<tool_call>");
    assert_eq!(
        got,
        vec![
            CallOpening { turn: 0, prefix_end: 2 },
            CallOpening { turn: 0, prefix_end: 4 },
            CallOpening { turn: 1, prefix_end: 6 }
        ]
    );
    assert_eq!(prefix_end(&texts, &mask, "<tool_call>"), Some(2));
}

#[test]
fn separated_advantages_by_hand() {
    // Group r = [0, 0, 1, 0]; rollout 1's prefix resampled K = 4 → [1, 0, 0, 0].
    // Continuations: mean 0.25, sample std 0.5 → [1.5, −0.5, −0.5, −0.5].
    // Prefix credit: r'_1 = 1 → r' = [0, 1, 1, 0]: mean 0.5, std √(1/3) → ±0.866025.
    let adv = separated_advantages(&[0., 0., 1., 0.], &[Resampled { source: 1, rewards: vec![1., 0., 0., 0.] }], 0.0);
    let want_c = [1.5, -0.5, -0.5, -0.5];
    for (a, b) in adv.continuations[0].iter().zip(want_c) {
        assert!((a - b).abs() < 1e-5);
    }
    let want_g = [-0.866025, 0.866025, 0.866025, -0.866025];
    for (a, b) in adv.group.iter().zip(want_g) {
        assert!((a - b).abs() < 1e-5, "{:?}", adv.group);
    }
    // No resample succeeded: the source keeps reward 0; all-wrong continuations get 0.
    let adv = separated_advantages(&[0., 0.], &[Resampled { source: 0, rewards: vec![0., 0.] }], 1e-6);
    assert_eq!(adv.continuations[0], vec![0., 0.]);
    assert_eq!(adv.group, vec![0., 0.]);
}

#[test]
fn prefix_and_continuation_masks_split_a_rollout() {
    let mask = [0, 0, 1, 1, 0, 1];
    assert_eq!(prefix_only(&mask, 3), vec![0, 0, 1, 0, 0, 0]);
    assert_eq!(continuation_only(&mask, 3), vec![0, 0, 0, 1, 0, 1]);
}
