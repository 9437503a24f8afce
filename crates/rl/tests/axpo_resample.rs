//! AXPO's rollout stage on real episodes: SmolLM2 repeats the tool calls it is shown but
//! never boxes an answer, so its tool-using groups are all wrong and AXPO triggers.

use kaizen_models::{LocalLlm, WeightFormat};
use kaizen_rl::axpo::{separated_advantages, Resampled};
use kaizen_rl::axpo_resample::axpo_rows;
use kaizen_rl::Recipe;
use kaizen_rollout::{run_local, EpisodeConfig, Job};
use kaizen_tools::ToolRegistry;

#[test]
fn failed_tool_calls_are_resampled_from_their_prefixes_with_separated_advantages() {
    let llm = LocalLlm::load_installed("smollm2", WeightFormat::Q8_0).expect("run scripts/setup.sh");
    let env = kaizen_envs::open(concat!(
        "jsonl:",
        env!("CARGO_MANIFEST_DIR"),
        "/../rollout/tests/fixtures/echo_tool_calls.jsonl"
    ))
    .unwrap();
    let tools = ToolRegistry::standard();
    let mut recipe = Recipe::default();
    (recipe.rl.group, recipe.rl.axpo_k, recipe.rl.axpo_budget) = (3, 2, 0.5);
    let g = recipe.rl.group;
    let cfg = EpisodeConfig { temperature: 0.9, max_turns: 2, max_tokens_per_turn: 40, ..Default::default() };
    let tasks = env.tasks(0, 2);
    let jobs = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..g).map(move |j| Job::new(t.clone(), (10 * i + j) as u64, format!("t{i}-g{j}"))));
    let mut rollouts = Vec::new();
    run_local(&llm, env.as_ref(), &tools, jobs, &cfg, 6, &mut |t| rollouts.push(t));
    rollouts.sort_by(|a, b| a.episode_id.cmp(&b.episode_id));

    let (extra, rows, stats) = axpo_rows(&llm, env.as_ref(), &tools, &rollouts, &recipe, &cfg, 0).unwrap();
    assert!(stats.triggered_groups >= 1, "{stats:?}");
    // Budget 0.5 × 6 rollouts = 3 → ⌊3 / K⌋ = 1 prefix of K = 2 continuations.
    assert_eq!((stats.prefixes, extra.len()), (1, 2), "{stats:?}");
    assert_eq!(rows.len(), rollouts.len() + extra.len());
    let source_row = rows.iter().find(|r| r.t < rollouts.len() && r.mask.is_some()).expect("a source row");
    let source = &rollouts[source_row.t];
    let prefix = source_row.mask.as_ref().unwrap().iter().rposition(|&m| m == 1).unwrap() + 1;
    // The prefix ends with the opening tag; the source trains on it only.
    let text = llm.tokenizer.decode(&source.token_ids[..prefix]);
    assert!(text.ends_with("<tool_call>"), "{text:?}");
    for c in &extra {
        assert_eq!(c.token_ids[..prefix], source.token_ids[..prefix]);
    }
    for r in rows.iter().filter(|r| r.t >= rollouts.len()) {
        let m = r.mask.as_ref().unwrap();
        assert!(m[..prefix].iter().all(|&x| x == 0) && m[prefix..].contains(&1));
    }
    // The advantages are exactly the separated ones of these rewards.
    let gi = source_row.t / g;
    let rewards: Vec<f32> = rollouts[gi * g..(gi + 1) * g].iter().map(|t| t.reward).collect();
    let resampled = [Resampled { source: source_row.t - gi * g, rewards: extra.iter().map(|t| t.reward).collect() }];
    let want = separated_advantages(&rewards, &resampled, 1e-6);
    let got: Vec<f32> = rows.iter().filter(|r| r.t / g == gi && r.t < rollouts.len()).map(|r| r.adv).collect();
    assert_eq!(got, want.group);
    let got: Vec<f32> = rows.iter().filter(|r| r.t >= rollouts.len()).map(|r| r.adv).collect();
    assert_eq!(got, want.continuations[0]);
    assert_eq!(stats.recovered, extra.iter().any(|t| t.reward > 0.5) as usize);
}
