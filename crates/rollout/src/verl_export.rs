//! Tasks as verl's RL dataset (`kaizen export verl`): a Parquet file with verl's columns and a
//! `compute_score` reward file, so an env's task stream — or a self-evolution task pool
//! (`jsonl:RUN/iter-N/pool.jsonl`) — trains on a GPU cluster with verl. Schema:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `data_source` | string | the env (`arith`, `jsonl:…`) |
//! | `prompt` | list<struct<role, content>> | chat messages: the env's system turn, worked examples, the task |
//! | `ability` | string | `tool-use` |
//! | `reward_model` | struct<style, ground_truth> | `rule` and the reference answer (a pool's pseudo-label) |
//! | `extra_info` | struct<split, index, task_id, checker, rel_tol?, abs_tol?, p_hat?> | the checker `compute_score` applies, a numeric one's tolerances; a pool task's `p̂` |
//!
//! The worked examples' tool turns are flattened into assistant and tool messages (verl's
//! multi-turn chat templates take the `tool` role); the tools themselves are configured in
//! verl (e.g. its sandbox tool), not here.

use crate::columnar::{list_levels, write_row_group};
use kaizen_core::{Checker, Message, Task};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use std::path::Path;

const SCHEMA: &str = "message verl_task {
  REQUIRED BYTE_ARRAY data_source (UTF8);
  REQUIRED GROUP prompt (LIST) { REPEATED GROUP list { REQUIRED GROUP element { REQUIRED BYTE_ARRAY role (UTF8); REQUIRED BYTE_ARRAY content (UTF8); } } }
  REQUIRED BYTE_ARRAY ability (UTF8);
  REQUIRED GROUP reward_model { REQUIRED BYTE_ARRAY style (UTF8); REQUIRED BYTE_ARRAY ground_truth (UTF8); }
  REQUIRED GROUP extra_info { REQUIRED BYTE_ARRAY split (UTF8); REQUIRED INT64 index; REQUIRED BYTE_ARRAY task_id (UTF8); REQUIRED BYTE_ARRAY checker (UTF8); OPTIONAL DOUBLE rel_tol; OPTIONAL DOUBLE abs_tol; OPTIONAL DOUBLE p_hat; }
}";

/// The reward file verl loads (`custom_reward_function.path`, name `compute_score`). It reads
/// the final answer as kaizen does (the last `\boxed{…}` or `<answer>…</answer>`) and checks
/// it as kaizen's checkers do (`kaizen_core::task::Checker`): numbers within the task's
/// `abs_tol + rel_tol·|truth|` after dropping `$ , %`, fractions `a/b`; exact text up to
/// whitespace; a choice letter; a whole-string regex.
pub const COMPUTE_SCORE_PY: &str = r#"# Written by `kaizen export verl`: verl's reward function for kaizen tasks.
# Mirrors kaizen's checkers (crates/core/src/task.rs): numeric, exact, choice, regex.
import re


def _boxed(text):
    at = text.rfind("\\boxed{")
    if at < 0:
        return None
    i, depth, out = at + len("\\boxed{"), 1, []
    while i < len(text):
        c = text[i]
        depth += c == "{"
        depth -= c == "}"
        if depth == 0:
            return at, "".join(out).strip()
        out.append(c)
        i += 1
    return None


def final_answer(text):
    """The last \\boxed{...} or <answer>...</answer>, whichever comes later (kaizen's rule)."""
    boxed = _boxed(text)
    tagged = None
    at = text.rfind("<answer>")
    if at >= 0:
        end = text.find("</answer>", at)
        if end >= 0:
            tagged = at, text[at + len("<answer>"):end].strip()
    found = [x for x in (boxed, tagged) if x is not None]
    return max(found)[1] if found else None


def _number(s):
    t = s.strip().rstrip(".")
    for c in "$€£%,":
        t = t.replace(c, "")
    t = t.strip()
    if "/" in t:
        a, _, b = t.partition("/")
        try:
            a, b = float(a), float(b)
        except ValueError:
            return None
        return a / b if b != 0 else None
    try:
        return float(t)
    except ValueError:
        pass
    for w in re.split(r"[\s=]+", t):
        try:
            return float(w)
        except ValueError:
            continue
    return None


def _letter(s):
    t = s.strip().lstrip("(").rstrip(".):")
    return t.upper() if len(t) == 1 and t.isalpha() else None


def check(answer, truth, checker, rel_tol=1e-6, abs_tol=0.0):
    if checker == "numeric":
        a, b = _number(answer), _number(truth)
        return a is not None and b is not None and abs(a - b) <= abs_tol + rel_tol * abs(b)
    if checker == "choice":
        return _letter(answer) is not None and _letter(answer) == _letter(truth)
    if checker == "regex":
        return re.fullmatch("(?:" + truth + ")", answer.strip()) is not None
    return " ".join(answer.split()) == " ".join(truth.split())


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    answer = final_answer(solution_str)
    if answer is None:
        return 0.0
    info = extra_info or {}
    rel = info.get("rel_tol")
    tol = info.get("abs_tol")
    ok = check(answer, ground_truth, info.get("checker", "exact"), 1e-6 if rel is None else rel, tol or 0.0)
    return 1.0 if ok else 0.0
"#;

/// The checker's name in `extra_info.checker`, or an error for one `compute_score` cannot
/// apply (an env that scores on its own page).
fn checker_name(c: &Checker) -> Result<(&'static str, Option<String>), String> {
    match c {
        Checker::Numeric { .. } => Ok(("numeric", None)),
        Checker::Exact => Ok(("exact", None)),
        Checker::MultipleChoice => Ok(("choice", None)),
        Checker::Regex { pattern } => Ok(("regex", Some(pattern.clone()))),
        Checker::Env => Err("tasks scored by their env (web pages) have no answer a reward file can check".into()),
    }
}

/// One exported row.
pub struct Row {
    pub messages: Vec<(String, String)>,
    pub ground_truth: String,
    pub task_id: String,
    pub checker: &'static str,
    /// A numeric checker's tolerances.
    pub tolerances: Option<(f64, f64)>,
    pub p_hat: Option<f64>,
}

/// The rows of `tasks`, each prompted as `opening` (system turn and worked examples) then the
/// task. A regex task's ground truth is its pattern.
pub fn rows(tasks: &[Task], opening: &[Message]) -> Result<Vec<Row>, String> {
    tasks
        .iter()
        .map(|t| {
            let (checker, pattern) = checker_name(&t.checker).map_err(|e| format!("task {}: {e}", t.id))?;
            let mut messages: Vec<(String, String)> =
                opening.iter().map(|m| (m.role.as_str().to_string(), m.content.clone())).collect();
            messages.push(("user".into(), t.prompt.clone()));
            Ok(Row {
                messages,
                ground_truth: pattern.unwrap_or_else(|| t.answer.clone()),
                task_id: t.id.clone(),
                checker,
                tolerances: match t.checker {
                    Checker::Numeric { rel_tol, abs_tol } => Some((rel_tol, abs_tol)),
                    _ => None,
                },
                p_hat: t.meta.get("p_hat").and_then(|p| p.as_f64()),
            })
        })
        .collect()
}

/// Writes `rows` as verl's dataset Parquet at `path`.
pub fn write(rows: &[Row], data_source: &str, split: &str, path: &Path) -> Result<(), String> {
    let bytes = |s: &str| ByteArray::from(s.as_bytes().to_vec());
    let each = |f: &dyn Fn(&Row) -> String| rows.iter().map(|r| bytes(&f(r))).collect::<Vec<_>>();
    let (def, rep) = list_levels(rows.iter().map(|r| r.messages.len()));
    write_row_group(path, SCHEMA, |col, c| {
        match col {
            0 => c.typed::<ByteArrayType>().write_batch(&each(&|_| data_source.to_string()), None, None),
            1 | 2 => {
                let v: Vec<ByteArray> = rows
                    .iter()
                    .flat_map(|r| r.messages.iter().map(|(role, content)| bytes(if col == 1 { role } else { content })))
                    .collect();
                c.typed::<ByteArrayType>().write_batch(&v, Some(&def), Some(&rep))
            }
            3 => c.typed::<ByteArrayType>().write_batch(&each(&|_| "tool-use".into()), None, None),
            4 => c.typed::<ByteArrayType>().write_batch(&each(&|_| "rule".into()), None, None),
            5 => c.typed::<ByteArrayType>().write_batch(&each(&|r| r.ground_truth.clone()), None, None),
            6 => c.typed::<ByteArrayType>().write_batch(&each(&|_| split.to_string()), None, None),
            7 => c.typed::<Int64Type>().write_batch(&(0..rows.len() as i64).collect::<Vec<_>>(), None, None),
            8 => c.typed::<ByteArrayType>().write_batch(&each(&|r| r.task_id.clone()), None, None),
            9 => c.typed::<ByteArrayType>().write_batch(&each(&|r| r.checker.to_string()), None, None),
            10 | 11 => {
                let v: Vec<f64> =
                    rows.iter().filter_map(|r| r.tolerances.map(|t| if col == 10 { t.0 } else { t.1 })).collect();
                let def: Vec<i16> = rows.iter().map(|r| r.tolerances.is_some() as i16).collect();
                c.typed::<DoubleType>().write_batch(&v, Some(&def), None)
            }
            12 => {
                let v: Vec<f64> = rows.iter().filter_map(|r| r.p_hat).collect();
                let def: Vec<i16> = rows.iter().map(|r| r.p_hat.is_some() as i16).collect();
                c.typed::<DoubleType>().write_batch(&v, Some(&def), None)
            }
            _ => return Err("schema has more columns than the writer knows".into()),
        }
        .map(|_| ())
        .map_err(|e| e.to_string())
    })
}
