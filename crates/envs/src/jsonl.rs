//! `jsonl:PATH`: a user's own tasks, one JSON object per line:
//! `{"prompt": …, "answer": …, "checker": "exact" | "numeric" | "regex" | "choice", "id"?,
//! "rel_tol"?, "abs_tol"?, "pattern"?, "demonstration"?}`. A malformed file is reported with
//! every bad line's number, before any episode runs.
//!
//! `demonstration` (a string, or a list of strings) is the assistant's worked solution, turn by
//! turn — a turn that calls a tool writes the call in the usual `<tool_call>` form and the tool
//! really runs when SFT replays it; the last turn gives the answer. Tasks with one are what
//! `kaizen train`'s SFT cold start trains on; a file without any has no SFT data.

use crate::ANSWER_FORMAT;
use kaizen_core::{Checker, Env, Task};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

pub struct JsonlEnv {
    name: String,
    tasks: Vec<Task>,
    /// Worked solutions by (task id, prompt): ids need not be unique in a user's file.
    demonstrations: HashMap<(String, String), Vec<String>>,
}

impl JsonlEnv {
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let source = path.display().to_string();
        Self::parse(kaizen_core::jsonl::utf8(&bytes, &source)?, &source)
    }

    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        let mut tasks = Vec::new();
        let mut demonstrations = HashMap::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match parse_line(line, i + 1) {
                Ok((t, demo)) => {
                    if let Some(turns) = demo {
                        demonstrations.insert((t.id.clone(), t.prompt.clone()), turns);
                    }
                    tasks.push(t)
                }
                Err(e) => errors.push(format!("{source} line {}: {e}", i + 1)),
            }
        }
        if !errors.is_empty() {
            let more = if errors.len() > 10 { format!("\n… and {} more", errors.len() - 10) } else { String::new() };
            return Err(format!("{}{more}", errors.into_iter().take(10).collect::<Vec<_>>().join("\n")));
        }
        if tasks.is_empty() {
            return Err(format!("{source} holds no tasks"));
        }
        Ok(JsonlEnv { name: format!("jsonl:{source}"), tasks, demonstrations })
    }

    /// Tasks given in memory (a self-evolution run's freshly written tasks), shown and checked
    /// as a task file's would be; no demonstrations.
    pub fn from_tasks(name: &str, tasks: Vec<Task>) -> Self {
        JsonlEnv { name: format!("jsonl:{name}"), tasks, demonstrations: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// One line's task and its worked solution, if it gives one.
fn parse_line(line: &str, number: usize) -> Result<(Task, Option<Vec<String>>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e})"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let prompt = s("prompt").filter(|p| !p.trim().is_empty()).ok_or("missing \"prompt\" (a non-empty string)")?;
    let answer = match v.get("answer") {
        Some(Value::String(a)) => a.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("missing \"answer\" (a string or number)".into()),
    };
    let f = |k: &str, d: f64| v.get(k).and_then(Value::as_f64).unwrap_or(d);
    let checker = match s("checker").unwrap_or("exact") {
        "exact" => Checker::Exact,
        "numeric" => Checker::Numeric { rel_tol: f("rel_tol", 1e-6), abs_tol: f("abs_tol", 0.0) },
        "regex" => Checker::Regex { pattern: s("pattern").unwrap_or(&answer).to_string() },
        "choice" | "multiple_choice" => Checker::MultipleChoice,
        other => return Err(format!("unknown checker '{other}' (allowed: exact, numeric, regex, choice)")),
    };
    checker.validate()?;
    if matches!(checker, Checker::Numeric { .. }) && kaizen_core::parse_number(&answer).is_none() {
        return Err(format!("\"answer\" {answer:?} is not a number, so the numeric checker could never pass it"));
    }
    let demonstration = match v.get("demonstration") {
        None | Some(Value::Null) => None,
        Some(Value::String(turn)) => Some(vec![turn.clone()]),
        Some(Value::Array(turns)) => {
            let turns: Option<Vec<String>> = turns.iter().map(|t| t.as_str().map(String::from)).collect();
            Some(
                turns
                    .filter(|t| !t.is_empty())
                    .ok_or("\"demonstration\" must be a string or a non-empty list of strings")?,
            )
        }
        Some(_) => return Err("\"demonstration\" must be a string or a non-empty list of strings".into()),
    };
    if demonstration.as_ref().is_some_and(|turns| turns.iter().any(|t| t.trim().is_empty())) {
        return Err("\"demonstration\" has an empty turn".into());
    }
    let task = Task {
        id: s("id").map(String::from).unwrap_or_else(|| format!("line-{number}")),
        prompt: prompt.to_string(),
        answer,
        checker,
        meta: v.get("meta").cloned().unwrap_or(Value::Null),
        images: task_images(&v)?,
    };
    Ok((task, demonstration))
}

/// The line's `"images"`: a list of `data:` URLs, each a PNG or JPEG that decodes within the
/// limits `kaizen_tools::image` sets (so a bad picture is refused at load, not mid-run).
fn task_images(v: &Value) -> Result<Vec<String>, String> {
    let Some(list) = v.get("images").filter(|i| !i.is_null()) else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or("\"images\" must be a list of data: URLs")?;
    list.iter()
        .enumerate()
        .map(|(i, url)| {
            let url = url.as_str().ok_or(format!("\"images\"[{i}] must be a string (a data: URL)"))?;
            kaizen_tools::image::decode_url(url).map_err(|e| format!("\"images\"[{i}]: {e}"))?;
            Ok(url.to_string())
        })
        .collect()
}

impl Env for JsonlEnv {
    fn name(&self) -> &str {
        &self.name
    }

    fn system_prompt(&self) -> String {
        format!("You are a helpful assistant. You can call tools when they help. {ANSWER_FORMAT}")
    }

    fn tool_names(&self) -> Vec<String> {
        kaizen_tools::ToolRegistry::standard_names()
    }

    fn demonstration(&self, task: &Task) -> Option<Vec<String>> {
        self.demonstrations.get(&(task.id.clone(), task.prompt.clone())).cloned()
    }

    /// `n` tasks in file order, starting at `seed` modulo the file length and wrapping around.
    fn tasks(&self, seed: u64, n: usize) -> Vec<Task> {
        if self.tasks.is_empty() {
            return Vec::new();
        }
        let start = (seed % self.tasks.len() as u64) as usize;
        (0..n).map(|i| self.tasks[(start + i) % self.tasks.len()].clone()).collect()
    }
}

#[cfg(test)]
#[path = "jsonl_tests.rs"]
mod tests;
