//! Unit tests of `streams` (kept in their own file beside it).

use super::*;

#[test]
fn the_committed_recipes_held_out_sets_share_no_task_with_training() {
    for path in ["arith-tiny-grpo.toml", "arith-tiny-axpo.toml"] {
        let text = std::fs::read_to_string(format!("{}/../../recipes/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let recipe = Recipe::parse(&text).unwrap();
        let env = kaizen_envs::open(&recipe.env).unwrap();
        let seen = training_content(env.as_ref(), &recipe);
        // The seed-separated stream alone repeats training tasks: the reason for the filter.
        let raw = env.tasks(recipe.seed ^ EVAL_STREAM, recipe.eval.tasks);
        let repeats = raw.iter().filter(|t| seen.contains(&t.content_key())).count();
        assert!(repeats > 0, "{path}: the raw held-out stream no longer overlaps training; revisit this test");
        for (name, set) in [
            ("eval", eval_tasks(env.as_ref(), &recipe, &seen).unwrap()),
            ("check", check_tasks(env.as_ref(), &recipe, &seen).unwrap()),
        ] {
            let want = if name == "eval" { recipe.eval.tasks } else { recipe.sft.check_tasks };
            assert_eq!(set.len(), want, "{path} {name}");
            let keys: HashSet<String> = set.iter().map(Task::content_key).collect();
            assert_eq!(keys.len(), want, "{path} {name}: repeats within the set");
            assert!(keys.is_disjoint(&seen), "{path} {name}: shares a task with training");
        }
    }
}

#[test]
fn too_few_distinct_tasks_is_an_error_naming_the_field() {
    let env = kaizen_envs::JsonlEnv::parse(
        "{\"prompt\": \"2+2?\", \"answer\": 4}\n{\"prompt\": \"3+3?\", \"answer\": 6}",
        "t",
    )
    .unwrap();
    let seen: HashSet<String> = [env.tasks(0, 1)[0].content_key()].into();
    let err = held_out(&env, 5, 2, &seen, "eval.tasks").unwrap_err();
    assert!(err.contains("eval.tasks: only 1 of 2"), "{err}");
}
