//! Unit tests of `recipe` (kept in their own file beside it).

use super::*;

#[test]
fn defaults_fill_missing_fields_and_errors_name_the_field() {
    let r = Recipe::parse("env = \"arith:1\"\n[rl]\nsteps = 3\n").unwrap();
    assert_eq!((r.env.as_str(), r.rl.steps, r.rl.group), ("arith:1", 3, 4));
    let e = Recipe::parse("[rl]\nestimator = \"ppo\"\n").unwrap_err();
    assert!(e.contains("rl.estimator") && e.contains("grpo, dr_grpo, adpo, axpo"), "{e}");
    let e = Recipe::parse("[rl]\ngropu = 8\n").unwrap_err();
    assert!(e.contains("gropu") && e.contains("group"), "{e}");
    let e = Recipe::parse("[rl]\ngroup = 1\n").unwrap_err();
    assert!(e.contains("rl.group"), "{e}");
    let e = Recipe::parse("[policy]\nwidth = 60\nheads = 8\n").unwrap_err();
    assert!(e.contains("policy.width"), "{e}");
    let e = Recipe::parse("[rl]\neps_high = 1.5\n").unwrap_err();
    assert!(e.contains("rl.eps_high"), "{e}");
}
