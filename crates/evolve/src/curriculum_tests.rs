use super::*;

fn judged(p_hat: f64, tool_calls: f64) -> Judged {
    Judged { p_hat, majority: Some("1".into()), tie: false, tool_calls }
}

#[test]
fn tasks_parse_from_their_tags_or_fail_the_format_gate() {
    assert_eq!(
        parse_task("Sure! <question> What is 2 + 3? </question> The answer is 5."),
        Some("What is 2 + 3?".into())
    );
    assert_eq!(parse_task("<question>What is 2 + 3?"), None);
    assert_eq!(parse_task("What is 2 + 3?</question>"), None);
    assert_eq!(parse_task("<question>   </question>"), None);
    assert_eq!(parse_task(&format!("<question>{}</question>", "x".repeat(MAX_TASK_CHARS + 1))), None);
    assert_eq!(parse_task(""), None);
}

#[test]
fn curriculum_prompts_rotate_topics_and_never_pass_the_checker() {
    let tasks = CurriculumEnv.tasks(0, 13);
    assert_ne!(tasks[0].prompt, tasks[1].prompt);
    assert_eq!(tasks[0].prompt, tasks[12].prompt);
    assert_eq!(tasks[0].reward(Some("anything")), 0.0);
    assert!(CurriculumEnv.tool_names().is_empty());
    // Every topic's example parses as a task.
    for t in &tasks[..12] {
        let demo = CurriculumEnv.demonstration(t).unwrap();
        assert!(parse_task(&demo[0]).is_some_and(|q| q.ends_with('?')), "{demo:?}");
    }
}

#[test]
fn the_paper_form_matches_hand_computed_rewards() {
    let w = RewardWeights::default(); // λ_unc 1, γ 0.05, λ_rep 1
                                      // p̂ = 0.5: R_unc = 1; 2 tool calls: 0.1; alone in a batch of 4: 0.25 → 0.85.
    assert!((task_reward(&w, Some(&judged(0.5, 2.0)), 0.25) - 0.85).abs() < 1e-12);
    // p̂ = 0.9: R_unc = 1 − 0.8 = 0.2; 6 calls cap at 4: 0.2; share 0.5 → max(0, −0.1) = 0.
    assert_eq!(task_reward(&w, Some(&judged(0.9, 6.0)), 0.5), 0.0);
    // p̂ = 0.7: 1 − 0.4 = 0.6; no calls; share 0.25 → 0.35.
    assert!((task_reward(&w, Some(&judged(0.7, 0.0)), 0.25) - 0.35).abs() < 1e-12);
    assert_eq!(task_reward(&w, None, 0.0), 0.0);
    // Ablations: no tool reward, no repetition penalty.
    let no_tool = RewardWeights { tool: 0.0, ..w.clone() };
    assert!((task_reward(&no_tool, Some(&judged(0.5, 2.0)), 0.25) - 0.75).abs() < 1e-12);
    let no_rep = RewardWeights { repetition: 0.0, ..w };
    assert!((task_reward(&no_rep, Some(&judged(0.5, 2.0)), 0.25) - 1.1).abs() < 1e-12);
}

#[test]
fn the_code_form_matches_hand_computed_rewards() {
    let w = RewardWeights { form: RewardForm::Code, ..Default::default() };
    // min(0.7, 0.3) = 0.3 − 0.5 + 0.05 · 3 = −0.05.
    assert!((task_reward(&w, Some(&judged(0.7, 3.0)), 0.5) - -0.05).abs() < 1e-12);
    // min(0.2, 0.8) = 0.2 − 0.25 + 0.05 · 4 (capped from 9) = 0.15.
    assert!((task_reward(&w, Some(&judged(0.2, 9.0)), 0.25) - 0.15).abs() < 1e-12);
    assert_eq!(task_reward(&w, None, 0.0), -1.0);
}

#[test]
fn a_batch_with_known_clusters_gets_the_hand_computed_rewards() {
    // Two near-copies (one word differs in eleven: BLEU distance well under 0.5), one distinct
    // task, one unparseable output. Clusters over the three parsed tasks: {0, 1}, {2}: shares
    // 2/3, 2/3, 1/3.
    let a = "A farmer has 12 rows of 37 trees and sells 58 trees . How many are left ?";
    let b = "A farmer has 12 rows of 37 trees and sells 59 trees . How many are left ?";
    let c = "What is 4096 divided by 64 , plus 1000 ?";
    let tasks = vec![Some(a.to_string()), Some(b.to_string()), None, Some(c.to_string())];
    let judged = vec![Some(judged(0.5, 1.0)), Some(judged(0.6, 0.0)), None, Some(judged(0.3, 2.0))];
    let (rewards, clusters) = batch_rewards(&RewardWeights::default(), &tasks, &judged);
    assert_eq!(clusters.labels, vec![0, 0, 1]);
    assert_eq!((clusters.count(), clusters.largest()), (2, 2));
    let want = [
        1.0 + 0.05 - 2.0 / 3.0,        // p̂ 0.5, one call
        (1.0 - 0.2) - 2.0 / 3.0,       // p̂ 0.6: 1 − 2·0.1
        0.0,                           // unparseable
        (1.0 - 0.4) + 0.1 - 1.0 / 3.0, // p̂ 0.3: 1 − 2·0.2; two calls
    ];
    for (got, want) in rewards.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{rewards:?}");
    }
}
