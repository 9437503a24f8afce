//! Unit tests of `rerank` (kept in their own file beside it).

use super::*;

#[test]
fn ties_go_to_the_likelier_then_the_earlier() {
    assert_eq!(best_index(&[0.2, 0.9, 0.9], &[-1.0, -3.0, -2.0]), 2);
    assert_eq!(best_index(&[0.5, 0.5], &[-1.0, -1.0]), 0);
    assert_eq!(best_index(&[], &[]), 0);
}

#[test]
fn states_keep_the_task_and_the_latest_history() {
    assert_eq!(state_text("Add 2 and 3.", &[]), "Add 2 and 3.");
    let long: Vec<String> = (0..200).map(|i| format!("step {i}")).collect();
    let s = state_text("T", &long);
    assert!(s.starts_with("T\n") && s.ends_with("step 199") && !s.contains("step 10\n"));
}

#[test]
fn the_task_is_the_last_user_turn_so_worked_examples_are_not_state() {
    let chat = [
        ("system", "Use tools."),
        ("user", "example task"),
        ("assistant", "example call"),
        ("tool", "example result"),
        ("user", "the task"),
        ("assistant", "a call"),
        ("tool", "42"),
    ];
    let (task, history) = state_parts(chat);
    assert_eq!(task, "the task");
    assert_eq!(history, vec!["assistant: a call".to_string(), "tool: 42".to_string()]);
    assert_eq!(state_parts(chat[4..].iter().copied()), (task, history));
    assert_eq!(state_parts([("system", "s")]), (String::new(), vec![]));
}

#[test]
fn actions_are_described_one_way_for_every_scorer() {
    let page = "Task: click ok\nPage:\n[4] input_text value=\"\"\n[9] button \"ok\"";
    let click = "<tool_call>{\"name\": \"click\", \"arguments\": {\"ref\": 9}}</tool_call>";
    assert_eq!(describe_action(page, click), "click{\"ref\":9} on [9] button \"ok\"");
    // No element line to add, or no call at all: the action's own text.
    let press = "<tool_call>{\"name\": \"press\", \"arguments\": {\"key\": \"Enter\"}}</tool_call>";
    assert_eq!(describe_action(page, press), press);
    assert_eq!(describe_action(page, "I think 4"), "I think 4");
    let calc =
        "Let me add. <tool_call>{\"name\": \"calculator\", \"arguments\": {\"expression\": \"2+2\"}}</tool_call>";
    assert_eq!(describe_action("2+2?", calc), calc);
}
