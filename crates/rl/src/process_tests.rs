//! Unit tests of `process`: every formula of `METHODS.md` §5 on hand-computed numbers.

use super::*;

fn close(a: f32, b: f32) {
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

/// A read verdict; `repaired`: the step was re-derived after a verdict of this confidence
/// opened a repair (its gate with the default τ_c and κ).
fn verdict(score: f32, confidence: f32, repaired: bool) -> Verdict {
    let repair_gate = repaired.then(|| repair_gate(confidence, 0.7, 5.0));
    Verdict { score, confidence, critique: String::new(), parsed: true, repair_gate }
}

/// An episode rewarded `reward` whose turns are `(called a tool that ran ok, verdict)` and
/// whose token record is `mask` after a two-token prompt.
fn episode(reward: f32, turns: &[(bool, Option<Verdict>)], mask: &[u8]) -> Trajectory {
    let turns: Vec<serde_json::Value> = turns
        .iter()
        .map(|(tool, v)| {
            let (calls, obs) = if *tool {
                (
                    serde_json::json!([{"id": "c", "name": "python", "arguments": {"code": "print(1)"}}]),
                    serde_json::json!([{"content": "1", "ok": true, "elapsed_ms": 1.0}]),
                )
            } else {
                (serde_json::json!([]), serde_json::json!([]))
            };
            serde_json::json!({"text": "t", "tool_calls": calls, "malformed": [], "observations": obs,
                               "generated_tokens": 1, "verdict": v})
        })
        .collect();
    let mut full = vec![0u8, 0];
    full.extend(mask);
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "arith", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "p", "answer": "7", "checker": {"kind": "numeric"}},
        "turns": turns, "token_ids": vec![5u32; full.len()], "loss_mask": full, "logprobs": vec![0.0f32; full.len()],
        "prompt_tokens": 2, "final_answer": "7", "reward": reward, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap()
}

fn tokens(a: &Advantage) -> Vec<f32> {
    match a {
        Advantage::PerToken(v) => v.clone(),
        other => panic!("expected per-token advantages, got {other:?}"),
    }
}

#[test]
fn the_gate_is_a_sigmoid_around_tau_c() {
    close(repair_gate(0.7, 0.7, 5.0), 0.5);
    close(repair_gate(0.5, 0.7, 5.0), 0.731_058_6); // σ(1)
    close(repair_gate(0.9, 0.7, 5.0), 0.268_941_4); // σ(−1)
}

#[test]
fn only_a_read_unsure_verdict_opens_a_repair() {
    assert!(opens_repair(&verdict(1.0, 0.69, false), 0.7));
    assert!(!opens_repair(&verdict(-1.0, 0.7, false), 0.7));
    // Garbage from the verifier never opens one, whatever its stand-in confidence.
    assert!(!opens_repair(&Verdict { confidence: 0.0, ..Verdict::NEUTRAL }, 0.7));
    let vs = [Verdict::NEUTRAL, verdict(1.0, 0.9, false), verdict(-1.0, 0.2, false), verdict(-1.0, 0.1, false)];
    assert_eq!(first_repair(&vs, 0.7), Some(2));
    assert_eq!(first_repair(&[Verdict::NEUTRAL, Verdict::NEUTRAL], 0.7), None);
}

#[test]
fn process_and_step_rewards_match_hand_computed_values() {
    // λ_tool · 1[tool ok] + score · conf = 0.3 + 0.5 · 0.8.
    close(process_reward(true, &verdict(0.5, 0.8, false), 0.3), 0.7);
    close(process_reward(false, &verdict(-1.0, 0.6, false), 0.3), -0.6);
    close(process_reward(false, &Verdict::NEUTRAL, 0.3), 0.0);
    // The repair cost g · C_repair only where a repair happened: 0.7 − 0.7310586 · 0.05.
    close(step_reward(0.7, 0.731_058_6, true, 0.05), 0.663_447_07);
    close(step_reward(0.7, 0.731_058_6, false, 0.05), 0.7);
}

#[test]
fn returns_discount_the_steps_after_and_add_the_outcome() {
    // G_3 = 1 + 0.2; G_2 = 1 + (−0.6 + 0.99 · 0.2); G_1 = 1 + 0.7 − 0.594 + 0.9801 · 0.2.
    let g = returns(1.0, &[0.7, -0.6, 0.2], 1.0, 0.99);
    close(g[2], 1.2);
    close(g[1], 0.598);
    close(g[0], 1.302_02);
    // α_out weighs the outcome.
    close(returns(1.0, &[0.5], 2.0, 0.99)[0], 2.5);
    assert!(returns(1.0, &[], 1.0, 0.99).is_empty());
}

#[test]
fn a_group_is_normalised_on_episode_returns_and_each_step_credits_its_own_tokens() {
    let c = ProcessConfig::default();
    // A: right; step 1 called a tool that ran (0.3 + 0.5·0.8 = 0.7), step 2 judged 1 · 0.9.
    // G_2 = 1 + 0.9 = 1.9, G_1 = 1 + 0.7 + 0.99 · 0.9 = 2.591.
    let a = episode(
        1.0,
        &[(true, Some(verdict(0.5, 0.8, false))), (false, Some(verdict(1.0, 0.9, false)))],
        &[1, 1, 0, 1, 1, 1],
    );
    // B: wrong; one step judged −1 · 0.6 and repaired: −0.6 − 0.05 · σ(5 · 0.1) = −0.6311230.
    let b = episode(0.0, &[(false, Some(verdict(-1.0, 0.6, true)))], &[1, 1]);
    let adv = process_advantages(&[a, b], &c);
    // Step 1: mean(G_1) = 0.9799385, std = 2.2783850 (n − 1). Step 2: A alone reaches it, 0.
    let ta = tokens(&adv[0]);
    assert_eq!(ta.len(), 8);
    let (a1, a2) = (0.707_106_5, 0.0);
    let want = [0.0, 0.0, a1, a1, 0.0, a2, a2, a2];
    assert!(ta.iter().zip(want).all(|(x, y)| (x - y).abs() < 1e-5), "{ta:?}");
    let tb = tokens(&adv[1]);
    assert_eq!(tb.len(), 4);
    assert!(tb.iter().zip([0.0, 0.0, -0.707_106_5, -0.707_106_5]).all(|(x, y)| (x - y).abs() < 1e-5), "{tb:?}");
}

#[test]
fn without_readable_verdicts_or_tools_it_is_grpo_on_the_outcome() {
    // Every step neutral and tool-free: G_t = r_out, so A = (r − mean)/std = ±0.7071068.
    let c = ProcessConfig::default();
    let a = episode(1.0, &[(false, Some(Verdict::NEUTRAL)), (false, None)], &[1, 0, 1]);
    let b = episode(0.0, &[(false, None)], &[1]);
    let adv = process_advantages(&[a, b], &c);
    let ta = tokens(&adv[0]);
    assert_eq!(ta.len(), 5);
    // Step 2: only A reaches it, 0.
    assert!(ta.iter().zip([0.0, 0.0, 0.707_106_8, 0.0, 0.0]).all(|(x, y)| (x - y).abs() < 1e-5), "{ta:?}");
    let tb = tokens(&adv[1]);
    assert_eq!(tb.len(), 3);
    assert!(tb.iter().zip([0.0, 0.0, -0.707_106_8]).all(|(x, y)| (x - y).abs() < 1e-5), "{tb:?}");
}

#[test]
fn a_token_record_that_does_not_show_its_turns_falls_back_to_the_episode_value() {
    // Two turns but one run of written tokens: no per-token split, the episode's G_1 instead.
    let c = ProcessConfig::default();
    let a = episode(1.0, &[(false, None), (false, None)], &[1, 1]);
    let b = episode(0.0, &[(false, None)], &[1]);
    let adv = process_advantages(&[a, b], &c);
    match adv[0] {
        Advantage::Sequence(x) => close(x, 0.707_106_8),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn later_steps_are_normalised_among_the_group_at_that_step_and_never_blow_up() {
    let c = ProcessConfig::default();
    // All right; both first steps ran a tool (0.3). A: G = [1 + 0.3 + 0.99 · 0, 1] = [1.3, 1.0];
    // B: second step judged 1 · 0.5, G = [1 + 0.3 + 0.99 · 0.5, 1.5] = [1.795, 1.5];
    // C: like A. Step 1: [1.3, 1.795, 1.3], mean 1.465, std 0.2857884 → [−0.57735, 1.1547, −0.57735].
    // Step 2: [1.0, 1.5, 1.0], mean 1.1666667, std 0.2886751 → [−0.57735, 1.1547, −0.57735].
    let a = episode(1.0, &[(true, None), (false, None)], &[1, 0, 1]);
    let b = episode(1.0, &[(true, None), (false, Some(verdict(1.0, 0.5, false)))], &[1, 0, 1]);
    let adv = process_advantages(&[a.clone(), b, a.clone()], &c);
    let (lo, hi) = (-0.577_350_3, 1.154_700_5);
    for (got, want) in adv.iter().zip([[lo, lo], [hi, hi], [lo, lo]]) {
        let t = tokens(got);
        assert_eq!(t.len(), 5);
        assert!((t[2] - want[0]).abs() < 1e-4 && (t[4] - want[1]).abs() < 1e-4, "{t:?}");
    }
    // Equal episode returns but unequal later ones: A's G_2 = 1.0 beside D's 1.3 at step 2 is
    // compared with the step-2 returns only — no division by a zero spread of G_1.
    // D: G = [1 + 0 + 0.99 · 0.3, 1.3] = [1.297, 1.3] (a tool only at step 2); A's G_1 = 1.3.
    let d = episode(1.0, &[(false, None), (true, None)], &[1, 0, 1]);
    let adv = process_advantages(&[a.clone(), a.clone()], &c);
    assert!(adv.iter().all(|x| tokens(x).iter().all(|&v| v == 0.0)), "equal returns: {adv:?}");
    let adv = process_advantages(&[a, d], &c);
    assert!(adv.iter().flat_map(tokens).all(|v| v.abs() <= 0.707_2), "{adv:?}");
}

#[test]
fn every_term_reaches_the_group_advantages() {
    // One-step episodes, G = r_out + r_1: A right with a tool that ran (1 + 0.3 = 1.3); B wrong,
    // judged 1 · 0.5 (0.5); C wrong, nothing (0); D wrong, judged −1 · 0.6 and repaired
    // (−0.6 − 0.05 · σ(0.5) = −0.6311230). mean 0.2922193, std 0.8158325 (n − 1):
    // A = (1.3 − mean) / std = 1.2352775, B = 0.2546852, C = −0.3581849, D = −1.1317778.
    let c = ProcessConfig::default();
    let group = [
        episode(1.0, &[(true, None)], &[1]),
        episode(0.0, &[(false, Some(verdict(1.0, 0.5, false)))], &[1]),
        episode(0.0, &[(false, None)], &[1]),
        episode(0.0, &[(false, Some(verdict(-1.0, 0.6, true)))], &[1]),
    ];
    let got: Vec<f32> = process_advantages(&group, &c).iter().map(|a| tokens(a)[2]).collect();
    let want = [1.235_277_5, 0.254_685_2, -0.358_184_9, -1.131_777_8];
    assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5), "{got:?}");
}
