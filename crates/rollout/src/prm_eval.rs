//! The verifier as a process reward model (`kaizen eval-prm`, Agent0-VL §5): N whole solutions
//! per held-out task from any policy, each judged step by step by a verifier
//! (`verifier::verify`), and one solution picked four ways — the verifier's best
//! (`prm_score`), the majority answer, one at random, and an oracle that takes a right one
//! whenever there is one (pass@N). Each way says which tasks it solved, in task order, so the
//! ways pair task by task.

use crate::episode::{EpisodeConfig, Job};
use crate::runner::{Mode, Runner};
use crate::verifier::{verify, Verification};
use kaizen_core::trajectory::Trajectory;
use kaizen_core::Task;

/// A solution's score as a process reward model: the mean over its steps of `score · conf`
/// (an unreadable step, `Verdict::NEUTRAL`, counts 0) — §5's process term without the tool
/// term, which does not judge correctness. A solution without steps scores −1.
pub fn prm_score(v: &Verification) -> f32 {
    if v.verdicts.is_empty() {
        return -1.0;
    }
    v.verdicts.iter().map(|x| x.score * x.confidence).sum::<f32>() / v.verdicts.len() as f32
}

/// The index of the highest score (the first of equals); `None` for no scores.
pub fn best(scores: &[f32]) -> Option<usize> {
    (0..scores.len()).reduce(|b, i| if scores[i] > scores[b] { i } else { b })
}

/// The majority vote: the first solution whose answer is in the largest group of equal
/// answers (equal as the task's checker compares them). Solutions without an answer do not
/// vote; `None` when none answered.
pub fn majority(task: &Task, solutions: &[Trajectory]) -> Option<usize> {
    let answers: Vec<Option<&str>> = solutions.iter().map(|s| s.final_answer.as_deref()).collect();
    let votes = |a: &str| answers.iter().flatten().filter(|b| task.checker.same_answer(a, b)).count();
    let mut top: Option<(usize, usize)> = None;
    for (i, a) in answers.iter().enumerate() {
        if let Some(a) = a {
            let v = votes(a);
            if top.is_none_or(|(_, t)| v > t) {
                top = Some((i, v));
            }
        }
    }
    top.map(|(i, _)| i)
}

/// A reproducible pick among `n` for `seed` (as `Selector::Random` picks a candidate).
fn random_pick(seed: u64, n: usize) -> usize {
    let h = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (h >> 33) as usize % n.max(1)
}

/// One task's solutions and what each way picked.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// Which of the N solutions were right.
    pub right: Vec<bool>,
    pub prm: Option<usize>,
    pub majority: Option<usize>,
    pub random: usize,
    /// Steps judged, and of those unreadable.
    pub steps: usize,
    pub unreadable: usize,
}

impl TaskOutcome {
    fn solved(&self, pick: Option<usize>) -> bool {
        pick.is_some_and(|i| self.right.get(i).copied().unwrap_or(false))
    }
    pub fn prm_solved(&self) -> bool {
        self.solved(self.prm)
    }
    pub fn majority_solved(&self) -> bool {
        self.solved(self.majority)
    }
    pub fn random_solved(&self) -> bool {
        self.solved(Some(self.random))
    }
    /// pass@N: some solution was right.
    pub fn oracle_solved(&self) -> bool {
        self.right.iter().any(|&r| r)
    }
}

/// Runs the protocol: `n` solutions of each task by `solver` under `solve` (task `i`'s `j`-th
/// seeded `seed + 1000·i + j`), each judged by `verifier` (its env a `VerifierEnv`) under
/// `judge`; `on_episode` is called as each solution and each verification ends. Returns each
/// task's outcome and every solution, in task order, its turns carrying their verdicts.
pub fn evaluate(
    solver: &Runner,
    verifier: &Runner,
    tasks: &[Task],
    n: usize,
    solve: &EpisodeConfig,
    judge: &EpisodeConfig,
    seed: u64,
    on_episode: &mut dyn FnMut(),
) -> (Vec<TaskOutcome>, Vec<Trajectory>) {
    let jobs: Vec<Job> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            (0..n)
                .map(move |j| Job::new(t.clone(), seed.wrapping_add((1000 * i + j) as u64), format!("t{i:04}-s{j:02}")))
        })
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut solutions = Vec::new();
    solver.run(jobs, solve, &Mode::Plain, &mut |t| {
        solutions.push(t);
        on_episode();
    });
    crate::in_job_order(&mut solutions, &ids);
    let (verifications, _) = verify(verifier, &solutions, judge, seed ^ 0x5052_4d);
    for _ in &verifications {
        on_episode();
    }
    let outcomes = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let range = (i * n).min(solutions.len())..((i + 1) * n).min(solutions.len());
            let sols = &solutions[range.clone()];
            let checks = &verifications[range];
            let scores: Vec<f32> = checks.iter().map(prm_score).collect();
            TaskOutcome {
                right: sols.iter().map(Trajectory::solved).collect(),
                prm: best(&scores),
                majority: majority(task, sols),
                random: random_pick(seed.wrapping_add(i as u64), n),
                steps: checks.iter().map(|c| c.verdicts.len()).sum(),
                unreadable: checks.iter().map(|c| c.unreadable).sum(),
            }
        })
        .collect();
    for (s, check) in solutions.iter_mut().zip(verifications) {
        for (turn, v) in s.turns.iter_mut().zip(check.verdicts) {
            turn.verdict = Some(v);
        }
    }
    (outcomes, solutions)
}

#[cfg(test)]
#[path = "prm_eval_tests.rs"]
mod tests;
