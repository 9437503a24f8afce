//! The curriculum agent (`../shared/METHODS.md` §4): a policy prompted to write one task, and
//! the reward that trains it to write tasks at the edge of the executor's ability.
//!
//! The reward of a generated task `x`, from `k` executor samples of it:
//! - `p̂`: the majority answer's share of the `k` samples (self-consistency);
//! - uncertainty `R_unc = 1 − 2|p̂ − 0.5|`;
//! - tool use `R_tool = γ · min(N_tool, 4)`, `N_tool` the mean tool calls per sample (the
//!   paper's `λ_tool` is folded into `γ`: one weight, `tool`, i.e. `λ_tool = 1`);
//! - repetition `R_rep = λ_rep · |C(x)| / B`, `C(x)` the task's cluster in the batch of `B`
//!   parseable tasks (BLEU distance, average linkage at 0.5: `crate::bleu`);
//! - the format gate: the output holds one `<question>…</question>`.
//!
//! Two forms, selectable (`[curriculum_reward] form`): the paper's
//! `R = R_format · max(0, λ_unc R_unc + R_tool − R_rep)` (0 for an unparseable task), and the
//! authors' code's `min(p̂, 1 − p̂) − R_rep + R_tool` (−1 for an unparseable task).

use crate::bleu;
use kaizen_core::{Checker, Env, Task};
use serde::{Deserialize, Serialize};

/// The env the curriculum agent acts in: one turn, no tools; each task asks for a problem on a
/// topic (varied so a group's prompts are not all one string). Its checker never passes: the
/// reward is the curriculum reward, computed by the evolve loop.
pub struct CurriculumEnv;

/// Topics the curriculum's prompts rotate through.
const TOPICS: [&str; 12] = [
    "shopping",
    "a farm",
    "a train journey",
    "a bakery",
    "a school",
    "a library",
    "savings",
    "a factory",
    "a garden",
    "a sports team",
    "a road trip",
    "a warehouse",
];

/// One worked example per topic (`demonstration`): what a well-formed task looks like. A small
/// model writes the format only after seeing it (SmolLM2-135M wrote no tag in 6 of 6 tries
/// without examples at temperature 1).
const EXAMPLES: [&str; 12] = [
    "A shop sells 48 boxes of 125 pencils each and 1,370 loose pencils. How many pencils does it sell?",
    "A farm has 36 rows of 245 corn plants. Birds eat 1,187 plants. How many plants are left?",
    "A train travels 287 km on each of 14 days and 96 km on the last day. How far does it travel in all?",
    "A bakery bakes 1,260 rolls a day and packs them in bags of 18. How many bags does it fill in 5 days?",
    "A school buys 27 sets of 144 crayons and gives 3,500 crayons away. How many crayons does it keep?",
    "A library has 9,834 books on 66 equal shelves. How many books are on each of 25 shelves together?",
    "Maria saves 375 dollars a month for 19 months, then spends 2,860 dollars. How much is left?",
    "A factory makes 2,415 bolts an hour for 8 hours and packs them 35 to a box. How many boxes is that?",
    "A garden has 58 beds with 126 tulips each. 1,949 tulips are cut. How many tulips remain?",
    "A team scores 87 points in each of 23 games and 146 points in the final. What is its total?",
    "A car drives 612 km a day for 7 days on 8 litres per 100 km. How many litres does it use?",
    "A warehouse holds 4,680 crates and ships 195 crates a day for 17 days. How many crates remain?",
];

pub const OPEN: &str = "<question>";
pub const CLOSE: &str = "</question>";

/// The longest task text accepted (characters); longer is a format failure.
pub const MAX_TASK_CHARS: usize = 500;

impl Env for CurriculumEnv {
    fn name(&self) -> &str {
        "curriculum"
    }

    fn system_prompt(&self) -> String {
        format!(
            "You write math word problems for a student who can use a calculator and python. Write \
             exactly one new problem with a single number as its answer, between {OPEN} and {CLOSE}. \
             Do not solve it."
        )
    }

    fn tool_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// The topic's example task in the format (worked examples for the prompt).
    fn demonstration(&self, task: &Task) -> Option<Vec<String>> {
        let topic = task.meta.get("topic")?.as_str()?;
        let i = TOPICS.iter().position(|t| *t == topic)?;
        Some(vec![format!("{OPEN}{}{CLOSE}", EXAMPLES[i])])
    }

    fn tasks(&self, seed: u64, n: usize) -> Vec<Task> {
        (0..n)
            .map(|i| {
                let topic = TOPICS[(seed.wrapping_add(i as u64) % TOPICS.len() as u64) as usize];
                Task {
                    id: format!("write-{seed}-{i}"),
                    prompt: format!("Write a new, hard problem about {topic}."),
                    answer: String::new(),
                    checker: Checker::Env,
                    meta: serde_json::json!({ "topic": topic }),
                    images: Vec::new(),
                }
            })
            .collect()
    }
}

/// The task in a curriculum output: the text between the first `<question>` and the next
/// `</question>`, trimmed; `None` (a format failure) when either tag is missing, the text is
/// empty, or longer than `MAX_TASK_CHARS`.
pub fn parse_task(output: &str) -> Option<String> {
    let start = output.find(OPEN)? + OPEN.len();
    let len = output[start..].find(CLOSE)?;
    let task = output[start..start + len].trim();
    (!task.is_empty() && task.chars().count() <= MAX_TASK_CHARS).then(|| task.to_string())
}

/// Which form of the curriculum reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardForm {
    Paper,
    Code,
}

/// The curriculum reward's weights (`[curriculum_reward]` in an evolve recipe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardWeights {
    pub form: RewardForm,
    /// `λ_unc` (paper form only; the code form's `min(p̂, 1−p̂)` is unweighted).
    pub uncertainty: f64,
    /// `γ` in `R_tool = γ · min(N_tool, 4)` (0: the no-tool-reward ablation).
    pub tool: f64,
    /// `λ_rep` in `R_rep = λ_rep · |C| / B` (0: the no-repetition-penalty ablation).
    pub repetition: f64,
    /// Distance below which average linkage joins clusters.
    pub cluster_threshold: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights { form: RewardForm::Paper, uncertainty: 1.0, tool: 0.05, repetition: 1.0, cluster_threshold: 0.5 }
    }
}

/// What the executor made of one generated task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// Self-consistency `p̂` over the `k` samples (0 when none answered).
    pub p_hat: f64,
    /// The majority answer (`None` when no sample answered).
    pub majority: Option<String>,
    /// Whether the top two answers had as many votes each.
    pub tie: bool,
    /// Mean tool calls per sample (`N_tool`).
    pub tool_calls: f64,
}

/// One task's curriculum reward from its parts (see the module's doc):
/// paper `R = 1[parsed] · max(0, λ_unc (1 − 2|p̂ − 0.5|) + γ min(N_tool, 4) − λ_rep share)`,
/// code `R = min(p̂, 1 − p̂) − λ_rep share + γ min(N_tool, 4)`, or −1 unparsed.
pub fn task_reward(w: &RewardWeights, judged: Option<&Judged>, cluster_share: f64) -> f64 {
    let Some(j) = judged else {
        return match w.form {
            RewardForm::Paper => 0.0,
            RewardForm::Code => -1.0,
        };
    };
    let tool = w.tool * j.tool_calls.min(4.0);
    let rep = w.repetition * cluster_share;
    match w.form {
        RewardForm::Paper => (w.uncertainty * (1.0 - 2.0 * (j.p_hat - 0.5).abs()) + tool - rep).max(0.0),
        RewardForm::Code => j.p_hat.min(1.0 - j.p_hat) - rep + tool,
    }
}

/// The repetition clusters of a batch's parseable tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Clusters {
    /// Each parseable task's cluster label.
    pub labels: Vec<usize>,
    /// Each parseable task's `|C| / B`.
    pub shares: Vec<f64>,
}

impl Clusters {
    pub fn of(tasks: &[String], threshold: f64) -> Self {
        let labels = bleu::average_linkage(&bleu::distances(tasks), threshold);
        let shares = bleu::cluster_shares(&labels);
        Clusters { labels, shares }
    }

    pub fn count(&self) -> usize {
        self.labels.iter().max().map_or(0, |m| m + 1)
    }

    pub fn largest(&self) -> usize {
        (0..self.count()).map(|k| self.labels.iter().filter(|&&l| l == k).count()).max().unwrap_or(0)
    }
}

/// The rewards of a batch of curriculum outputs: `tasks[i]` the parsed task (or `None`),
/// `judged[i]` the executor's verdict for parsed ones. Clusters are over the parsed tasks
/// alone (`B` = their number).
pub fn batch_rewards(w: &RewardWeights, tasks: &[Option<String>], judged: &[Option<Judged>]) -> (Vec<f64>, Clusters) {
    let parsed: Vec<String> = tasks.iter().flatten().cloned().collect();
    let clusters = Clusters::of(&parsed, w.cluster_threshold);
    let mut k = 0;
    let rewards = tasks
        .iter()
        .zip(judged)
        .map(|(t, j)| match (t, j) {
            (Some(_), Some(j)) => {
                let share = clusters.shares[k];
                k += 1;
                task_reward(w, Some(j), share)
            }
            (Some(_), None) => {
                k += 1;
                task_reward(w, None, 0.0)
            }
            _ => task_reward(w, None, 0.0),
        })
        .collect();
    (rewards, clusters)
}

#[cfg(test)]
#[path = "curriculum_tests.rs"]
mod tests;
