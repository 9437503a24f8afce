//! Unit tests of `page` (kept in their own file beside it).

use super::*;

/// A two-turn episode: a calculator call with a screenshot-bearing observation and two
/// candidates, then the answer. Generated tokens (mask 1) are ids 7, 8 and 9.
pub(crate) fn trajectory() -> Trajectory {
    serde_json::from_value(json!({
        "schema_version": 1, "episode_id": "00003-01", "env": "arith", "policy": "smollm2", "seed": 5,
        "task": {"id": "t3", "prompt": "What is 6*7? </script><b>", "answer": "42", "checker": {"kind": "exact"}},
        "turns": [
            {"text": "<tool_call>", "tool_calls": [{"id": "c", "name": "calculator", "arguments": {"expr": "6*7"}}],
             "malformed": [], "observations": [{"content": "42", "ok": true, "elapsed_ms": 1.0,
             "images": ["data:image/png;base64,iVBORw0KGgo="]}], "generated_tokens": 2,
             "candidates": [{"text": "calc 6*7", "logprob": -1.5, "score": 0.9, "chosen": true},
                            {"text": "answer 41", "logprob": -0.5, "score": 0.2, "chosen": false}]},
            {"text": "\\boxed{42}", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 1}
        ],
        "token_ids": [1, 2, 7, 8, 3, 9], "loss_mask": [0, 0, 1, 1, 0, 1], "logprobs": [0.0, 0.0, -0.1, -2.0, 0.0, -0.01],
        "prompt_tokens": 2, "final_answer": "42", "reward": 1.0, "end": {"kind": "answered"},
        "timing": {"generation_ms": 1.0, "tool_ms": 1.0, "total_ms": 2.0}
    }))
    .unwrap()
}

#[test]
fn an_episode_carries_its_transcript_candidates_and_policy_tokens() {
    let e = episode(2, &trajectory(), Some(vec!["a".into(), "b".into(), "c".into()]));
    assert_eq!((e["run"].as_u64(), e["end"].as_str(), e["tools"].as_bool()), (Some(2), Some("answered"), Some(true)));
    assert_eq!(e["tokens"], json!({"text": ["a", "b", "c"], "logprob": [-0.1, -2.0, -0.01]}));
    assert_eq!(e["turns"][0]["candidates"][1]["score"], json!(0.2f32));
    assert_eq!(e["turns"][0]["observations"][0]["images"][0], "data:image/png;base64,iVBORw0KGgo=");
    // Without token texts (or with the wrong number), the heat-map shows ids.
    let e = episode(0, &trajectory(), Some(vec!["a".into()]));
    assert_eq!(e["tokens"]["text"], json!(["#7", "#8", "#9"]));
}

/// The page's data, unpacked as the browser does (base64, then gzip).
fn unpacked(html: &str) -> Value {
    use base64::Engine;
    use std::io::Read;
    let start = html.find("id=\"kaizen-data\">").unwrap() + "id=\"kaizen-data\">".len();
    let b64 = &html[start..start + html[start..].find("</script>").unwrap()];
    let gz = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_page_is_self_contained_and_escapes_what_runs_wrote() {
    let run = Run {
        name: "runs/<x>".into(),
        path: "runs/x".into(),
        metrics: vec![
            json!({"phase": "rl", "step": 0, "reward": 0.25}),
            json!({"phase": "rl", "step": 1, "reward": 0.5}),
        ],
        trajectories: vec![trajectory()],
        summary: Some(json!({"episodes": 1, "success_rate": 1.0, "env": "arith"})),
        best_of_q: Some(json!({"env": "arith", "policy": "smollm2", "candidates": 4, "held_out_by_content": true,
            "tasks": ["a", "b"], "rows": [
                {"selection": "policy, sampled", "successes": 1, "tasks": 2, "lo": 0.0945, "hi": 0.9055, "vs_sampled": null},
                {"selection": "Best-of-Q", "successes": 2, "tasks": 2, "lo": 0.3424, "hi": 1.0,
                 "vs_sampled": {"difference": 0.5, "lo": 0.0, "hi": 1.0}, "vs_random": null}]})),
        prm: Some(
            json!({"env": "arith:1", "policy": "smollm2", "verifier": "tiny<v>", "candidates": 8, "tasks": ["a", "b"],
            "steps": 16, "unreadable": 4, "rows": [
                {"selection": "verifier (PRM)", "successes": 2, "tasks": 2, "lo": 0.3424, "hi": 1.0, "prm_vs": null},
                {"selection": "majority vote", "successes": 1, "tasks": 2, "lo": 0.0945, "hi": 0.9055,
                 "prm_vs": {"difference": 0.5, "lo": 0.0, "hi": 1.0}}]}),
        ),
        evolution: vec![
            json!({"iteration": 0, "held_out": [{"set": "arith", "tasks": 50, "solved": 20, "accuracy": 0.4, "low": 0.276, "high": 0.538}]}),
            json!({"iteration": 1, "held_out": [{"set": "arith", "tasks": 50, "solved": 22, "accuracy": 0.44, "low": 0.312, "high": 0.577}],
                   "curriculum": {"mean_reward": 0.3124}, "pool": {"kept": 5, "judged": 20},
                   "tasks": {"executor_pass_rate": 0.61, "tool_calls_per_task": 1.25, "clusters": 18, "largest_cluster": 2,
                             "format_failure_rate": 0.15, "samples": ["Add 2 & 3 → 5 (p̂ 0.60)"]}}),
        ],
        warnings: vec!["metrics.jsonl line 3: cut short".into()],
    };
    let html = render(&[run], &|_, _| None).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "a URL in the page");
    assert!(!html.contains("<script src") && !html.contains("<link"), "an external resource");
    assert_eq!(html.matches("<svg").count(), 1, "one metric, one chart");
    assert!(html.contains("runs/&lt;x&gt;") && !html.contains("<x>"));
    assert!(html.contains("cut short"));
    assert!(html.contains("N = 4, 2 tasks held out by content"), "{html}");
    assert!(
        html.contains("<td>Best-of-Q</td><td>100.0% (2/2)</td><td>34.2–100.0%</td><td>+50.0 pts (+0.0 to +100.0)</td>"),
        "{html}"
    );
    // The PRM table: who judged whom, the unreadable steps, each pick with the paired difference.
    assert!(html.contains("Verifier as PRM: tiny&lt;v&gt; judging smollm2 on arith:1, N = 8, 2 tasks held out by seed; 4 of 16 judged steps unreadable"), "{html}");
    assert!(
        html.contains(
            "<td>majority vote</td><td>50.0% (1/2)</td><td>9.4–90.5%</td><td>+50.0 pts (+0.0 to +100.0)</td>"
        ),
        "{html}"
    );
    // The evolve table: the base row and iteration 1, values as written, text escaped.
    assert!(html.contains("<td>0</td><td>arith 40.0% (27.6–53.8%, 20/50)</td><td>—</td>"), "{html}");
    assert!(
        html.contains("<td>1</td><td>arith 44.0% (31.2–57.7%, 22/50)</td><td>0.61</td><td>1.25</td><td>5 / 20</td><td>18 (2)</td><td>15%</td><td>0.312</td><td>Add 2 &amp; 3 → 5 (p̂ 0.60)</td>"),
        "{html}"
    );
    // Per-task table: 1 of 1 solved, Wilson (0.2065, 1).
    assert!(html.contains("<td>all episodes</td><td>1</td><td>100.0%</td><td>20.7–100.0%</td>"), "{html}");
    assert_eq!(html.matches("</script>").count(), 2, "the task's </script> stays inside the packed data");
    let data = unpacked(&html);
    assert_eq!(data["runs"], json!(["runs/<x>"]));
    assert_eq!(data["episodes"][0]["prompt"], "What is 6*7? </script><b>");
    // Agent0-VL's cycle: its own table, read from the same file name.
    let cycle = Run {
        evolution: vec![json!({"iteration": 1, "set": "shape-grid:test",
            "solver": {"tasks": 200, "solved": 150, "low": 0.686, "high": 0.805},
            "repaired": {"tasks": 200, "solved": 152, "low": 0.696, "high": 0.814},
            "repairs": 9, "episodes_repaired": 8, "wrong_to_right": 4, "right_to_wrong": 2, "declined": 3, "unreadable": 0.125,
            "prm": {"candidates": 4, "prm": {"tasks": 200, "solved": 151, "low": 0.69, "high": 0.81},
                    "majority": {"tasks": 200, "solved": 149, "low": 0.68, "high": 0.8}, "random": {"tasks": 200, "solved": 140},
                    "oracle": {"tasks": 200, "solved": 170}},
            "training": {"mean_reward": 0.71}})],
        name: "runs/vl".into(),
        path: "runs/vl".into(),
        metrics: vec![],
        trajectories: vec![],
        summary: None,
        best_of_q: None,
        prm: None,
        warnings: vec![],
    };
    let cycle_html = render(&[cycle], &|_, _| None).unwrap();
    assert!(cycle_html.contains("Agent0-VL cycle") && !cycle_html.contains("Self-evolution (Agent0)"), "{cycle_html}");
    assert!(
        cycle_html.contains("<td>1</td><td>75.0% (68.6–80.5%, 150/200)</td><td>76.0% (69.6–81.4%, 152/200)</td><td>9 (8)</td><td>4</td><td>2</td><td>3</td><td>12%</td><td>75.5% (69.0–81.0%, 151/200) (N = 4)</td><td>74.5% (68.0–80.0%, 149/200)</td>"),
        "{cycle_html}"
    );
    assert!(cycle_html.contains("<td>0.710</td></tr>"), "{cycle_html}");
}
