//! Unit tests of `jsonl` (kept in their own file beside it).

use super::*;

#[test]
fn reads_every_checker_and_reports_bad_lines_by_number() {
    let good = r#"{"prompt": "2+2?", "answer": 4, "checker": "numeric"}
{"id": "cap", "prompt": "Capital of France?", "answer": "Paris"}

{"prompt": "Pick", "answer": "B", "checker": "choice"}
{"prompt": "Fruit?", "answer": "x", "checker": "regex", "pattern": "(apple|pear)s?"}"#;
    let env = JsonlEnv::parse(good, "t.jsonl").unwrap();
    assert_eq!(env.len(), 4);
    let t = env.tasks(1, 5);
    assert_eq!(t[0].id, "cap");
    assert_eq!(t[4].id, "cap"); // wraps around
    assert_eq!(t[3].reward(Some("4.0")), 1.0);
    assert_eq!(t[2].reward(Some("pears")), 1.0);

    let bad = "{\"prompt\": \"a\"}\nnot json\n{\"prompt\": \"b\", \"answer\": 1, \"checker\": \"fuzzy\"}\n{\"prompt\": \"c\", \"answer\": \"1\", \"checker\": \"regex\", \"pattern\": \"(\"}";
    let err = JsonlEnv::parse(bad, "bad.jsonl").err().unwrap();
    assert!(err.contains("bad.jsonl line 1: missing \"answer\""), "{err}");
    assert!(err.contains("line 2: not valid JSON"), "{err}");
    assert!(err.contains("line 3: unknown checker 'fuzzy'"), "{err}");
    assert!(err.contains("line 4: bad regex"), "{err}");
    assert!(JsonlEnv::parse("\n\n", "empty.jsonl").err().unwrap().contains("no tasks"));
}

#[test]
fn a_numeric_answer_that_is_no_number_is_refused_at_load() {
    let err =
        JsonlEnv::parse(r#"{"prompt": "2+2?", "answer": "four", "checker": "numeric"}"#, "t.jsonl").err().unwrap();
    assert!(err.contains("t.jsonl line 1: \"answer\" \"four\" is not a number"), "{err}");
    // Numbers as people write them still load.
    assert!(JsonlEnv::parse(r#"{"prompt": "x", "answer": "1,234.5", "checker": "numeric"}"#, "t").is_ok());
}

#[test]
fn invalid_utf8_in_a_task_file_names_the_file_and_line() {
    let path = std::env::temp_dir().join(format!("kaizen-utf8-{}.jsonl", std::process::id()));
    std::fs::write(&path, b"{\"prompt\": \"a\", \"answer\": 1}\n{\"prompt\": \"\xff\", \"answer\": 2}\n").unwrap();
    let err = JsonlEnv::load(&path).err().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(err.contains(&format!("{} line 2: not valid UTF-8", path.display())), "{err}");
}

#[test]
fn a_line_may_carry_its_worked_solution() {
    let text = r#"{"id": "a", "prompt": "Is 4 even?", "answer": "yes", "demonstration": "The answer is \\boxed{yes}."}
{"id": "a", "prompt": "Is 5 even?", "answer": "no", "demonstration": ["<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expr\": \"5 % 2\"}}\n</tool_call>", "The answer is \\boxed{no}."]}
{"prompt": "Is 6 even?", "answer": "yes"}"#;
    let env = JsonlEnv::parse(text, "d.jsonl").unwrap();
    let t = env.tasks(0, 3);
    // Same id, different prompts: each keeps its own solution.
    assert_eq!(env.demonstration(&t[0]).unwrap(), vec!["The answer is \\boxed{yes}.".to_string()]);
    let two = env.demonstration(&t[1]).unwrap();
    assert_eq!(two.len(), 2);
    assert!(two[0].starts_with("<tool_call>") && two[1].ends_with("{no}."), "{two:?}");
    assert!(env.demonstration(&t[2]).is_none());
    for (bad, why) in [
        (r#"{"prompt": "p", "answer": "a", "demonstration": 3}"#, "must be a string or a non-empty list"),
        (r#"{"prompt": "p", "answer": "a", "demonstration": []}"#, "must be a string or a non-empty list"),
        (r#"{"prompt": "p", "answer": "a", "demonstration": ["ok", 1]}"#, "must be a string or a non-empty list"),
        (r#"{"prompt": "p", "answer": "a", "demonstration": ["  "]}"#, "has an empty turn"),
    ] {
        let err = JsonlEnv::parse(bad, "b.jsonl").err().unwrap();
        assert!(err.contains("b.jsonl line 1") && err.contains(why), "{err}");
    }
}
