use super::*;

fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

#[test]
fn votes_compare_answers_as_numbers_and_see_ties() {
    // "1,200" and "1200.0" are one answer: 3 of 5 → p̂ 0.6.
    let v = vote(&[s("1,200"), s("1200.0"), s("7"), None, s("1200")], 1.5);
    assert_eq!((v.majority.as_deref(), v.p_hat, v.tie, v.tool_calls), (Some("1,200"), 0.6, false, 1.5));
    let tie = vote(&[s("3"), s("4"), s("4"), s("3")], 0.0);
    assert!(tie.tie && tie.p_hat == 0.5);
    let none = vote(&[None, None], 0.0);
    assert_eq!((none.majority, none.p_hat, none.tie), (None, 0.0, false));
}

#[test]
fn screening_drops_unparseable_duplicate_and_held_out_tasks() {
    let held: HashSet<String> = [unlabelled(String::new(), "What is 2 + 2?").content_key()].into();
    let mut stats = PoolStats::default();
    let out =
        screen(&[s("What is  2 + 2?"), None, s("Add 5 and 6."), s("add 5 and 6."), s("Halve 10.")], &held, &mut stats);
    assert_eq!(out, vec!["Add 5 and 6.".to_string(), "Halve 10.".to_string()]);
    assert_eq!((stats.candidates, stats.unparseable, stats.duplicates, stats.held_out), (5, 1, 1, 1));
}

#[test]
fn selection_keeps_the_band_and_labels_with_the_majority() {
    let j = |p_hat: f64, majority: Option<&str>, tie: bool| Judged {
        p_hat,
        majority: majority.map(String::from),
        tie,
        tool_calls: 2.0,
    };
    let tasks: Vec<String> = (0..7).map(|i| format!("task {i}")).collect();
    let judged = vec![
        j(0.5, Some("12"), false),   // kept
        j(0.9, Some("3"), false),    // too easy
        j(0.2, Some("3"), false),    // too hard
        j(0.5, Some("3"), true),     // tie
        j(0.0, None, false),         // no answer
        j(0.6, Some("many"), false), // not a number
        j(0.3, Some("4.5"), false),  // kept: the band is closed
    ];
    let mut stats = PoolStats::default();
    let pool = select(&tasks, &judged, Band { low: 0.3, high: 0.8 }, 10, 2, "ckpt", &mut stats);
    assert_eq!(
        pool.iter().map(|t| (t.prompt.as_str(), t.answer.as_str())).collect::<Vec<_>>(),
        [("task 0", "12"), ("task 6", "4.5")]
    );
    assert_eq!(
        pool[0].meta,
        PoolMeta { p_hat: 0.5, samples: 10, tool_calls: 2.0, iteration: 2, curriculum: "ckpt".into() }
    );
    let want = PoolStats {
        judged: 7,
        no_answer: 1,
        ties: 1,
        non_numeric: 1,
        too_easy: 1,
        too_hard: 1,
        kept: 2,
        ..Default::default()
    };
    assert_eq!(stats, want);
    assert!((stats.keep_rate() - 2.0 / 7.0).abs() < 1e-12);
    // A pool line is a task file line `kaizen train` reads, p̂ where ADPO looks for it.
    let line = serde_json::to_string(&pool[0]).unwrap();
    let env = kaizen_envs::JsonlEnv::parse(&line, "pool").unwrap();
    let task = &env.tasks(0, 1)[0];
    assert_eq!(kaizen_rl::estimator::pool_p_hat(task), Some(0.5));
    assert_eq!(task.reward(Some("12.0")), 1.0);
}
