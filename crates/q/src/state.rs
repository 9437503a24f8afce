//! What a Q-function reads: the text of a state (the task and its latest history, cut to what a
//! sentence encoder reads), the text of an action (`describe_action`, one representation for
//! the runner, `kaizen q train` and the Best-of-Q proxy), the `ActionScorer` a selector calls,
//! and the pick among scored candidates (`best_index`).

use kaizen_core::{Message, Role};

/// Scores candidate actions in a state (a Q-function): one score per action, higher better.
pub trait ActionScorer: Send + Sync {
    /// `state` is the state's text (task and recent history), `picture` its latest picture
    /// (`picture::latest_picture`; a Q-function trained without pictures ignores it); each
    /// action is its text (as the env describes it) and the policy's log-prob.
    fn score(&self, state: &str, picture: Option<&str>, actions: &[(String, f32)]) -> Result<Vec<f32>, String>;
}

/// The state as the scorer reads it, from `(role, content)` turns: the last user turn is the
/// task, every turn after it a `role: content` line of history. What comes before the task —
/// the system turn, worked examples (few-shot), earlier requests of a chat — is left out, so a
/// state reads the same with or without examples in the prompt.
pub fn state_parts<'m>(turns: impl IntoIterator<Item = (&'m str, &'m str)>) -> (String, Vec<String>) {
    let turns: Vec<(&str, &str)> = turns.into_iter().collect();
    let Some(at) = turns.iter().rposition(|(role, _)| *role == Role::User.as_str()) else {
        return (String::new(), Vec::new());
    };
    let history = turns[at + 1..].iter().map(|(role, content)| format!("{role}: {content}")).collect();
    (turns[at].1.to_string(), history)
}

pub fn state_of(messages: &[Message]) -> (String, Vec<String>) {
    state_parts(messages.iter().map(|m| (m.role.as_str(), m.content.as_str())))
}

/// The state of a chat in OpenAI's wire form (the Best-of-Q proxy's requests, and its logs that
/// `kaizen q train` reads): the task, the history, and the latest picture from the task's turn
/// on. Each message reads as `kaizen serve` reads it (text parts joined, `image_url` parts as
/// pictures); one that does not parse still counts as a turn — its role and string content, or
/// empty — so the turns line up as they did for the upstream server.
pub fn wire_state(messages: &serde_json::Value) -> (String, Vec<String>, Option<String>) {
    let raw = messages.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let parsed: Vec<Option<Message>> = raw
        .iter()
        .map(|m| serde_json::from_value::<kaizen_core::openai::WireMessage>(m.clone()).ok()?.to_message().ok())
        .collect();
    let turns = raw.iter().zip(&parsed).map(|(m, p)| match p {
        Some(p) => (p.role.as_str(), p.content.as_str()),
        None => (m["role"].as_str().unwrap_or(""), m["content"].as_str().unwrap_or("")),
    });
    let (task, history) = state_parts(turns);
    let task_turn = raw.iter().zip(&parsed).rposition(|(m, p)| match p {
        Some(p) => p.role == Role::User,
        None => m["role"] == "user",
    });
    let picture = task_turn.and_then(|at| parsed[at..].iter().flatten().rev().find_map(|m| m.images.last().cloned()));
    (task, history, picture)
}

/// The whole state, uncut: what an env reads to describe an action (the latest page of a web
/// task may lie beyond `state_text`'s cut).
pub fn full_state(task: &str, history: &[String]) -> String {
    format!("{task}\n{}", history.join("\n"))
}

/// An action as the Q-function reads it, one representation for the runner, `kaizen q
/// train` and the Best-of-Q proxy alike: a tool call that names an element (`"ref": N`) whose
/// line `[N] …` is in the state becomes `name{args} on [N] …` (what it acts on, from the latest
/// page in `state`, the *uncut* state of `full_state`); anything else is its own text.
pub fn describe_action(state: &str, action: &str) -> String {
    let call = kaizen_core::parse_tool_calls(action).into_iter().find_map(Result::ok);
    let Some(call) = call else { return action.to_string() };
    let line = call.arguments["ref"].as_i64().and_then(|r| {
        let tag = format!("[{r}] ");
        state.lines().rev().map(str::trim_start).find(|l| l.starts_with(&tag)).map(str::to_string)
    });
    match line {
        Some(l) => format!("{}{} on {l}", call.name, call.arguments),
        None => action.to_string(),
    }
}

/// `index = argmax score`, ties to the higher log-prob, then to the earlier candidate.
pub fn best_index(scores: &[f32], logprobs: &[f32]) -> usize {
    (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(logprobs[a].total_cmp(&logprobs[b])).then(b.cmp(&a)))
        .unwrap_or(0)
}

/// Characters of the task kept at the front of a state, and of the latest history at its end
/// (a sentence encoder reads ~256 word pieces; the middle of a long history matters least).
const TASK_CHARS: usize = 600;
const RECENT_CHARS: usize = 900;

/// The text of a state: the task, then as much of the most recent history as fits.
pub fn state_text(task: &str, history: &[String]) -> String {
    let task: String = task.chars().take(TASK_CHARS).collect();
    let recent = history.join("\n");
    let n = recent.chars().count();
    let tail: String = recent.chars().skip(n.saturating_sub(RECENT_CHARS)).collect();
    if tail.is_empty() {
        task
    } else {
        format!("{task}\n{tail}")
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
