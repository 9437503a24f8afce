//! Unit tests of `recipe` (kept in their own file beside it).

use super::*;

#[test]
fn defaults_are_the_papers_and_bad_fields_are_named() {
    let r = EvolveRecipe::parse("").unwrap();
    assert_eq!((r.executor.samples, r.executor.temperature, r.executor.max_turns), (10, 0.7, 5));
    assert_eq!((r.pool.low, r.pool.high, r.iterations), (0.3, 0.8, 3));
    assert_eq!((r.executor_rl.estimator.as_str(), r.executor_rl.adpo_m), ("adpo", 0.6));
    assert!(EvolveRecipe::parse("[pool]\nlow = 0.9\nhigh = 0.8\n").unwrap_err().contains("pool.low"));
    assert!(EvolveRecipe::parse("[executor]\nsamples = 0\n").unwrap_err().contains("executor.samples"));
    assert!(EvolveRecipe::parse("[curriculum]\nestimator = \"axpo\"\n").unwrap_err().contains("curriculum.estimator"));
    assert!(EvolveRecipe::parse("[executor_rl]\nestimator = \"nope\"\n").unwrap_err().contains("[executor_rl]"));
    assert!(EvolveRecipe::parse("typo = 1\n").unwrap_err().contains("typo"));
}

#[test]
fn every_shipped_evolve_recipe_loads_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("agent0-vl-") {
            crate::VlRecipe::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        } else if name.starts_with("agent0-") {
            EvolveRecipe::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 2, "no agent0-*.toml in {}", dir.display());
}

#[test]
fn stages_read_the_pool_and_never_a_held_out_set() {
    let r = EvolveRecipe::default();
    let ex = r.executor_recipe(2, std::path::Path::new("/runs/e/iter-2/pool.jsonl"));
    assert_eq!(ex.env, "jsonl:/runs/e/iter-2/pool.jsonl");
    assert_eq!((ex.shots, ex.shots_from.as_deref(), ex.sft.steps, ex.eval.tasks), (3, Some("arith"), 0, 0));
    let cur = r.curriculum_recipe(2);
    assert_eq!((cur.env.as_str(), cur.tool_schemas, cur.eval.tasks), ("curriculum", false, 0));
    assert_ne!(r.curriculum_recipe(1).seed, cur.seed);
    assert_ne!(ex.seed, cur.seed, "each stage draws its own seeds");
    // ADPO's upper clip starts from the symmetric ε: 0.2 → 0.3 for the hardest tasks.
    assert_eq!((ex.rl.eps_low, ex.rl.eps_high), (0.2, 0.2));
}
