//! Agent0-VL's reward (`../shared/METHODS.md` §5): the env's checker gives each episode its
//! outcome `r_out`, and the policy being trained, in its verifier role
//! (`kaizen_rollout::verifier`), judges every step; the verdicts go into the turns, where the
//! estimator `process` turns them into process returns.

use crate::process::ProcessConfig;
use crate::setup::{Reward, Scoring};
use kaizen_core::Trajectory;
use kaizen_rollout::runner::Runner;
use kaizen_rollout::verifier::{verify, VerifierEnv};
use kaizen_rollout::{Agent, EpisodeArgs};

/// The checker's outcome plus the current policy's verdicts on each step. Verification
/// episodes are greedy, so the same policy judges the same episode the same way.
pub struct VerifierReward {
    pub process: ProcessConfig,
    /// The tools the verifier may check with (the solver's env's).
    pub tools: Vec<String>,
    pub seed: u64,
}

/// Seeds of one step's verification episodes start here, apart from the rollouts'.
const STEP_STRIDE: u64 = 7_919_000;

impl Reward for VerifierReward {
    fn score(&mut self, at: &Scoring, rollouts: &mut [Trajectory]) -> anyhow::Result<()> {
        let env = VerifierEnv { tools: self.tools.clone() };
        let args = EpisodeArgs {
            max_turns: self.process.verifier_max_turns,
            max_tokens_per_turn: self.process.verifier_max_tokens_per_turn,
            max_episode_tokens: None,
            temperature: 0.0,
        };
        let cfg = args.config(Vec::new(), true, false);
        let runner = Runner::new(Agent::Local(at.policy), &env, at.tools, 8);
        let seed = self.seed.wrapping_add(at.step as u64 * STEP_STRIDE);
        let (verifications, episodes) = verify(&runner, rollouts, &cfg, seed);
        for (i, (t, v)) in rollouts.iter_mut().zip(verifications).enumerate() {
            // What the verifier wrote and how its episode ended, to read why a verdict is what
            // it is (or why it is unreadable).
            let e = episodes.get(i);
            t.reward_detail = serde_json::json!({"verification": {
                "answer": e.and_then(|e| e.final_answer.clone()),
                "end": e.map(|e| &e.end),
                "tool_calls": e.map_or(0, Trajectory::tool_calls),
                "unreadable": v.unreadable,
            }});
            for (turn, verdict) in t.turns.iter_mut().zip(v.verdicts) {
                turn.verdict = Some(verdict);
            }
        }
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
