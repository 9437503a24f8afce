//! The model worker: one thread that owns generation, fed through a bounded queue, so that the
//! async event loop only parses, queues and streams.

use kaizen_core::{Completion, FinishReason, SamplingParams, TokenLogprob};
use kaizen_models::{LlmError, LocalLlm};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub struct Job {
    pub prompt: Vec<u32>,
    /// The prompt's leading tokens that are the chat's opening, prefilled through the model's
    /// shared-prefix cache (`LocalLlm::generate_after`).
    pub shared_prefix: usize,
    pub params: SamplingParams,
    /// Per-token events are sent only when the client streams.
    pub stream: bool,
    pub events: UnboundedSender<WorkerEvent>,
}

pub enum WorkerEvent {
    Token { index: usize, token: TokenLogprob, delta: String, finish: Option<FinishReason> },
    Done(Result<Vec<Completion>, LlmError>),
}

pub struct JobQueue {
    tx: SyncSender<Job>,
}

impl JobQueue {
    pub fn start(llm: Arc<LocalLlm>, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(capacity.max(1));
        std::thread::Builder::new().name("kaizen-model".into()).spawn(move || {
            for job in rx {
                if job.events.is_closed() {
                    continue; // the client left while the job waited
                }
                let events = job.events.clone();
                let result = llm.generate_after(&job.prompt, job.shared_prefix, &job.params, &mut |e| {
                    if !job.stream {
                        return !events.is_closed();
                    }
                    events
                        .send(WorkerEvent::Token {
                            index: e.index,
                            token: e.token.clone(),
                            delta: e.text_delta.to_string(),
                            finish: e.finish_reason,
                        })
                        .is_ok()
                });
                let _ = job.events.send(WorkerEvent::Done(result));
            }
        })?;
        Ok(JobQueue { tx })
    }

    /// Queues a job; `None` when the queue is full.
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        shared_prefix: usize,
        params: SamplingParams,
        stream: bool,
    ) -> Option<UnboundedReceiver<WorkerEvent>> {
        let (events, rx) = unbounded_channel();
        match self.tx.try_send(Job { prompt, shared_prefix, params, stream, events }) {
            Ok(()) => Some(rx),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => None,
        }
    }
}
