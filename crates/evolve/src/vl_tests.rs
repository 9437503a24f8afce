//! Unit tests of `vl` (kept in their own file beside it).

use super::*;

/// A task file of `n` questions "What is K plus 1?" (K = 0..n) in `dir`.
fn tasks(dir: &Path, name: &str, ks: impl Iterator<Item = usize>) -> PathBuf {
    let path = dir.join(name);
    let lines: Vec<String> = ks
        .map(|k| serde_json::json!({"prompt": format!("What is {k} plus 1?"), "answer": k + 1}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn recipe(dir: &Path, train_env: &Path, extra: &str) -> VlRecipe {
    std::fs::write(
        dir.join("t.toml"),
        format!(
            "env = \"jsonl:{}\"\n[sft]\ndemonstrations = 10\nsteps = 5\n[rl]\nestimator = \"process\"\nsteps = 1\n\
             tasks_per_step = 2\n",
            train_env.display()
        ),
    )
    .unwrap();
    VlRecipe::parse(&format!("train = \"t.toml\"\niterations = 1\n{extra}"), dir).unwrap()
}

#[test]
fn held_out_tasks_leave_out_every_demonstration_and_rl_task() {
    let d = tempfile::tempdir().unwrap();
    let train = tasks(d.path(), "train.jsonl", 0..10);
    // Every task of the file is one of the cold start's 10 demonstrations: nothing is left.
    let Err(err) = held_out_tasks(&recipe(d.path(), &train, "[held_out]\ntasks = 10\n")) else {
        panic!("held-out tasks were left although every task is a demonstration")
    };
    assert!(err.to_string().contains("no task"), "{err}");
    // Another file sharing 2 questions with the training file (one spelt with other case and
    // spaces): those 2 are left out, the 3 others are held out.
    let other = tasks(d.path(), "other.jsonl", 8..13);
    let text = std::fs::read_to_string(&other).unwrap().replace("What is 9 plus 1?", "what  is 9 PLUS 1?");
    std::fs::write(&other, text).unwrap();
    let r = recipe(d.path(), &train, &format!("[held_out]\nset = \"jsonl:{}\"\ntasks = 5\n", other.display()));
    let drawn = held_out_tasks(&r).unwrap();
    // 3 of the 5 asked: the run warns.
    let warning = shortfall(&r, &drawn).expect("a held-out set smaller than asked is not warned of");
    assert!(warning.contains("of the 5 tasks drawn, 3 are distinct and not trained on"), "{warning}");
    let held = drawn.2;
    let mut prompts: Vec<&str> = held.iter().map(|t| t.prompt.as_str()).collect();
    prompts.sort();
    assert_eq!(prompts, ["What is 10 plus 1?", "What is 11 plus 1?", "What is 12 plus 1?"]);
    // Started from a run (no cold start): what that run trained on — here its RL tasks, 1
    // step of 3, no SFT — and the cycle's RL tasks (1 step of 2) are left out.
    let run = d.path().join("some-run");
    std::fs::create_dir_all(&run).unwrap();
    let mut started = recipe(d.path(), &train, "[held_out]\ntasks = 10\n").train;
    started.sft.steps = 0;
    started.rl.tasks_per_step = 3;
    started.seed = 5;
    std::fs::write(run.join("config.json"), serde_json::to_string(&started).unwrap()).unwrap();
    let r = VlRecipe { start: Some(run), ..recipe(d.path(), &train, "[held_out]\ntasks = 10\n") };
    let drawn = held_out_tasks(&r).unwrap();
    // 5 of the 10 asked are left.
    assert!(shortfall(&r, &drawn).is_some_and(|w| w.contains("of the 10 tasks drawn, 5 are")));
    let held: Vec<String> = drawn.2.iter().map(|t| t.prompt.clone()).collect();
    // The run's RL step 0 starts at task (5 ^ 0x5EED_0001) mod 10 = 1,592,590,340 mod 10 = 0
    // (tasks 0, 1, 2), the cycle's at (2³² ^ 0x5EED_0001) mod 10 = 5,887,557,633 mod 10 = 3
    // (tasks 3, 4); a jsonl stream takes consecutive lines.
    let want: Vec<String> = (5..10).map(|k| format!("What is {k} plus 1?")).collect();
    assert_eq!(held, want);
}
