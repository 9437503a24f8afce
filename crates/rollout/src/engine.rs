//! Many episodes at once on one local model. Each episode holds a slot of a `SequenceBatch`;
//! all slots that are generating decode together in one batched forward per step, so the
//! weights are read once for the whole batch. An episode whose turn ended in tool calls
//! leaves the batch while its tools run on a worker thread and rejoins with the observation
//! appended to its own cache row; a finished episode frees its slot for the next job.

use crate::episode::{Agent, Episode, EpisodeConfig, Job};
use kaizen_core::tool_call::MalformedCall;
use kaizen_core::trajectory::Trajectory;
use kaizen_core::{Completion, Env, Observation, ToolCall};
use kaizen_models::{LocalLlm, SequenceBatch};
use kaizen_tools::ToolRegistry;
use std::sync::mpsc;
use std::time::Instant;

/// Where the engine's wall-clock time went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub wall_ms: f64,
    /// In model forwards: prefills and batched decode steps.
    pub model_ms: f64,
    /// Blocked on tools with nothing to decode.
    pub tool_wait_ms: f64,
    pub decode_steps: usize,
    /// Rows decoded, summed over steps (÷ steps = mean batch size).
    pub decoded_rows: usize,
    /// The shared-prefix cache during this run: lookups, hits, positions copied, not computed.
    pub prefix: kaizen_models::runtime::prefix_cache::PrefixStats,
}

impl EngineStats {
    /// Engine overhead `(wall − model − tool wait) / wall`: the share of time spent neither
    /// computing the model nor waiting for tools — sampling, detokenising, parsing calls,
    /// rendering observations, bookkeeping.
    pub fn overhead(&self) -> f64 {
        if self.wall_ms > 0.0 {
            ((self.wall_ms - self.model_ms - self.tool_wait_ms) / self.wall_ms).max(0.0)
        } else {
            0.0
        }
    }
    pub fn mean_batch(&self) -> f64 {
        if self.decode_steps > 0 {
            self.decoded_rows as f64 / self.decode_steps as f64
        } else {
            0.0
        }
    }
}

type ToolResult = (usize, Vec<Observation>, f64);

struct Engine<'a, 'e> {
    agent: Agent<'a>,
    registry: &'e ToolRegistry,
    batch: SequenceBatch<'a>,
    episodes: Vec<Option<Episode<'a>>>,
    /// Generation time of each slot's current turn so far.
    turn_ms: Vec<f64>,
    waiting_for_tools: usize,
    stats: EngineStats,
}

/// Puts episodes, which finish in any order, back in the order of their jobs' ids (`ids`, as
/// the jobs were made): by position, never by comparing id strings, which mis-order past
/// their zero padding ("t1000" before "t999"). Episodes of unknown ids go last.
pub fn in_job_order(episodes: &mut [Trajectory], ids: &[String]) {
    let position: std::collections::HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    episodes.sort_by_key(|t| position.get(t.episode_id.as_str()).copied().unwrap_or(usize::MAX));
}

/// Runs every job with up to `slots` episodes in flight on `llm`; `on_done` receives each
/// trajectory as its episode ends (in completion order). Never fails: a model error ends the
/// episodes it touched as `Error`, and the run goes on.
pub fn run_local(
    llm: &LocalLlm,
    env: &dyn Env,
    registry: &ToolRegistry,
    jobs: impl IntoIterator<Item = Job>,
    cfg: &EpisodeConfig,
    slots: usize,
    on_done: &mut dyn FnMut(Trajectory),
) -> EngineStats {
    let start = Instant::now();
    let prefix_before = llm.prefix_stats();
    // A stateful env may cap concurrent episodes (one browser each).
    let slots = slots.min(env.max_concurrent_episodes().unwrap_or(usize::MAX)).max(1);
    // Room for a prompt, the episode's own tokens and its observations; rows grow if needed.
    let reserve = cfg.max_episode_tokens + 512;
    let mut e = Engine {
        agent: Agent::Local(llm),
        registry,
        batch: SequenceBatch::new(llm, slots, reserve),
        episodes: (0..slots).map(|_| None).collect(),
        turn_ms: vec![0.0; slots],
        waiting_for_tools: 0,
        stats: EngineStats::default(),
    };
    // How many jobs of each task are still to start: an episode whose task will run again (a
    // GRPO group, several samples) keeps its whole first-turn prompt in the prefix cache.
    let jobs: Vec<Job> = jobs.into_iter().collect();
    let mut to_start: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for j in &jobs {
        *to_start.entry(j.task.content_key()).or_default() += 1;
    }
    let mut jobs = jobs.into_iter().peekable();
    let (tx, rx) = mpsc::channel::<ToolResult>();
    std::thread::scope(|scope| loop {
        // Every free slot takes the next job (an episode may end at once and free it again).
        while let Some(free) = e.episodes.iter().position(Option::is_none) {
            let Some(job) = jobs.next() else { break };
            e.batch.release(free);
            let left = to_start.get_mut(&job.task.content_key()).map(|n| {
                *n -= 1;
                *n
            });
            // Only "it will repeat" is known; a task with no jobs left may still come back
            // (another call, another stage), so that one is left to the cache's doorkeeper.
            if left.unwrap_or(0) > 0 {
                e.batch.expect_repeat(free, true);
            }
            e.episodes[free] = Some(Episode::new(&e.agent, env, registry, job, cfg));
            e.advance(free, scope, &tx, on_done);
        }
        if e.batch.generating() > 0 {
            e.decode_step(scope, &tx, on_done);
        } else if e.waiting_for_tools > 0 {
            let t = Instant::now();
            let Ok(result) = rx.recv() else { break };
            e.stats.tool_wait_ms += t.elapsed().as_secs_f64() * 1e3;
            e.tools_done(result, scope, &tx, on_done);
        } else if jobs.peek().is_none() && e.episodes.iter().all(Option::is_none) {
            break;
        }
        while let Ok(result) = rx.try_recv() {
            e.tools_done(result, scope, &tx, on_done);
        }
    });
    e.stats.wall_ms = start.elapsed().as_secs_f64() * 1e3;
    e.stats.prefix = llm.prefix_stats().since(&prefix_before);
    e.stats
}

impl<'a, 'e> Engine<'a, 'e> {
    /// Moves slot `s`'s episode on until it is generating, waiting for tools, or finished.
    fn advance<'s>(
        &mut self,
        s: usize,
        scope: &'s std::thread::Scope<'s, '_>,
        tx: &mpsc::Sender<ToolResult>,
        on_done: &mut dyn FnMut(Trajectory),
    ) where
        'e: 's,
    {
        // A free slot has nothing to move on.
        while let Some(ep) = self.episodes[s].as_mut() {
            let Some(params) = ep.next_turn() else {
                if let Some(ep) = self.episodes[s].take() {
                    on_done(ep.finish());
                }
                return;
            };
            let t = Instant::now();
            self.batch.show(s, ep.pictures());
            // A continuation's replayed history goes in on the schedule it was generated on, so
            // the episode replays to its log-probs like any other (a no-op after its first turn).
            let primed = match ep.replayed_mask() {
                Some(mask) => self.batch.prime(s, ep.token_ids(), mask, ep.shared_prefix()),
                None => Ok(()),
            };
            let started = primed.and_then(|()| self.batch.start(s, ep.token_ids(), params, ep.shared_prefix()));
            let ms = t.elapsed().as_secs_f64() * 1e3;
            self.stats.model_ms += ms;
            self.turn_ms[s] = ms;
            match started {
                Ok(None) => return,
                Ok(Some(c)) => {
                    if self.completed(s, c, scope, tx) {
                        return;
                    }
                }
                Err(err) => {
                    self.batch.release(s);
                    ep.fail(err.to_string());
                }
            }
        }
    }

    /// Records a finished turn. Returns true when the episode now waits for its tools.
    fn completed<'s>(
        &mut self,
        s: usize,
        c: Completion,
        scope: &'s std::thread::Scope<'s, '_>,
        tx: &mpsc::Sender<ToolResult>,
    ) -> bool
    where
        'e: 's,
    {
        let Some(ep) = self.episodes[s].as_mut() else { return false };
        let calls: Vec<Result<ToolCall, MalformedCall>> = ep.on_completion(c, self.turn_ms[s]);
        if calls.is_empty() {
            return false;
        }
        self.waiting_for_tools += 1;
        let (toolbox, tx) = (ep.toolbox(self.registry), tx.clone());
        scope.spawn(move || {
            let (obs, ms) = toolbox.run(&calls);
            let _ = tx.send((s, obs, ms));
        });
        true
    }

    fn decode_step<'s>(
        &mut self,
        scope: &'s std::thread::Scope<'s, '_>,
        tx: &mpsc::Sender<ToolResult>,
        on_done: &mut dyn FnMut(Trajectory),
    ) where
        'e: 's,
    {
        let rows = self.batch.generating();
        let t = Instant::now();
        let result = self.batch.step();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        self.stats.model_ms += ms;
        self.stats.decode_steps += 1;
        self.stats.decoded_rows += rows;
        for s in 0..self.episodes.len() {
            if self.batch.is_generating(s) {
                self.turn_ms[s] += ms;
            }
        }
        match result {
            Ok(done) => {
                for (s, c) in done {
                    self.turn_ms[s] += ms;
                    if !self.completed(s, c, scope, tx) {
                        self.advance(s, scope, tx, on_done);
                    }
                }
            }
            Err(err) => {
                // The forward failed for the whole batch: every generating episode fails.
                for s in 0..self.episodes.len() {
                    if self.batch.is_generating(s) {
                        self.batch.release(s);
                        if let Some(ep) = self.episodes[s].as_mut() {
                            ep.fail(err.to_string());
                        }
                        self.advance(s, scope, tx, on_done);
                    }
                }
            }
        }
    }

    fn tools_done<'s>(
        &mut self,
        (s, obs, ms): ToolResult,
        scope: &'s std::thread::Scope<'s, '_>,
        tx: &mpsc::Sender<ToolResult>,
        on_done: &mut dyn FnMut(Trajectory),
    ) where
        'e: 's,
    {
        self.waiting_for_tools -= 1;
        if let Some(ep) = self.episodes[s].as_mut() {
            ep.on_observations(obs, ms);
            self.advance(s, scope, tx, on_done);
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
