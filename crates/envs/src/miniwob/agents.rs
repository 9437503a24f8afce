//! Reference agents for web tasks, as `Policy`s so they run through the same episode runner
//! as a model: they read only what a model reads (the rendered page in the chat) and write
//! tool calls as text. The oracle solves every `miniwob-easy` task (proof that instructions,
//! rendering, actions and rewards are wired right); the random agent clicks anything (the
//! floor every policy must beat).

use super::dom::{self, Element};
use kaizen_core::tool_call::format_call;
use kaizen_core::{ChatRequest, Completion, FinishReason, Policy, PolicyError, Role};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Tasks the oracle solves.
pub const ORACLE_TASKS: &[&str] = super::EASY;

/// The instruction and the latest page of the chat (what a model would read).
fn view(req: &ChatRequest) -> (String, Vec<Element>) {
    let first = req.messages.iter().find(|m| m.role == Role::User).map(|m| m.content.as_str()).unwrap_or("");
    let utterance = first.strip_prefix("Task: ").and_then(|t| t.lines().next()).unwrap_or("").to_string();
    let latest = req.messages.iter().rev().find(|m| m.content.contains("Page:\n")).map(|m| m.content.as_str());
    let page = latest.and_then(|c| c.split_once("Page:\n")).map(|(_, p)| p).unwrap_or("");
    (utterance, dom::parse(page))
}

/// The strings between double quotes, in order.
fn quoted(s: &str) -> Vec<String> {
    s.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

fn call(name: &str, arguments: Value) -> String {
    format_call(name, &arguments)
}

fn reply(text: String) -> Vec<Completion> {
    vec![Completion { text, token_ids: vec![], logprobs: vec![], finish_reason: FinishReason::Stop, prompt_tokens: 0 }]
}

fn find<'a>(els: &'a [Element], pred: impl Fn(&Element) -> bool) -> Option<&'a Element> {
    els.iter().find(|e| pred(e))
}

/// Fills `field` with `want` unless it already holds it.
fn fill(field: Option<&Element>, want: &str) -> Option<String> {
    let f = field?;
    (f.value.as_deref() != Some(want)).then(|| call("type", json!({"ref": f.r#ref, "text": want})))
}

fn click(el: Option<&Element>) -> Option<String> {
    el.map(|e| call("click", json!({"ref": e.r#ref})))
}

/// The oracle's next action for a page, or `None` when it does not know the task.
pub fn oracle_action(utterance: &str, els: &[Element]) -> Option<String> {
    let q = quoted(utterance);
    let button = |label: &str| find(els, |e| e.tag == "button" && e.text.eq_ignore_ascii_case(label));
    let text_fields: Vec<&Element> = els.iter().filter(|e| e.tag.starts_with("input_")).collect();
    if utterance == "Click the button." {
        return click(find(els, |e| e.tag == "button"));
    }
    if let Some(label) = utterance.strip_prefix("Click button ").and_then(|r| r.strip_suffix('.')) {
        return click(button(label));
    }
    if utterance.starts_with("Click on the \"") && utterance.ends_with("\" button.") {
        return click(button(q.first()?));
    }
    if utterance.starts_with("Click on the link") {
        let label = q.first()?;
        return click(find(els, |e| (e.tag == "a" || e.class.contains("link")) && &e.text == label));
    }
    if utterance == "Focus into the textbox." {
        return click(text_fields.first().copied());
    }
    // "Focus into the 3rd input textbox."
    if let Some(nth) = utterance.strip_prefix("Focus into the ").and_then(|r| r.strip_suffix(" input textbox.")) {
        let n: usize = nth.trim_end_matches(|c: char| c.is_ascii_alphabetic()).parse().ok()?;
        let boxes: Vec<&Element> = els.iter().filter(|e| e.tag == "input_text").collect();
        return click(boxes.get(n.checked_sub(1)?).copied());
    }
    if utterance.starts_with("Close the dialog box") {
        return click(find(els, |e| e.tag == "button"));
    }
    if utterance.starts_with("Click on a \"") && utterance.ends_with("\" widget.") {
        let tag = match q.first()?.as_str() {
            "radio" => "input_radio",
            "checkbox" => "input_checkbox",
            "text" => "input_text",
            other => other,
        };
        return click(find(els, |e| e.tag == tag));
    }
    if utterance.starts_with("Enter \"") && utterance.ends_with("into the text field and press Submit.") {
        return fill(text_fields.first().copied(), q.first()?).or_else(|| click(button("submit")));
    }
    if utterance.starts_with("Enter the password") {
        let pw = q.first()?;
        let fields: Vec<&Element> = els.iter().filter(|e| e.tag == "input_password").collect();
        return fields.iter().find_map(|f| fill(Some(f), pw)).or_else(|| click(button("submit")));
    }
    if utterance.starts_with("Enter the username") {
        let (user, pw) = (q.first()?, q.get(1)?);
        return fill(find(els, |e| e.id == "username"), user)
            .or_else(|| fill(find(els, |e| e.id == "password"), pw))
            .or_else(|| click(button("login")));
    }
    None
}

/// Solves `ORACLE_TASKS` from the rendered page; says so when given any other task.
pub struct Oracle;

impl Policy for Oracle {
    fn name(&self) -> &str {
        "oracle"
    }
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let (utterance, els) = view(req);
        Ok(reply(oracle_action(&utterance, &els).unwrap_or_else(|| "I do not know how to do this task.".into())))
    }
}

/// Clicks a uniformly chosen element of the latest page (seeded by the turn's seed).
pub struct RandomClicker;

impl Policy for RandomClicker {
    fn name(&self) -> &str {
        "random"
    }
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let (_, els) = view(req);
        let mut rng = rand::rngs::StdRng::seed_from_u64(req.params.seed);
        Ok(reply(match els.len() {
            0 => "There is nothing to click.".into(),
            n => call("click", json!({"ref": els[rng.random_range(0..n)].r#ref})),
        }))
    }
}

#[cfg(test)]
#[path = "agents_tests.rs"]
mod tests;
