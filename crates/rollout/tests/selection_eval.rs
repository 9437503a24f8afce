//! The Best-of-Q protocol's rows: which tasks each row solved, in task order, with a scripted
//! policy whose right answers are known by hand.

use kaizen_core::{ChatRequest, Completion, FinishReason, Policy, PolicyError, Role};
use kaizen_rollout::rerank::Selector;
use kaizen_rollout::runner::Runner;
use kaizen_rollout::selection_eval::{best_of_q_rows, run_row};
use kaizen_rollout::{Agent, EpisodeConfig};
use kaizen_tools::ToolRegistry;

/// Answers "Say K" with K when K is even and with K + 1 otherwise.
struct EvenOnly;

impl Policy for EvenOnly {
    fn name(&self) -> &str {
        "even-only"
    }
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let asked =
            req.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default();
        let k: u64 = asked.trim_start_matches("Say ").trim().parse().map_err(|_| PolicyError::InvalidRequest(asked))?;
        let said = if k % 2 == 0 { k } else { k + 1 };
        let c = Completion {
            text: format!("\\boxed{{{said}}}"),
            token_ids: Vec::new(),
            logprobs: Vec::new(),
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
        };
        Ok(vec![c; req.params.n])
    }
}

#[test]
fn each_row_says_which_tasks_it_solved_in_task_order() {
    let dir = std::env::temp_dir().join(format!("kaizen-selection-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("say.jsonl");
    let lines: Vec<String> = (0..5)
        .map(|k| serde_json::json!({"prompt": format!("Say {k}"), "answer": k.to_string()}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let env = kaizen_envs::JsonlEnv::load(&file).unwrap();
    use kaizen_core::Env;
    let tasks = env.tasks(0, 5);
    let tools = ToolRegistry::standard();
    let runner = Runner { agent: Agent::Remote(&EvenOnly), env: &env, registry: &tools, slots: 3 };
    let cfg = EpisodeConfig { max_turns: 1, ..Default::default() };
    let q = Selector::MaxLogprob;
    let rows = best_of_q_rows(&cfg, &cfg, 3, &q);
    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        ["policy, greedy", "policy, sampled", "random of N", "max log-prob of N", "Best-of-Q", "pass@N, episodes"]
    );
    assert_eq!(
        rows.iter().map(|r| (r.candidates, r.episodes_per_task)).collect::<Vec<_>>(),
        [(1, 1), (1, 1), (3, 1), (3, 1), (3, 1), (1, 3)]
    );
    // Tasks in the env's order; the policy is right on the even ones.
    let want: Vec<bool> =
        tasks.iter().map(|t| t.prompt.trim_start_matches("Say ").parse::<u64>().unwrap() % 2 == 0).collect();
    assert_eq!(want.iter().filter(|&&w| w).count(), 3);
    for row in &rows {
        let mut episodes = 0;
        let out = run_row(&runner, &tasks, 7, row, &mut |_| episodes += 1);
        assert_eq!(episodes, 5 * row.episodes_per_task, "{}", row.name);
        assert_eq!(out.solved, want, "{}", row.name);
        assert_eq!(out.successes(), 3);
        assert_eq!(out.kinds.values().copied().collect::<Vec<_>>(), [(3, 5)], "{}", row.name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
