//! Unit tests of `arith` (kept in their own file beside it).

use super::*;

#[test]
fn answers_are_exact_by_hand() {
    assert_eq!(decimal(3_045_600, 4), "304.56");
    assert_eq!(decimal(1_230_000, 4), "123");
    assert_eq!(decimal(7_005, 2), "70.05");
    // Level 4: $200, 25% off, 8% tax: 200 · 0.75 · 1.08 = 162.
    assert_eq!(decimal(200 * 75 * 108, 4), "162");
}

#[test]
fn tasks_are_seeded_graded_and_self_consistent() {
    let env = Arith::mixed();
    let a = env.tasks(7, 10);
    assert_eq!(a, env.tasks(7, 10));
    assert_ne!(a, env.tasks(8, 10));
    let levels: Vec<u64> = a.iter().map(|t| t.meta["level"].as_u64().unwrap()).collect();
    assert_eq!(levels, vec![1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
    for t in &a {
        // The reference answer passes its own checker; a nearby wrong one does not.
        assert_eq!(t.reward(Some(&t.answer)), 1.0, "{t:?}");
        let wrong: f64 = t.answer.parse::<f64>().unwrap() + 1.0;
        assert_eq!(t.reward(Some(&wrong.to_string())), 0.0, "{t:?}");
    }
    // Level 5 by hand for its numbers: recompute from the prompt.
    let t = Arith::level(5).unwrap().task(1, 0);
    let nums: Vec<f64> = t.prompt.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    let speed = nums[0] / (nums[1] + nums[2] / 60.0);
    assert!((speed - t.answer.parse::<f64>().unwrap()).abs() <= 0.005 + 1e-9, "{} vs {}", speed, t.answer);
    assert!(Arith::level(9).is_err());
}

#[test]
fn each_tasks_expression_computes_its_answer_with_the_calculator() {
    use kaizen_core::Tool;
    let calc = kaizen_tools::Calculator;
    for t in Arith::mixed().tasks(3, 50) {
        let expr = t.meta["expression"].as_str().unwrap();
        let obs = calc.call(&serde_json::json!({ "expr": expr }));
        assert!(obs.ok, "{expr}: {}", obs.content);
        // A non-terminating quotient reads "942/11 (≈ 85.636…)": its decimal is the value.
        let value = match obs.content.split_once('≈') {
            Some((_, approx)) => approx.trim().trim_end_matches(')').to_string(),
            None => obs.content.clone(),
        };
        assert_eq!(t.reward(Some(&value)), 1.0, "{expr} = {} vs {}", obs.content, t.answer);
    }
}
