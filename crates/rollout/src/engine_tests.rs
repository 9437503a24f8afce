//! Unit tests of `engine` (kept in their own file beside it).

use super::*;

#[test]
fn episodes_return_to_job_order_past_the_ids_zero_padding() {
    // The trainer's ids: 1,000 tasks and 100 samples outgrow `t{:03}` and `g{:02}`, where
    // sorting the strings would put t1000 before t999 and g100 before g99.
    let ids: Vec<String> = [(998, 99), (999, 99), (999, 100), (1000, 0), (1000, 100)]
        .iter()
        .map(|(i, j)| format!("s0001-t{i:03}-g{j:02}"))
        .collect();
    let mut episodes: Vec<Trajectory> = [4, 0, 3, 2, 1]
        .iter()
        .map(|&k| {
            serde_json::from_value(serde_json::json!({
                "schema_version": 1, "episode_id": ids[k], "env": "e", "policy": "p", "seed": 0,
                "task": {"id": "t", "prompt": "p", "answer": "a", "checker": {"kind": "exact"}},
                "turns": [], "token_ids": [], "loss_mask": [], "logprobs": [], "prompt_tokens": 0,
                "final_answer": null, "reward": 0.0, "end": {"kind": "answered"},
                "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0},
            }))
            .unwrap()
        })
        .collect();
    in_job_order(&mut episodes, &ids);
    let got: Vec<&str> = episodes.iter().map(|t| t.episode_id.as_str()).collect();
    assert_eq!(got, ["s0001-t998-g99", "s0001-t999-g99", "s0001-t999-g100", "s0001-t1000-g00", "s0001-t1000-g100"]);
    // What sorting the strings gave.
    let mut by_string = ids.clone();
    by_string.sort();
    assert_ne!(by_string, ids);
}
