//! Unit tests of `streams` (kept in their own file beside it).

use super::*;

#[test]
fn the_committed_recipes_held_out_sets_share_no_task_with_training() {
    for path in ["arith-tiny-grpo.toml", "arith-tiny-axpo.toml"] {
        let text = std::fs::read_to_string(format!("{}/../../recipes/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let recipe = Recipe::parse(&text).unwrap();
        let env = kaizen_envs::open(&recipe.env).unwrap();
        let seen = training_content(env.as_ref(), &recipe, &[]);
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

#[test]
fn interleave_spreads_each_source_evenly() {
    // a at 1/6, 3/6, 5/6; b at 1/2 (a tie with a1: the earlier source first).
    assert_eq!(interleave(vec![vec!["a0", "a1", "a2"], vec!["b0"]]), ["a0", "a1", "b0", "a2"]);
    // a at 1/8, 3/8, 5/8, 7/8; b at 1/4, 3/4.
    assert_eq!(interleave(vec![vec![1, 2, 3, 4], vec![10, 20]]), [1, 10, 2, 3, 20, 4]);
    assert_eq!(interleave(vec![vec![3, 1, 2]]), [3, 1, 2], "one source keeps its order");
    assert_eq!(interleave(vec![Vec::<u8>::new(), vec![7]]), [7]);
}

#[test]
fn mixed_demonstrations_come_from_their_own_stream() {
    let mut recipe = Recipe::parse("env = \"arith\"\n[[sft.mix]]\nenv = \"arith:1\"\ndemonstrations = 5\n").unwrap();
    let mixed = kaizen_envs::open("arith:1").unwrap();
    let tasks = mix_tasks(mixed.as_ref(), &recipe, 0);
    assert_eq!(tasks.len(), 5);
    assert_ne!(tasks, mixed.tasks(recipe.seed, 5), "not the demonstrations' stream");
    assert!(mix_tasks(mixed.as_ref(), &recipe, 1).is_empty(), "no second mix entry");
    // What the mix shows is training content: held-out sets skip it too.
    let env = kaizen_envs::open("arith:1").unwrap();
    let with_mix = training_content(env.as_ref(), &recipe, &[mixed]);
    let without = training_content(env.as_ref(), &recipe, &[]);
    assert!(tasks.iter().all(|t| with_mix.contains(&t.content_key())));
    assert!(tasks.iter().any(|t| !without.contains(&t.content_key())), "the mix adds content of its own");
    let eval = eval_tasks(env.as_ref(), &recipe, &with_mix).unwrap();
    assert!(eval.iter().all(|t| !with_mix.contains(&t.content_key())));
    recipe.sft.mix[0].demonstrations = 0;
    assert!(recipe.validate().unwrap_err().contains("sft.mix (arith:1)"));
}
