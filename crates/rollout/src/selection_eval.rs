//! The Best-of-Q evaluation protocol (`kaizen eval-rerank`): on the same held-out tasks and
//! seeds, the policy alone (greedy and sampled), N candidates per step picked at random, by
//! log-prob and by the Q-function, and pass@N over N independent episodes. Each row says which
//! tasks it solved, in task order, so rows pair task by task.

use crate::episode::{EpisodeConfig, Job};
use crate::rerank::Selector;
use crate::runner::{Mode, Runner};
use kaizen_core::trajectory::Trajectory;
use kaizen_core::Task;
use std::collections::BTreeMap;

/// One row of the table: how each task's episodes run and how many run per task.
pub struct Row<'s> {
    pub name: &'static str,
    pub cfg: &'s EpisodeConfig,
    /// Candidates per step (1: the policy's own sample).
    pub candidates: usize,
    pub selector: &'s Selector<'s>,
    /// Episodes per task; a task counts as solved when any of them succeeded.
    pub episodes_per_task: usize,
}

/// The protocol's rows, in order: greedy, sampled, random of N, max log-prob of N, Best-of-Q
/// (`q`), pass@N over episodes. `greedy` and `sampled` differ only in temperature.
pub fn best_of_q_rows<'s>(
    greedy: &'s EpisodeConfig,
    sampled: &'s EpisodeConfig,
    n: usize,
    q: &'s Selector<'s>,
) -> [Row<'s>; 6] {
    let row =
        |name, cfg, candidates, selector, episodes_per_task| Row { name, cfg, candidates, selector, episodes_per_task };
    [
        row("policy, greedy", greedy, 1, &Selector::First, 1),
        row("policy, sampled", sampled, 1, &Selector::First, 1),
        row("random of N", sampled, n, &Selector::Random, 1),
        row("max log-prob of N", sampled, n, &Selector::MaxLogprob, 1),
        row("Best-of-Q", sampled, n, q, 1),
        row("pass@N, episodes", sampled, 1, &Selector::First, n),
    ]
}

/// What a row solved.
pub struct RowOutcome {
    /// Per task, in task order: whether any of its episodes succeeded.
    pub solved: Vec<bool>,
    /// Per task kind (`task.meta.task`, e.g. each MiniWoB task): (solved, tasks).
    pub kinds: BTreeMap<String, (usize, usize)>,
}

impl RowOutcome {
    pub fn successes(&self) -> usize {
        self.solved.iter().filter(|&&s| s).count()
    }
}

/// Runs `row` on `tasks` (task `i`'s `j`-th episode seeded `seed + 1000·i + j`); `on_episode`
/// is called as each episode ends.
pub fn run_row(
    runner: &Runner,
    tasks: &[Task],
    seed: u64,
    row: &Row,
    on_episode: &mut dyn FnMut(&Trajectory),
) -> RowOutcome {
    let per_task = row.episodes_per_task;
    let jobs: Vec<Job> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            (0..per_task)
                .map(move |j| Job::new(t.clone(), seed.wrapping_add((i * 1000 + j) as u64), format!("{i:05}-{j:02}")))
        })
        .collect();
    // Task index → (its kind, solved by any episode).
    let mut solved: BTreeMap<usize, (String, bool)> = BTreeMap::new();
    runner.run(jobs, row.cfg, &Mode::BestOfN { n: row.candidates, selector: row.selector }, &mut |t| {
        on_episode(&t);
        let task = t.episode_id.split('-').next().and_then(|i| i.parse::<usize>().ok()).unwrap_or(usize::MAX);
        let kind = t.task.meta["task"].as_str().unwrap_or("").to_string();
        solved.entry(task).or_insert((kind, false)).1 |= t.solved();
    });
    let mut kinds = BTreeMap::<String, (usize, usize)>::new();
    for (kind, ok) in solved.values() {
        let e = kinds.entry(kind.clone()).or_default();
        e.0 += *ok as usize;
        e.1 += 1;
    }
    RowOutcome { solved: solved.values().map(|s| s.1).collect(), kinds }
}
