//! One runner for every way a verb runs episodes: plain ones, Best-of-N and Best-of-Q, with a
//! local model or a remote policy. It owns the concurrency: plain episodes of a local model
//! decode together through the batched engine (`engine::run_local`); everything else runs on a
//! bounded pool of threads, one episode each (a local model then serves them concurrently;
//! a remote one gets one connection per thread).

use crate::engine::{run_local, EngineStats};
use crate::episode::{run_episode, Agent, EpisodeConfig, Job};
use crate::rerank::{run_best_of_n, Selector};
use kaizen_core::trajectory::Trajectory;
use kaizen_core::Env;
use kaizen_tools::ToolRegistry;

/// How each step's action is chosen.
pub enum Mode<'s> {
    /// The policy's one sample.
    Plain,
    /// `n` candidates per step, the selector's pick executed, the set recorded (`rerank`).
    BestOfN { n: usize, selector: &'s Selector<'s> },
}

pub struct Runner<'a> {
    pub agent: Agent<'a>,
    pub env: &'a dyn Env,
    pub registry: &'a ToolRegistry,
    /// Episodes in flight at once (capped by the env's own limit, e.g. one browser each).
    pub slots: usize,
}

impl<'a> Runner<'a> {
    pub fn new(agent: Agent<'a>, env: &'a dyn Env, registry: &'a ToolRegistry, slots: usize) -> Self {
        Runner { agent, env, registry, slots }
    }

    /// Runs every job; `on_done` receives each trajectory as its episode ends (in completion
    /// order). Never fails: an error ends its episode as `Error`. Returns the engine's stats
    /// where the batched engine ran.
    pub fn run(
        &self,
        jobs: impl IntoIterator<Item = Job>,
        cfg: &EpisodeConfig,
        mode: &Mode,
        on_done: &mut dyn FnMut(Trajectory),
    ) -> Option<EngineStats> {
        let slots = self.slots.clamp(1, 64).min(self.env.max_concurrent_episodes().unwrap_or(usize::MAX));
        let (env, registry, agent) = (self.env, self.registry, &self.agent);
        let jobs: Vec<Job> = jobs.into_iter().collect();
        match (mode, agent) {
            (Mode::Plain, Agent::Local(llm)) => Some(run_local(llm, env, registry, jobs, cfg, slots, on_done)),
            (Mode::Plain, Agent::Remote(_)) => {
                let one = |job: &Job| run_episode(agent, env, registry, &job.task, cfg, job.seed, &job.id);
                pool(&jobs, slots, &one, on_done);
                None
            }
            (Mode::BestOfN { n, selector }, _) => {
                let one = |job: &Job| run_best_of_n(agent, env, registry, job.clone(), cfg, *n, selector);
                pool(&jobs, slots, &one, on_done);
                None
            }
        }
    }
}

impl Runner<'_> {
    /// Plain episodes of every job, returned in job order (whatever order they finished in).
    pub fn run_in_order(&self, jobs: Vec<Job>, cfg: &EpisodeConfig) -> Vec<Trajectory> {
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let mut out = Vec::new();
        self.run(jobs, cfg, &Mode::Plain, &mut |t| out.push(t));
        crate::in_job_order(&mut out, &ids);
        out
    }
}

/// Runs `one` on every job with `slots` worker threads; results in completion order.
fn pool(jobs: &[Job], slots: usize, one: &(dyn Fn(&Job) -> Trajectory + Sync), on_done: &mut dyn FnMut(Trajectory)) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..slots {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                if tx.send(one(job)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for t in rx {
            on_done(t);
        }
    });
}
