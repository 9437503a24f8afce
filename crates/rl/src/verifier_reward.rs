//! Agent0-VL's reward (`../shared/METHODS.md` §5): the env's checker gives each episode its
//! outcome `r_out`; the policy being trained, in its verifier role (`kaizen_rollout::verifier`),
//! judges every step; where a verdict is unsure (`conf < τ_c`) the same policy writes a
//! correction and the solver re-derives the episode from that step (a repair, up to
//! `repair_budget` per episode), and the repaired episode — checked and judged again — takes
//! the original's place. The verdicts go into the turns, where the estimator `process` turns
//! them into process returns; each repair is recorded in `reward_detail.repairs`.

use crate::process::{first_repair, repair_gate, ProcessConfig};
use crate::setup::{Reward, Scoring};
use kaizen_core::{Trajectory, Verdict};
use kaizen_rollout::episode::{EpisodeConfig, Job};
use kaizen_rollout::runner::Runner;
use kaizen_rollout::verifier::{read_patch, repair_note, repair_task, verify, RepairEnv, VerifierEnv};
use kaizen_rollout::Agent;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The checker's outcome plus the current policy's verdicts on each step, and its repairs.
/// Verification and correction episodes are greedy: the same policy judges the same episode
/// the same way.
pub struct VerifierReward {
    pub process: ProcessConfig,
    /// The tools the verifier may check with (the solver's env's).
    pub tools: Vec<String>,
    pub seed: u64,
    /// Another model in the verifier role (a larger vision-language model behind `openai:URL`,
    /// prompted only: it is not trained); `None`: the policy being trained judges itself, as
    /// Agent0-VL does. Corrections are the policy's own either way.
    pub verifier: Option<Arc<dyn kaizen_core::Policy>>,
}

/// One repair of an episode, as `reward_detail.repairs` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairRecord {
    /// The step re-derived (1-based).
    pub step: usize,
    /// The correction written; `None`: the repairer wrote "no change" or nothing readable, and
    /// the episode stayed as it was.
    pub patch: Option<String>,
    /// The gate `g_t = σ(κ(τ_c − conf_t))` of the verdict that opened it.
    pub gate: f32,
    /// The outcome reward before the repair, and after it (`None` where none ran).
    pub before: f32,
    pub after: Option<f32>,
    /// The episode the re-derivation replaced, as it was (with its own verdicts and record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Box<Trajectory>>,
}

/// The repairs recorded in an episode's `reward_detail.repairs`.
pub fn repairs_of(t: &Trajectory) -> Vec<RepairRecord> {
    t.reward_detail.get("repairs").and_then(|r| serde_json::from_value(r.clone()).ok()).unwrap_or_default()
}

/// `(repairs, wrong → right, right → wrong)` over the rollouts' re-derived episodes; `None`
/// where no rollout was judged (the run does not verify).
pub fn repair_counts(rollouts: &[Trajectory]) -> Option<(usize, usize, usize)> {
    if !rollouts.iter().any(|t| t.turns.iter().any(|x| x.verdict.is_some())) {
        return None;
    }
    let done: Vec<RepairRecord> = rollouts.iter().flat_map(repairs_of).filter(|r| r.after.is_some()).collect();
    let right = |r: f32| kaizen_core::trajectory::is_success(r);
    let fixed = done.iter().filter(|r| !right(r.before) && r.after.is_some_and(right)).count();
    let broke = done.iter().filter(|r| right(r.before) && !r.after.is_some_and(right)).count();
    Some((done.len(), fixed, broke))
}

/// Repairs a verdict opened that re-derived nothing: the repairer wrote "no change" or nothing
/// readable, or the re-derivation failed.
pub fn declined_repairs(rollouts: &[Trajectory]) -> usize {
    rollouts.iter().flat_map(repairs_of).filter(|r| r.after.is_none()).count()
}

/// Seeds of one step's verification episodes start here, apart from the rollouts'.
const STEP_STRIDE: u64 = 7_919_000;

impl VerifierReward {
    /// Judges `rollouts` (all of them) and writes each one's verdicts and verification record.
    fn judge(&self, at: &Scoring, rollouts: &mut [&mut Trajectory], seed: u64) {
        let env = VerifierEnv::new(self.tools.clone());
        let cfg = self.process.verifier_episode();
        let agent = match &self.verifier {
            Some(v) => Agent::Remote(v.as_ref()),
            None => Agent::Local(at.policy),
        };
        let runner = Runner::new(agent, &env, at.tools, 8);
        let solvers: Vec<Trajectory> = rollouts.iter().map(|t| (**t).clone()).collect();
        let (verifications, episodes) = verify(&runner, &solvers, &cfg, seed);
        for (i, (t, v)) in rollouts.iter_mut().zip(verifications).enumerate() {
            let e = episodes.get(i);
            // What the verifier wrote and how its episode ended, to read why a verdict is what
            // it is (or why it is unreadable).
            t.reward_detail["verification"] = serde_json::json!({
                "answer": e.and_then(|e| e.final_answer.clone()),
                "end": e.map(|e| &e.end),
                "tool_calls": e.map_or(0, Trajectory::tool_calls),
                "unreadable": v.unreadable,
            });
            for (turn, verdict) in t.turns.iter_mut().zip(v.verdicts) {
                turn.verdict = Some(verdict);
            }
        }
    }

    /// One round of repairs: the repairs due (`due_repairs`), a correction for each
    /// (`corrections`), and the episodes re-derived with them (`rederive`).
    fn repair_round(&self, at: &Scoring, rollouts: &mut [Trajectory], from: &[Option<usize>], seed: u64) -> Rederived {
        let due = self.due_repairs(rollouts, from);
        if due.is_empty() {
            return Rederived { next: vec![None; rollouts.len()], changed: vec![false; rollouts.len()] };
        }
        let patches = self.corrections(at, rollouts, &due, seed);
        self.rederive(at, rollouts, &due, &patches)
    }

    /// `(rollout, step)` of each repair due: the first step from `from[i]` on whose verdict
    /// opens one (`process::first_repair`: read, and unsure).
    fn due_repairs(&self, rollouts: &[Trajectory], from: &[Option<usize>]) -> Vec<(usize, usize)> {
        rollouts
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let start = from.get(i).copied().flatten()?;
                let vs = verdicts(t);
                first_repair(vs.get(start..).unwrap_or(&[]), self.process.tau_c).map(|s| (i, start + s))
            })
            .collect()
    }

    /// The policy's correction of each step due, one greedy turn each without tools (`None`:
    /// "no change", or nothing written).
    fn corrections(
        &self,
        at: &Scoring,
        rollouts: &[Trajectory],
        due: &[(usize, usize)],
        seed: u64,
    ) -> Vec<Option<String>> {
        let repairer = Runner::new(Agent::Local(at.policy), &RepairEnv, at.tools, 8);
        let jobs = due
            .iter()
            .enumerate()
            .map(|(k, &(i, s))| {
                let v = verdicts(&rollouts[i]).swap_remove(s);
                Job::new(repair_task(&rollouts[i], s, &v), seed.wrapping_add(k as u64), format!("repair-{k:04}"))
            })
            .collect();
        let cfg = EpisodeConfig { max_turns: 1, tool_schemas: false, ..self.process.verifier_episode() };
        let episodes = repairer.run_in_order(jobs, &cfg);
        (0..due.len())
            .map(|k| {
                let e = episodes.get(k)?;
                // The tagged answer; a repairer that ignored the format wrote its correction as
                // the turn's text.
                read_patch(e.final_answer.as_deref().or(e.turns.last().map(|t| t.text.as_str())))
            })
            .collect()
    }

    /// Re-derives each due episode from the start of its step with its correction shown, in
    /// the solver's own env and settings; the new episode takes the old one's place, which is
    /// kept in the record (a failed re-derivation leaves it). Every repair due is recorded in
    /// `reward_detail.repairs`, declined ones too.
    fn rederive(
        &self,
        at: &Scoring,
        rollouts: &mut [Trajectory],
        due: &[(usize, usize)],
        patches: &[Option<String>],
    ) -> Rederived {
        let p = &self.process;
        let mut jobs = Vec::new();
        let mut records: Vec<(usize, usize, RepairRecord, bool)> = Vec::new();
        for (k, &(i, s)) in due.iter().enumerate() {
            let t = &rollouts[i];
            let v = verdicts(t).swap_remove(s);
            let record = RepairRecord {
                step: s + 1,
                patch: patches.get(k).cloned().flatten(),
                gate: repair_gate(v.confidence, p.tau_c, p.kappa),
                before: t.reward,
                after: None,
                original: None,
            };
            // Only where the token record shows one run per turn is run `s` step `s`'s.
            let runs = t.written_runs();
            let start = (runs.len() == t.turns.len()).then(|| runs.get(s).map(|r| r.start)).flatten();
            let rederives = match (&record.patch, start) {
                (Some(patch), Some(start)) => {
                    jobs.push(Job::repairing(
                        Arc::new(t.clone()),
                        start,
                        repair_note(patch),
                        repair_seed(t.seed, s),
                        t.episode_id.clone(),
                    ));
                    true
                }
                _ => false,
            };
            records.push((i, s, record, rederives));
        }
        let solver = Runner::new(Agent::Local(at.policy), at.env, at.tools, 8);
        let mut rederived = solver.run_in_order(jobs, at.episode).into_iter();
        let mut out = Rederived { next: vec![None; rollouts.len()], changed: vec![false; rollouts.len()] };
        for (i, s, mut record, rederives) in records {
            // Declined, failed or not: the next round looks after this step.
            out.next[i] = Some(s + 1);
            let new = if rederives { rederived.next() } else { None };
            if let Some(mut new) = new.filter(|n| !matches!(n.end, kaizen_core::EpisodeEnd::Error { .. })) {
                record.after = Some(new.reward);
                new.reward_detail = rollouts[i].reward_detail.clone();
                // The episode it replaces is kept with the repair (nothing is lost); its earlier
                // repairs stay once, in the list the new episode carries, not nested in it.
                let mut old = std::mem::replace(&mut rollouts[i], new);
                if let Some(d) = old.reward_detail.as_object_mut() {
                    d.remove("repairs");
                }
                record.original = Some(Box::new(old));
                out.changed[i] = true;
            }
            let mut list = repairs_of(&rollouts[i]);
            list.push(record);
            rollouts[i].reward_detail["repairs"] = serde_json::to_value(list).unwrap_or_default();
        }
        out
    }
}

/// What a round of repairs did to each rollout: where the next round looks (`None`: no
/// repair was due), and whether the episode was replaced by its re-derivation.
struct Rederived {
    next: Vec<Option<usize>>,
    changed: Vec<bool>,
}

/// The seed of a re-derivation of step `s` of an episode seeded `seed`: a stream of its own,
/// apart from the rollouts' consecutive seeds (a sibling's draws would otherwise repeat).
fn repair_seed(seed: u64, s: usize) -> u64 {
    (seed ^ 0x5245_5041_4952).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(s as u64)
}

/// Prices each repair that re-derived a step: that step's verdict carries the gate that
/// opened it, and pays `g_t · C_repair` (`process::step_rewards`).
pub(crate) fn price_repairs(rollouts: &mut [Trajectory]) {
    for t in rollouts.iter_mut() {
        for r in repairs_of(t).iter().filter(|r| r.after.is_some()) {
            if let Some(v) = r.step.checked_sub(1).and_then(|s| t.turns.get_mut(s)).and_then(|x| x.verdict.as_mut()) {
                v.repair_gate = Some(r.gate);
            }
        }
    }
}

/// Each turn's verdict (`Verdict::NEUTRAL` where none).
fn verdicts(t: &Trajectory) -> Vec<Verdict> {
    t.turns.iter().map(|x| x.verdict.clone().unwrap_or(Verdict::NEUTRAL)).collect()
}

impl Reward for VerifierReward {
    fn score(&mut self, at: &Scoring, rollouts: &mut [Trajectory]) -> crate::Result<()> {
        let seed = self.seed.wrapping_add(at.step as u64 * STEP_STRIDE);
        for t in rollouts.iter_mut() {
            t.reward_detail = serde_json::json!({});
        }
        self.judge(at, &mut rollouts.iter_mut().collect::<Vec<_>>(), seed);
        let mut from: Vec<Option<usize>> = vec![Some(0); rollouts.len()];
        for round in 0..self.process.repair_budget {
            let round_seed = seed.wrapping_add(1_000 * (round as u64 + 1));
            let done = self.repair_round(at, rollouts, &from, round_seed);
            from = done.next;
            // The re-derived episodes are judged again (their new steps have no verdict yet).
            let mut repaired: Vec<&mut Trajectory> =
                rollouts.iter_mut().zip(&done.changed).filter(|(_, c)| **c).map(|(t, _)| t).collect();
            if !repaired.is_empty() {
                self.judge(at, &mut repaired, round_seed.wrapping_add(500));
            }
            if from.iter().all(Option::is_none) {
                break;
            }
        }
        price_repairs(rollouts);
        Ok(())
    }

    /// The outcome is the checker's, which episodes carry as they end.
    fn is_checker(&self) -> bool {
        true
    }

    fn writes_verdicts(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "verifier_reward_tests.rs"]
mod tests;
