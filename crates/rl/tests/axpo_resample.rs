//! AXPO's rollout stage on real episodes: SmolLM2 (at a low temperature) mostly repeats the
//! tool calls it is shown, so its rollouts use tools. The rewards are then set by the test —
//! one rollout of the first task a success without tools, every tool-using rollout a failure,
//! and of each prefix's two continuations the first a success — so the advantages are mixed
//! and known by hand.

use kaizen_core::Trajectory;
use kaizen_models::{LocalLlm, WeightFormat};
use kaizen_rl::axpo_resample::axpo_rows;
use kaizen_rl::{Advantage, Recipe};
use kaizen_rollout::{run_local, EpisodeConfig, Job};
use kaizen_tools::ToolRegistry;

#[test]
fn failed_tool_calls_are_resampled_from_their_prefixes_with_hand_computed_advantages() {
    let llm = LocalLlm::load_installed("smollm2", WeightFormat::Q8_0).expect("run scripts/setup.sh");
    let env = kaizen_envs::open(concat!(
        "jsonl:",
        env!("CARGO_MANIFEST_DIR"),
        "/../rollout/tests/fixtures/echo_tool_calls.jsonl"
    ))
    .unwrap();
    let tools = ToolRegistry::standard();
    let mut recipe = Recipe::default();
    // Budget 0.7 × 6 rollouts = 4 (rounded) → ⌊4 / K⌋ = 2 prefixes of K = 2, one per task.
    (recipe.rl.group, recipe.rl.axpo_k, recipe.rl.axpo_budget) = (3, 2, 0.7);
    let g = recipe.rl.group;
    let cfg = EpisodeConfig { temperature: 0.3, max_turns: 2, max_tokens_per_turn: 40, ..Default::default() };
    let tasks = env.tasks(0, 2);
    let jobs: Vec<Job> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..g).map(move |j| Job::new(t.clone(), (10 * i + j) as u64, format!("t{i}-g{j}"))))
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut rollouts = Vec::new();
    run_local(&llm, env.as_ref(), &tools, jobs, &cfg, 6, &mut |t| rollouts.push(t));
    kaizen_rollout::in_job_order(&mut rollouts, &ids);
    // Task 0: one rollout succeeds without tools (one that made no call, else rollout 2 with
    // its calls dropped); every other rollout fails.
    let winner = (0..g).find(|&j| rollouts[j].tool_calls() == 0).unwrap_or(2);
    for t in &mut rollouts {
        t.reward = 0.0;
    }
    rollouts[winner].reward = 1.0;
    for turn in &mut rollouts[winner].turns {
        turn.tool_calls.clear();
    }
    let calls: Vec<usize> = rollouts.iter().map(|t| t.tool_calls()).collect();
    assert!(calls[..g].iter().filter(|&&n| n > 0).count() == 2 && calls[g..].iter().any(|&n| n > 0), "{calls:?}");
    let mut resample = |jobs: Vec<Job>| -> Vec<Trajectory> {
        let mut out = Vec::new();
        run_local(&llm, env.as_ref(), &tools, jobs, &cfg, 4, &mut |t| out.push(t));
        for t in &mut out {
            t.reward = if t.episode_id.ends_with("-r00") { 1.0 } else { 0.0 };
        }
        out
    };
    let (extra, rows, stats) = axpo_rows(&llm, &rollouts, &recipe, 0, &mut resample).unwrap();
    assert_eq!((stats.triggered_groups, stats.prefixes, stats.recovered, extra.len()), (2, 2, 2, 4), "{stats:?}");
    assert_eq!(rows.len(), rollouts.len() + extra.len());
    // One source per task, among its tool-using failures.
    let sources: Vec<usize> = rows.iter().filter(|r| r.t < rollouts.len() && r.mask.is_some()).map(|r| r.t).collect();
    assert_eq!(sources.len(), 2);
    assert!(sources[0] < g && sources[0] != winner && (g..2 * g).contains(&sources[1]), "{sources:?}");
    for &s in &sources {
        let row = rows.iter().find(|r| r.t == s).unwrap();
        let prefix = row.mask.as_ref().unwrap().iter().rposition(|&m| m == 1).unwrap() + 1;
        // The prefix ends with an opening tag; the source trains on it only, its
        // continuations on what follows it.
        let text = llm.tokenizer.decode(&rollouts[s].token_ids[..prefix]);
        assert!(text.ends_with("<tool_call>"), "{text:?}");
        for c in extra.iter().filter(|c| c.episode_id.starts_with(&rollouts[s].episode_id)) {
            assert_eq!(c.token_ids[..prefix], rollouts[s].token_ids[..prefix]);
        }
    }
    // By hand. Task 0: the source is credited with its continuations' success, so its group
    // rewards become 1 (source), 0 (the other tool failure), 1 (the winner): mean 2/3, sample
    // std √(1/3) = 0.57735 → +0.57735, −1.15470, +0.57735. Task 1: 1 (source), 0, 0 →
    // +1.15470 for the source, −0.57735 for the others. Each prefix's continuations 1, 0:
    // mean 0.5, std √0.5 → +0.70711, −0.70711.
    let adv = |t: usize| sequence(&rows.iter().find(|r| r.t == t).unwrap().adv);
    let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
    let other = (0..g).find(|&j| j != sources[0] && j != winner).unwrap();
    assert!(close(adv(sources[0]), 0.57735) && close(adv(other), -1.1547) && close(adv(winner), 0.57735));
    for t in 3..6 {
        assert!(close(adv(t), if t == sources[1] { 1.1547 } else { -0.57735 }), "rollout {t}: {}", adv(t));
    }
    let continuations: Vec<f32> = rows.iter().filter(|r| r.t >= rollouts.len()).map(|r| sequence(&r.adv)).collect();
    assert_eq!(continuations.len(), 4);
    for pair in continuations.chunks(2) {
        assert!(close(pair[0], 0.70711) && close(pair[1], -0.70711), "{continuations:?}");
    }
    // Continuations train on their own tokens only.
    for r in rows.iter().filter(|r| r.t >= rollouts.len()) {
        assert!(r.mask.as_ref().unwrap().contains(&1));
    }
}

/// AXPO's rows carry one advantage per trajectory.
fn sequence(a: &Advantage) -> f32 {
    match a {
        Advantage::Sequence(v) => *v,
        other => panic!("AXPO wrote a per-token advantage: {other:?}"),
    }
}
