//! The Best-of-Q protocol's rows: which tasks each row solved, in task order, with a scripted
//! policy whose right answers are known by hand.

use kaizen_core::{ChatRequest, Completion, FinishReason, Policy, PolicyError, Role, TokenLogprob};
use kaizen_q::state::ActionScorer;
use kaizen_rollout::rerank::Selector;
use kaizen_rollout::runner::Runner;
use kaizen_rollout::selection_eval::{best_of_q_rows, run_row};
use kaizen_rollout::{Agent, EpisodeConfig};
use kaizen_tools::ToolRegistry;

/// For "Say K" proposes `n` distinct answers: candidate `i` says `K + n − 1 − i` with log-prob
/// `−i`, plus one more when K is odd. So one candidate (`n = 1`) says K (right on even K);
/// among N, the likeliest is wrong and the least likely is K (right on even K).
struct Scripted;

impl Policy for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let asked =
            req.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default();
        let k: u64 = asked.trim_start_matches("Say ").trim().parse().map_err(|_| PolicyError::InvalidRequest(asked))?;
        let n = req.params.n as u64;
        Ok((0..n)
            .map(|i| Completion {
                text: format!("\\boxed{{{}}}", k + n - 1 - i + k % 2),
                token_ids: Vec::new(),
                logprobs: vec![TokenLogprob {
                    token_id: None,
                    token: String::new(),
                    logprob: -(i as f32),
                    entropy: None,
                    top: Vec::new(),
                }],
                finish_reason: FinishReason::Stop,
                prompt_tokens: 0,
            })
            .collect())
    }
}

/// Scores each action by minus its log-prob: picks the least likely.
struct Contrarian;

impl ActionScorer for Contrarian {
    fn score(&self, _state: &str, _picture: Option<&str>, actions: &[(String, f32)]) -> Result<Vec<f32>, String> {
        Ok(actions.iter().map(|(_, lp)| -lp).collect())
    }
}

#[test]
fn each_row_says_which_tasks_it_solved_in_task_order() {
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-selection-eval-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
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
    let runner = Runner { agent: Agent::Remote(&Scripted), env: &env, registry: &tools, slots: 3 };
    let cfg = EpisodeConfig { max_turns: 1, ..Default::default() };
    let q = Selector::Scored(&Contrarian);
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
    // Tasks in the env's order. One candidate, and the Q pick of N, say K: right on the even
    // tasks; the likeliest of N is always wrong; a random pick is right only on even tasks.
    let even: Vec<bool> =
        tasks.iter().map(|t| t.prompt.trim_start_matches("Say ").parse::<u64>().unwrap() % 2 == 0).collect();
    assert_eq!(even.iter().filter(|&&w| w).count(), 3);
    let none = vec![false; 5];
    for row in &rows {
        let mut episodes = 0;
        let mut chosen_sets = 0;
        let out = run_row(&runner, &tasks, 7, row, &mut |t| {
            episodes += 1;
            chosen_sets += t.turns.iter().filter(|turn| turn.candidates.len() == row.candidates).count();
        });
        assert_eq!(episodes, 5 * row.episodes_per_task, "{}", row.name);
        assert_eq!(
            chosen_sets, episodes,
            "{}: every step chose among {} distinct candidates",
            row.name, row.candidates
        );
        match row.name {
            "max log-prob of N" => assert_eq!(out.solved, none, "{}", row.name),
            "random of N" => assert!(out.solved.iter().zip(&even).all(|(s, e)| !s || *e), "{}", row.name),
            _ => assert_eq!(out.solved, even, "{}", row.name),
        }
        let want = out.solved.iter().filter(|&&s| s).count();
        assert_eq!((out.successes(), out.kinds.values().copied().collect::<Vec<_>>()), (want, vec![(want, 5)]));
    }
}
