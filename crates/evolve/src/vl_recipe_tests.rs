//! Unit tests of `vl_recipe` (kept in their own file beside it).

use super::*;

fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("t.toml"), "env = \"arith\"\n[rl]\nestimator = \"process\"\nsteps = 7\n").unwrap();
    std::fs::write(d.path().join("grpo.toml"), "env = \"arith\"\n[rl]\nestimator = \"grpo\"\n").unwrap();
    d
}

#[test]
fn a_cycle_recipe_reads_its_train_recipe_and_names_bad_fields() {
    let d = dir();
    let r = VlRecipe::parse("train = \"t.toml\"\n", d.path()).unwrap();
    assert_eq!((r.iterations, r.train.rl.steps, r.held_out.tasks, r.held_out.candidates), (3, 7, 100, 0));
    assert_eq!(r.mode, "vl");
    let r =
        VlRecipe::parse("train = \"t.toml\"\nsteps_per_iteration = 2\n[held_out]\ncandidates = 4\n", d.path()).unwrap();
    assert_eq!((r.train.rl.steps, r.held_out.candidates), (2, 4));
    let err = |text: &str| VlRecipe::parse(text, d.path()).unwrap_err();
    assert!(err("train = \"grpo.toml\"\n").contains("rl.estimator is 'grpo'"));
    assert!(err("train = \"missing.toml\"\n").contains("train: reading"));
    assert!(err("train = \"t.toml\"\niterations = 0\n").contains("iterations"));
    assert!(err("train = \"t.toml\"\n[held_out]\ncandidates = 1\n").contains("held_out.candidates"));
    assert!(err("train = \"t.toml\"\n[held_out]\ntasks = 0\n").contains("held_out.tasks"));
    assert!(err("train = \"t.toml\"\ntypo = 1\n").contains("typo"));
    assert!(err("iterations = 2\n").contains("train"));
}

#[test]
fn each_iteration_rolls_out_its_own_tasks_and_the_cold_start_none() {
    let d = dir();
    let r = VlRecipe::parse("train = \"t.toml\"\n", d.path()).unwrap();
    let cold = r.cold_start_recipe();
    assert_eq!((cold.rl.steps, cold.seed, cold.eval.tasks), (0, r.train.seed, 0));
    let (a, b) = (r.iteration_recipe(1), r.iteration_recipe(2));
    assert_ne!(a.seed, b.seed);
    assert_ne!(a.seed, r.train.seed);
    assert_eq!((a.rl.steps, a.eval.tasks, a.rl.estimator.as_str()), (7, 0, "process"));
}
