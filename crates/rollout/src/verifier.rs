//! Agent0-VL's verifier role (`../shared/METHODS.md` §5): the policy itself, prompted as a
//! verifier, reads a task and a solver's steps, may call tools to check them (python, the
//! image tools), and answers with one verdict per step:
//! `<answer>[{"step": 1, "score": 0.5, "confidence": 0.9, "critique": "…"}, …]</answer>`.
//!
//! A verification is an ordinary episode of `VerifierEnv` (the batched engine, the sandbox,
//! pictures, all as for the solver), run by the caller's `Runner`. Reading its answer never
//! fails: a step the verifier said nothing readable about gets `Verdict::NEUTRAL`, counted.
//!
//! Repairs (`RepairEnv`, `repair_task`, `read_patch`): where a verdict is unsure, the same
//! policy writes the smallest correction of the step, and the solver re-derives from that
//! step with it (`Job::repairing`).

use crate::episode::{EpisodeConfig, Job};
use crate::runner::Runner;
use kaizen_core::{Checker, Env, Task, Trajectory, Verdict};

/// The verifier's env: its role prompt and the tools it may check with. Its tasks are written
/// from solver episodes (`verification_task`); it has tasks of its own only as worked
/// verifications for the cold start (`with_examples`).
pub struct VerifierEnv {
    pub tools: Vec<String>,
    /// Verification tasks whose answer is the labelled verdicts, each its own demonstration.
    pub examples: Vec<Task>,
}

impl VerifierEnv {
    pub fn new(tools: Vec<String>) -> Self {
        VerifierEnv { tools, examples: Vec::new() }
    }

    /// Worked verifications of `solvers`, episodes of known correctness, for the verifier's
    /// cold start: each one's verification task, answered with `label_verdicts`.
    pub fn with_examples(tools: Vec<String>, solvers: &[Trajectory]) -> Self {
        let examples = solvers
            .iter()
            .map(|s| Task { answer: verdicts_answer(&label_verdicts(s)), ..verification_task(s) })
            .collect();
        VerifierEnv { tools, examples }
    }
}

impl Env for VerifierEnv {
    fn name(&self) -> &str {
        "verifier"
    }

    fn system_prompt(&self) -> String {
        "You are a careful verifier. You read a task and a solver's steps and judge each step: is it \
         right, and how sure are you? You may call the tools to check a step (run the arithmetic, look \
         at the picture) before you judge. Then answer with one JSON verdict per step inside \
         <answer></answer>: [{\"step\": 1, \"score\": 1, \"confidence\": 0.9, \"critique\": \"...\"}]. \
         score is from -1 (wrong) to 1 (right); confidence is from 0 to 1."
            .into()
    }

    fn tool_names(&self) -> Vec<String> {
        self.tools.clone()
    }

    /// The worked verifications, from `seed` on, wrapping around (none without them).
    fn tasks(&self, seed: u64, n: usize) -> Vec<Task> {
        let len = self.examples.len();
        if len == 0 {
            return Vec::new();
        }
        (0..n).map(|k| self.examples[(seed as usize).wrapping_add(k) % len].clone()).collect()
    }

    /// A worked verification's answer: its labelled verdicts.
    fn demonstration(&self, task: &Task) -> Option<Vec<String>> {
        (!task.answer.is_empty()).then(|| vec![format!("<answer>{}</answer>", task.answer)])
    }
}

/// The verification task of one solver episode: its task, then each step — what the solver
/// wrote, the tools it called and what they returned — and its final answer. The pictures the
/// solver saw come with it: the task's, then each observation's, in order.
pub fn verification_task(solver: &Trajectory) -> Task {
    let mut prompt = format!("Task: {}\n", solver.task.prompt);
    let mut images = solver.task.images.clone();
    for (i, turn) in solver.turns.iter().enumerate() {
        prompt.push_str(&format!("\nStep {}: {}\n", i + 1, turn.text.trim()));
        for (call, obs) in turn.tool_calls.iter().zip(&turn.observations) {
            prompt.push_str(&format!("Tool {} {} returned: {}\n", call.name, call.arguments, obs.content.trim()));
            images.extend(obs.images.iter().cloned());
        }
        for bad in &turn.malformed {
            prompt.push_str(&format!("Malformed tool call: {bad}\n"));
        }
    }
    let answer = solver.final_answer.as_deref().unwrap_or("(none)");
    prompt.push_str(&format!("\nFinal answer: {answer}\n\nJudge each of the {} steps.", solver.turns.len()));
    Task {
        id: format!("verify-{}", solver.episode_id),
        prompt,
        answer: String::new(),
        // A verification has no right answer of its own: it is read, not checked.
        checker: Checker::Exact,
        meta: serde_json::Value::Null,
        images,
    }
}

/// What the verifier said about a solver episode: one verdict per step, and how many steps
/// got `Verdict::NEUTRAL` because nothing readable was said about them.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub verdicts: Vec<Verdict>,
    pub unreadable: usize,
}

/// Reads a verifier's answer for an episode of `steps` steps. Accepts a JSON list of verdicts,
/// one verdict object, or one object per line. A verdict counts when its `step` is in
/// `1..=steps` and not seen before, its `score` a number in [−1, 1] and its `confidence` a
/// number in [0, 1]; every step without one gets `Verdict::NEUTRAL` and counts as unreadable.
pub fn read_verdicts(answer: Option<&str>, steps: usize) -> Verification {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; steps];
    for v in answer.map(verdict_objects).unwrap_or_default() {
        let Some(step) = v.get("step").and_then(serde_json::Value::as_u64).map(|s| s as usize) else { continue };
        let (Some(score), Some(confidence)) = (number(&v, "score"), number(&v, "confidence")) else { continue };
        let ok = (1..=steps).contains(&step) && (-1.0..=1.0).contains(&score) && (0.0..=1.0).contains(&confidence);
        if ok && verdicts[step - 1].is_none() {
            let critique = v.get("critique").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
            verdicts[step - 1] = Some(Verdict { score, confidence, critique, parsed: true, repair_gate: None });
        }
    }
    let unreadable = verdicts.iter().filter(|v| v.is_none()).count();
    Verification { verdicts: verdicts.into_iter().map(|v| v.unwrap_or(Verdict::NEUTRAL)).collect(), unreadable }
}

/// How a cold-start example labels a solver episode of known correctness (kaizen's rule;
/// §5 leaves it open): a step whose tool call failed scores −1 with confidence 0.9; every
/// other step scores the episode's outcome, +1 with confidence 0.9 when its answer was right,
/// −1 with confidence 0.5 when it was wrong — the verifier knows the episode went wrong but not
/// at which step, so it is unsure (below the default `τ_c` = 0.7) and a repair opens at the
/// first such step.
pub fn label_verdicts(solver: &Trajectory) -> Vec<Verdict> {
    let right = solver.solved();
    solver
        .turns
        .iter()
        .map(|turn| {
            let tool_failed = !turn.malformed.is_empty() || turn.observations.iter().any(|o| !o.ok);
            let (score, confidence, critique) = match (tool_failed, right) {
                (true, _) => (-1.0, 0.9, "the tool call failed"),
                (false, true) => (1.0, 0.9, "leads to the right answer"),
                (false, false) => (-1.0, 0.5, "the answer is wrong"),
            };
            Verdict { score, confidence, critique: critique.into(), parsed: true, repair_gate: None }
        })
        .collect()
}

/// Verdicts as the verifier writes them: a JSON list, one object per step, 1-based.
pub fn verdicts_answer(verdicts: &[Verdict]) -> String {
    let items: Vec<serde_json::Value> = verdicts
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // Three decimals, as a model would write them (an f32's 0.9 is 0.8999999761581421).
            let short = |x: f32| (x as f64 * 1000.0).round() / 1000.0;
            serde_json::json!({"step": i + 1, "score": short(v.score), "confidence": short(v.confidence), "critique": v.critique})
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// A finite number under `key`.
fn number(v: &serde_json::Value, key: &str) -> Option<f32> {
    v.get(key).and_then(serde_json::Value::as_f64).filter(|x| x.is_finite()).map(|x| x as f32)
}

/// The JSON objects an answer holds: a list's objects, a lone object, or one per line.
fn verdict_objects(answer: &str) -> Vec<serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(answer.trim()) {
        Ok(serde_json::Value::Array(items)) => items.into_iter().filter(|x| x.is_object()).collect(),
        Ok(v @ serde_json::Value::Object(_)) => vec![v],
        _ => answer.lines().filter_map(|l| serde_json::from_str(l.trim().trim_end_matches(',')).ok()).collect(),
    }
}

/// Verifies each solver episode with `runner`'s policy (its env should be a `VerifierEnv`):
/// one verification episode each, seeded from `seed`, in the order of `solvers`. Also returns
/// the verification episodes themselves.
pub fn verify(
    runner: &Runner,
    solvers: &[Trajectory],
    cfg: &EpisodeConfig,
    seed: u64,
) -> (Vec<Verification>, Vec<Trajectory>) {
    let jobs: Vec<Job> = solvers
        .iter()
        .enumerate()
        .map(|(i, s)| Job::new(verification_task(s), seed.wrapping_add(i as u64), format!("verify-{i:04}")))
        .collect();
    let episodes = runner.run_in_order(jobs, cfg);
    let verifications = solvers
        .iter()
        .enumerate()
        .map(|(i, s)| read_verdicts(episodes.get(i).and_then(|e| e.final_answer.as_deref()), s.turns.len()))
        .collect();
    (verifications, episodes)
}

/// The repairer's env: the same policy, asked for the smallest correction of one step.
pub struct RepairEnv;

impl Env for RepairEnv {
    fn name(&self) -> &str {
        "repair"
    }

    fn system_prompt(&self) -> String {
        "You repair a solver's step that a check found doubtful. Write the smallest correction of that \
         step inside <answer></answer>, or <answer>no change</answer> when the step is right."
            .into()
    }

    fn tool_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn tasks(&self, _seed: u64, _n: usize) -> Vec<Task> {
        Vec::new()
    }
}

/// The repair task for step `step` (0-based) of a solver episode: the task, the steps up to
/// that one, and what the verifier said about it.
pub fn repair_task(solver: &Trajectory, step: usize, verdict: &Verdict) -> Task {
    let mut prompt = format!("Task: {}\n", solver.task.prompt);
    for (i, turn) in solver.turns.iter().enumerate().take(step + 1) {
        prompt.push_str(&format!("\nStep {}: {}\n", i + 1, turn.text.trim()));
    }
    prompt.push_str(&format!(
        "\nA check of step {} gave score {} with confidence {}: {}\nCorrect step {}.",
        step + 1,
        verdict.score,
        verdict.confidence,
        if verdict.critique.is_empty() { "(no critique)" } else { verdict.critique.as_str() },
        step + 1
    ));
    Task {
        id: format!("repair-{}-{step}", solver.episode_id),
        prompt,
        answer: String::new(),
        checker: Checker::Exact,
        meta: serde_json::Value::Null,
        images: solver.task.images.clone(),
    }
}

/// The correction a repairer wrote, or `None` when it wrote none: no answer, an empty one, or
/// "no change" (case and punctuation aside).
pub fn read_patch(answer: Option<&str>) -> Option<String> {
    let patch = answer?.trim();
    let bare: String = patch.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect();
    let bare = bare.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    (!bare.is_empty() && bare != "no change").then(|| patch.to_string())
}

/// What opens the re-derived step: the correction, shown to the solver as a note.
pub fn repair_note(patch: &str) -> String {
    format!("(Correction: {patch})\n")
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
