//! Unit tests of `estimator`: the registry, each estimator's group advantages on hand-computed
//! numbers, and per-token advantages.

use super::*;

/// A one-token episode of a task with `meta`, answering `answer`, rewarded `reward`.
pub(crate) fn answered(meta: serde_json::Value, answer: &str, reward: f32) -> Trajectory {
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "jsonl:pool", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "p", "answer": "7", "checker": {"kind": "numeric"}, "meta": meta},
        "turns": [], "token_ids": [1], "loss_mask": [1], "logprobs": [0.0], "prompt_tokens": 0,
        "final_answer": answer, "reward": reward, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap()
}

/// The per-rollout values and `ε_high` of a group whose advantages are per sequence.
fn sequence_of(a: GroupAdvantages) -> (Vec<f32>, f32) {
    let values = a
        .advantages
        .iter()
        .map(|x| match x {
            Advantage::Sequence(v) => *v,
            other => panic!("expected a sequence advantage, got {other:?}"),
        })
        .collect();
    (values, a.eps_high)
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5), "{a:?} vs {b:?}");
}

#[test]
fn every_name_looks_up_and_round_trips_through_recipes() {
    let names: Vec<&str> = ESTIMATORS.iter().map(|e| e.name).collect();
    assert_eq!(names, ["grpo", "dr_grpo", "adpo", "axpo", "rloo", "process"]);
    for name in names {
        let e = Estimator::named(name).unwrap();
        assert_eq!(e.as_str(), name);
        assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{name}\""));
        let back: Estimator = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        assert_eq!(back, e);
        assert_eq!(name.parse::<Estimator>().unwrap(), e);
    }
    let e = Estimator::named("ppo").unwrap_err();
    assert!(e.contains("'ppo'") && e.contains("grpo, dr_grpo, adpo, axpo, rloo"), "{e}");
    assert!(serde_json::from_str::<Estimator>("\"ppo\"").is_err());
    assert_eq!(Estimator::default().as_str(), "grpo");
}

#[test]
fn each_estimator_by_hand() {
    let rl = RlSection::default(); // ε_high 0.4
    let group: Vec<Trajectory> =
        [1.0, 0.0, 0.0, 0.0].iter().map(|&r| answered(serde_json::Value::Null, "7", r)).collect();
    // Rewards 1, 0, 0, 0: mean 0.25, sample std 0.5 → GRPO 1.5, −0.5, −0.5, −0.5;
    // Dr.GRPO r − mean: 0.75, −0.25, −0.25, −0.25.
    let (grpo, eps) = sequence_of(Estimator::from(&GRPO).advantages(&group, &rl));
    close(&grpo, &[1.5, -0.5, -0.5, -0.5]);
    assert_eq!(eps, 0.4);
    let (dr, eps) = sequence_of(Estimator::from(&DR_GRPO).advantages(&group, &rl));
    close(&dr, &[0.75, -0.25, -0.25, -0.25]);
    assert_eq!(eps, 0.4);
    // AXPO's untriggered groups train as GRPO; it alone resamples tool calls.
    let (axpo, _) = sequence_of(Estimator::from(&AXPO).advantages(&group, &rl));
    close(&axpo, &[1.5, -0.5, -0.5, -0.5]);
    let resampling: Vec<bool> = ESTIMATORS.iter().map(|e| e.resamples_tool_calls).collect();
    assert_eq!(resampling, [false, false, false, true, false, false]);
    let verdicts: Vec<bool> = ESTIMATORS.iter().map(|e| e.reads_verdicts).collect();
    assert_eq!(verdicts, [false, false, false, false, false, true]);
    // Dr.GRPO divides by the episode's token budget; the others average over tokens.
    assert_eq!(Estimator::from(&DR_GRPO).normalisation(288), Normalisation::Constant(288.0));
    for e in [&GRPO, &ADPO, &AXPO] {
        assert_eq!(Estimator::from(e).normalisation(288), Normalisation::TokenMean);
    }
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
    let (adv, eps_high) = sequence_of(Estimator::from(&ADPO).advantages(&group, &rl));
    let want = [0.9, -0.3, -0.3, -0.3];
    assert!(adv.iter().zip(want).all(|(a, w)| (a - w).abs() < 1e-5), "{adv:?}");
    assert!((eps_high - 0.5).abs() < 1e-6);
    // Without a pool p̂, the group's: p̂ 0.75 → s = 0.6 + 0.4 · 0.9 = 0.96,
    // ε_high = 0.4 + 0.1 · 0.1 = 0.41.
    let group: Vec<Trajectory> = [("7", 1.0), ("5", 0.0), ("5", 0.0), ("5", 0.0)]
        .iter()
        .map(|&(a, r)| answered(serde_json::Value::Null, a, r))
        .collect();
    let (adv, eps_high) = sequence_of(Estimator::from(&ADPO).advantages(&group, &rl));
    assert!((adv[0] - 1.5 * 0.96).abs() < 1e-5 && (eps_high - 0.41).abs() < 1e-6, "{adv:?} {eps_high}");
    // A p̂ outside [0, 1] is not a pool's.
    assert_eq!(pool_p_hat(&answered(serde_json::json!({"p_hat": 1.5}), "7", 1.0).task), None);
}

#[test]
fn per_token_advantages_are_checked_against_their_rollout() {
    assert_eq!(Advantage::Sequence(2.0).series(3).unwrap(), [2.0, 2.0, 2.0]);
    assert_eq!(Advantage::PerToken(vec![0.0, 1.0, -3.0]).series(3).unwrap(), [0.0, 1.0, -3.0]);
    let e = Advantage::PerToken(vec![0.0, 1.0]).series(3).unwrap_err();
    assert!(e.contains("2 tokens") && e.contains("of 3"), "{e}");
    assert!(Advantage::Sequence(0.0).is_zero() && Advantage::PerToken(vec![0.0; 4]).is_zero());
    assert!(!Advantage::PerToken(vec![0.0, 0.5]).is_zero());
    assert_eq!(Advantage::PerToken(vec![0.5, -3.0, 1.0]).max_abs(), 3.0);
    assert_eq!(Advantage::Sequence(-1.5).max_abs(), 1.5);
}

#[test]
fn estimator_names_parse_and_bad_ones_list_the_allowed() {
    assert_eq!("axpo".parse::<Estimator>(), Ok(Estimator::from(&AXPO)));
    let e = "ppo".parse::<Estimator>().unwrap_err();
    assert!(e.contains("'ppo'") && e.contains("grpo, dr_grpo, adpo, axpo"), "{e}");
}

#[test]
fn rloo_by_hand() {
    let rl = RlSection::default();
    let group =
        |rs: &[f32]| -> Vec<Trajectory> { rs.iter().map(|&r| answered(serde_json::Value::Null, "7", r)).collect() };
    // Rewards 1, 0, 0, 0: the first's baseline is (0+0+0)/3 = 0 → 1; each other's is
    // (1+0+0)/3 → −1/3.
    let (adv, eps) = sequence_of(Estimator::from(&RLOO).advantages(&group(&[1.0, 0.0, 0.0, 0.0]), &rl));
    close(&adv, &[1.0, -1.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0]);
    assert_eq!(eps, 0.4);
    // Rewards 1, 1, 0: baselines (1+0)/2, (1+0)/2, (1+1)/2 → 0.5, 0.5, −1.
    let (adv, _) = sequence_of(Estimator::from(&RLOO).advantages(&group(&[1.0, 1.0, 0.0]), &rl));
    close(&adv, &[0.5, 0.5, -1.0]);
    // All equal: no signal; a group of one: nothing to compare with.
    let (adv, _) = sequence_of(Estimator::from(&RLOO).advantages(&group(&[0.5, 0.5]), &rl));
    close(&adv, &[0.0, 0.0]);
    let (adv, _) = sequence_of(Estimator::from(&RLOO).advantages(&group(&[1.0]), &rl));
    close(&adv, &[0.0]);
    assert_eq!(Estimator::from(&RLOO).normalisation(288), Normalisation::TokenMean);
}
