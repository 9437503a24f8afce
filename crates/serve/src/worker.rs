//! The model worker: one thread that owns generation, fed through a bounded queue, so that the
//! async event loop only parses, queues and streams. Requests decode together on the
//! continuous-batching engine (`SequenceBatch`): each of a request's `n` continuations takes a
//! slot, a request joins the batch as soon as enough slots are free, and every step decodes
//! one token of every running continuation in one batched forward. A request's numbers do not
//! depend on what else is in the batch (the engine's feeding schedule), so a served answer is
//! the same alone or under load.

use kaizen_core::{Completion, FinishReason, SamplingParams, TokenLogprob};
use kaizen_models::{LlmError, LocalLlm, SequenceBatch, TokenEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Positions each slot's cache row holds before it first grows (it doubles as needed).
const SLOT_RESERVE: usize = 1024;

pub struct Job {
    pub prompt: Vec<u32>,
    /// The prompt's leading tokens that are the chat's opening, prefilled through the model's
    /// shared-prefix cache.
    pub shared_prefix: usize,
    /// The prompt's pictures in placeholder order (a vision model).
    pub pictures: Vec<String>,
    pub params: SamplingParams,
    /// Per-token events are sent only when the client streams.
    pub stream: bool,
    pub events: UnboundedSender<WorkerEvent>,
}

pub enum WorkerEvent {
    Token { index: usize, token: TokenLogprob, delta: String, finish: Option<FinishReason> },
    Done(Result<Vec<Completion>, LlmError>),
}

/// What the worker has done since it started (`GET /kaizen/stats`).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub requests: AtomicUsize,
    pub decode_steps: AtomicUsize,
    /// Continuations decoded, summed over steps: `/ decode_steps` is the mean batch.
    pub decoded_rows: AtomicUsize,
    pub peak_batch: AtomicUsize,
    pub cancelled: AtomicUsize,
    /// Positions each batch slot's KV row holds now.
    pub kv_positions: AtomicUsize,
}

pub struct JobQueue {
    tx: SyncSender<Job>,
    pub stats: Arc<WorkerStats>,
}

impl JobQueue {
    /// Starts the worker with `slots` batch slots (continuations decoding at once).
    pub fn start(llm: Arc<LocalLlm>, capacity: usize, slots: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(capacity.max(1));
        let stats = Arc::new(WorkerStats::default());
        let worker_stats = stats.clone();
        std::thread::Builder::new()
            .name("kaizen-model".into())
            .spawn(move || Worker::new(&llm, slots.max(1), &worker_stats).run(rx))?;
        Ok(JobQueue { tx, stats })
    }

    /// Queues a job; `None` when the queue is full.
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        shared_prefix: usize,
        pictures: Vec<String>,
        params: SamplingParams,
        stream: bool,
    ) -> Option<UnboundedReceiver<WorkerEvent>> {
        let (events, rx) = unbounded_channel();
        match self.tx.try_send(Job { prompt, shared_prefix, pictures, params, stream, events }) {
            Ok(()) => Some(rx),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => None,
        }
    }
}

/// A request in the batch: its slots (continuation i in `slots[i]`) and finished answers.
struct Running {
    job: Job,
    slots: Vec<usize>,
    done: Vec<Option<Completion>>,
}

struct Worker<'a> {
    llm: &'a LocalLlm,
    batch: SequenceBatch<'a>,
    /// Which request holds each slot.
    owner: Vec<Option<u64>>,
    running: HashMap<u64, Running>,
    next_id: u64,
    stats: &'a WorkerStats,
}

impl<'a> Worker<'a> {
    fn new(llm: &'a LocalLlm, slots: usize, stats: &'a WorkerStats) -> Self {
        Worker {
            llm,
            batch: SequenceBatch::new(llm, slots, SLOT_RESERVE),
            owner: vec![None; slots],
            running: HashMap::new(),
            next_id: 0,
            stats,
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        // A request that waits for slots to free (FIFO: later ones wait behind it).
        let mut waiting: Option<Job> = None;
        loop {
            // Admit what fits; block for work only when nothing is decoding.
            loop {
                if self.running.is_empty() {
                    self.shrink();
                }
                let job = match waiting.take() {
                    Some(j) => j,
                    None if self.running.is_empty() => match rx.recv() {
                        Ok(j) => j,
                        Err(_) => return, // the server is gone
                    },
                    None => match rx.try_recv() {
                        Ok(j) => j,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) if self.running.is_empty() => return,
                        Err(TryRecvError::Disconnected) => break,
                    },
                };
                if job.events.is_closed() {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    continue; // the client left while the job waited
                }
                if job.params.n > self.owner.len() {
                    // More continuations than the batch has slots: alone, outside the batch.
                    self.alone(job);
                    continue;
                }
                let free: Vec<usize> = (0..self.owner.len()).filter(|&s| self.owner[s].is_none()).collect();
                if free.len() < job.params.n {
                    waiting = Some(job);
                    break;
                }
                self.admit(job, &free);
            }
            if !self.running.is_empty() {
                self.step();
            }
        }
    }

    /// With nothing running, gives back what a long sequence grew the KV rows to: every slot
    /// holds as many positions as the longest sequence so far, and would keep that memory.
    fn shrink(&mut self) {
        if self.batch.capacity() > SLOT_RESERVE {
            self.batch = SequenceBatch::new(self.llm, self.owner.len(), SLOT_RESERVE);
        }
        self.stats.kv_positions.store(self.batch.capacity(), Ordering::Relaxed);
    }

    /// `generate_after` for a request too wide for the batch.
    fn alone(&mut self, job: Job) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let events = job.events.clone();
        let result = self.llm.generate_after(&job.prompt, job.shared_prefix, &job.pictures, &job.params, &mut |e| {
            if !job.stream {
                return !events.is_closed();
            }
            send_token(&events, &e)
        });
        let _ = job.events.send(WorkerEvent::Done(result));
    }

    fn admit(&mut self, job: Job, free: &[usize]) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id;
        self.next_id += 1;
        let slots = free[..job.params.n].to_vec();
        let events = job.events.clone();
        let stream = job.stream;
        self.batch.show(slots[0], &job.pictures);
        let started =
            self.batch.start_choices(&slots, &job.prompt, job.params.clone(), job.shared_prefix, &mut |_, e| {
                if stream {
                    send_token(&events, &e);
                }
            });
        match started {
            Err(e) => {
                slots.iter().for_each(|&s| self.batch.release(s));
                let _ = job.events.send(WorkerEvent::Done(Err(e)));
            }
            Ok(finished) => {
                for &s in &slots {
                    self.owner[s] = Some(id);
                }
                let n = slots.len();
                self.running.insert(id, Running { job, slots, done: vec![None; n] });
                self.finish(finished);
            }
        }
    }

    /// One batched decoding step; streams each new token to its client, drops the requests
    /// whose client left, and answers those whose continuations all finished.
    fn step(&mut self) {
        let (owner, running) = (&self.owner, &self.running);
        let rows = self.batch.generating();
        let stepped = self.batch.step_observed(&mut |slot, e| {
            let Some(r) = owner[slot].and_then(|id| running.get(&id)) else { return };
            if r.job.stream {
                send_token(&r.job.events, &e);
            }
        });
        self.stats.decode_steps.fetch_add(1, Ordering::Relaxed);
        self.stats.decoded_rows.fetch_add(rows, Ordering::Relaxed);
        self.stats.peak_batch.fetch_max(rows, Ordering::Relaxed);
        self.stats.kv_positions.store(self.batch.capacity(), Ordering::Relaxed);
        match stepped {
            Ok(finished) => self.finish(finished),
            Err(e) => {
                // A failed forward leaves every row in doubt: answer all with the error.
                let msg = e.to_string();
                for id in self.running.keys().copied().collect::<Vec<_>>() {
                    self.end(id, Some(Err(LlmError::compute(msg.clone()))));
                }
                return;
            }
        }
        let gone: Vec<u64> = self.running.iter().filter(|(_, r)| r.job.events.is_closed()).map(|(id, _)| *id).collect();
        for id in gone {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            self.end(id, None);
        }
    }

    /// Records finished continuations; a request with all of them done is answered.
    fn finish(&mut self, finished: Vec<(usize, Completion)>) {
        for (slot, completion) in finished {
            let Some(id) = self.owner[slot] else { continue };
            let Some(r) = self.running.get_mut(&id) else { continue };
            if let Some(i) = r.slots.iter().position(|&s| s == slot) {
                r.done[i] = Some(completion);
            }
            if r.done.iter().all(Option::is_some) {
                let answers = r.done.iter_mut().filter_map(Option::take).collect();
                self.end(id, Some(Ok(answers)));
            }
        }
    }

    /// Frees a request's slots and sends its answer (none when its client left).
    fn end(&mut self, id: u64, answer: Option<Result<Vec<Completion>, LlmError>>) {
        let Some(r) = self.running.remove(&id) else { return };
        for &s in &r.slots {
            self.batch.release(s);
            self.owner[s] = None;
        }
        if let Some(a) = answer {
            let _ = r.job.events.send(WorkerEvent::Done(a));
        }
    }
}

/// Sends one token event; false when the client is gone.
fn send_token(events: &UnboundedSender<WorkerEvent>, e: &TokenEvent) -> bool {
    events
        .send(WorkerEvent::Token {
            index: e.index,
            token: e.token.clone(),
            delta: e.text_delta.to_string(),
            finish: e.finish_reason,
        })
        .is_ok()
}
