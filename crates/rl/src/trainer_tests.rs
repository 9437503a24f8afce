//! Unit tests of `trainer`'s pure parts (kept in their own file beside it); the loop itself is
//! tested end to end in `crates/cli/tests/cli.rs`.

use super::*;

#[test]
fn sft_stops_once_a_check_reaches_the_target_pass_rate() {
    assert!(reached(0.25, 0.25) && reached(0.5, 0.25));
    assert!(!reached(0.24, 0.25));
    // 0 turns the target off, whatever the pass rate.
    assert!(!reached(1.0, 0.0));
}

#[test]
fn tiny_policies_have_previous_token_embeddings_unless_turned_off() {
    let small = "[policy]\nlayers = 1\nwidth = 16\nheads = 2\ncontext = 32\n";
    let on = initial_policy(&Recipe::parse(small).unwrap()).unwrap();
    assert!(on.cfg.prev_token);
    let off = initial_policy(&Recipe::parse(&format!("{small}prev_token = false\n")).unwrap()).unwrap();
    assert!(!off.cfg.prev_token);
    assert_eq!(on.cfg.parameters() - off.cfg.parameters(), (on.cfg.vocab + 1) * 16);
}

/// A one-token episode of a task with `meta`, answering `answer`, rewarded `reward`.
fn answered(meta: serde_json::Value, answer: &str, reward: f32) -> Trajectory {
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "jsonl:pool", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "p", "answer": "7", "checker": {"kind": "numeric"}, "meta": meta},
        "turns": [], "token_ids": [1], "loss_mask": [1], "logprobs": [0.0], "prompt_tokens": 0,
        "final_answer": answer, "reward": reward, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap()
}

#[test]
fn adpo_scales_by_the_pools_p_hat_not_the_groups() {
    let rl = RlSection::default(); // m = 0.6, ε_high = 0.4
                                   // Rewards 1, 0, 0, 0: mean 0.25, sample std 0.5 → GRPO advantages 1.5, −0.5, −0.5, −0.5.
                                   // The group's own answers agree 3 of 4 (p̂ 0.75, scale 0.96); the pool's p̂ is 0.3:
                                   // s = 0.6 + 0.4 · clamp(0 / 0.5) = 0.6; ε_high = 0.4 + 0.1 · clamp(0.5 / 0.5) = 0.5.
    let pool = serde_json::json!({"p_hat": 0.3});
    let group: Vec<Trajectory> =
        [("7", 1.0), ("5", 0.0), ("5", 0.0), ("5", 0.0)].iter().map(|&(a, r)| answered(pool.clone(), a, r)).collect();
    let (adv, eps_high) = group_advantages(Estimator::Adpo, &group, &rl).unwrap();
    let want = [0.9, -0.3, -0.3, -0.3];
    assert!(adv.iter().zip(want).all(|(a, w)| (a - w).abs() < 1e-5), "{adv:?}");
    assert!((eps_high - 0.5).abs() < 1e-6);
    // Without a pool p̂, the group's: p̂ 0.75 → s = 0.6 + 0.4 · 0.9 = 0.96,
    // ε_high = 0.4 + 0.1 · 0.1 = 0.41.
    let group: Vec<Trajectory> = [("7", 1.0), ("5", 0.0), ("5", 0.0), ("5", 0.0)]
        .iter()
        .map(|&(a, r)| answered(serde_json::Value::Null, a, r))
        .collect();
    let (adv, eps_high) = group_advantages(Estimator::Adpo, &group, &rl).unwrap();
    assert!((adv[0] - 1.5 * 0.96).abs() < 1e-5 && (eps_high - 0.41).abs() < 1e-6, "{adv:?} {eps_high}");
    // A p̂ outside [0, 1] is not a pool's.
    assert_eq!(pool_p_hat(&answered(serde_json::json!({"p_hat": 1.5}), "7", 1.0).task), None);
}
