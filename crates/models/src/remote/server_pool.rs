//! A pool of OpenAI-compatible servers behind one `Policy` (`--policy openai:URL1,URL2,…`):
//! each request goes to the server with the fewest requests outstanding, and a server that
//! fails (cannot be reached, times out, answers 5xx) is taken out of rotation for a back-off
//! that doubles with each consecutive failure, then tried again by the next request that comes
//! along (a circuit breaker: no separate prober, the traffic itself is the health check). A
//! failed request is retried on the next server, each server at most once per request, so an
//! episode whose server dies continues on another; only when every server fails is the request
//! an error (the episode is then recorded as failed, never dropped). A 4xx answer is the
//! request's own fault and is returned at once, not retried elsewhere.
//!
//! Requests are stateless chat completions with their own seeds, so which server answers does
//! not change what an identical server would sample.

use crate::remote::Endpoint;
use crate::OpenAiClient;
use kaizen_core::{ChatRequest, Completion, Policy, PolicyError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Back-off after a server's first failure; doubled per consecutive failure up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct Member {
    client: OpenAiClient,
    outstanding: AtomicUsize,
    health: Mutex<Health>,
    served: AtomicUsize,
}

/// One server's circuit breaker: in or out of rotation, and for how long. Shared by the
/// `Policy` pool and the Best-of-Q proxy's upstream pool, so both route by the same rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    /// Out of rotation until then.
    down_until: Option<Instant>,
    consecutive_failures: u32,
    /// A request is probing it after its back-off ran out.
    probing: bool,
}

impl Health {
    /// Whether it is out of rotation at `now`.
    pub fn is_down(&self, now: Instant) -> bool {
        self.down_until.is_some_and(|t| t > now)
    }

    /// Called before a request: a server whose back-off has run out is probed by this one
    /// request, which puts it out of rotation again meanwhile so no other joins it.
    pub fn claim_probe(&mut self, now: Instant) {
        if self.consecutive_failures > 0 && !self.is_down(now) {
            self.down_until = Some(now + backoff(self.consecutive_failures));
            self.probing = true;
        }
    }

    pub fn record_success(&mut self) {
        *self = Health::default();
    }

    /// The server failed a request. One outage is one failure, however many requests were in
    /// flight on it: a server already out of rotation (and not being probed) stays as it is.
    /// Returns the new back-off when this failure took it out.
    pub fn record_failure(&mut self, now: Instant) -> Option<Duration> {
        if !self.probing && self.is_down(now) {
            return None;
        }
        self.probing = false;
        self.consecutive_failures += 1;
        let wait = backoff(self.consecutive_failures);
        self.down_until = Some(now + wait);
        Some(wait)
    }
}

/// What the pool knows of a server when it orders them for a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemberState {
    pub outstanding: usize,
    /// Whether it is out of rotation now.
    pub down: bool,
}

/// The order in which a request tries the servers: those in rotation first, fewest outstanding
/// requests first, ties to the lower index; then the ones out of rotation (a last resort when
/// every server in rotation failed: better a try than a failed episode), in the same order.
pub fn try_order(members: &[MemberState]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&i| (members[i].down, members[i].outstanding, i));
    order
}

/// The back-off after `failures` consecutive failures: `FIRST_BACKOFF · 2^(failures − 1)`, at
/// most `MAX_BACKOFF`.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// Counts a request as outstanding on a server while it lives, however the call ends.
pub struct Outstanding<'a>(&'a AtomicUsize);

impl<'a> Outstanding<'a> {
    pub fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Outstanding(count)
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct ServerPool {
    members: Vec<Member>,
    name: String,
}

/// Requests each server of a pool has answered, and whether it is in rotation now.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    pub url: String,
    pub served: usize,
    pub down: bool,
}

impl ServerPool {
    /// `urls`: server roots (or their `/v1`); `model`: the name every server knows it by.
    pub fn new(urls: &[&str], model: &str) -> Result<Self, PolicyError> {
        if urls.is_empty() {
            return Err(PolicyError::InvalidRequest("a server pool needs at least one URL".into()));
        }
        let members = urls
            .iter()
            .map(|u| {
                Ok(Member {
                    client: OpenAiClient::new(u, model)?,
                    outstanding: AtomicUsize::new(0),
                    health: Mutex::new(Health::default()),
                    served: AtomicUsize::new(0),
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        Ok(ServerPool { members, name: model.to_string() })
    }

    pub fn stats(&self) -> Vec<ServerStats> {
        let now = Instant::now();
        self.members
            .iter()
            .map(|m| ServerStats {
                url: m.client.base_url().to_string(),
                served: m.served.load(Ordering::Relaxed),
                down: m.health.lock().map(|h| h.is_down(now)).unwrap_or(false),
            })
            .collect()
    }

    fn states(&self) -> Vec<MemberState> {
        let now = Instant::now();
        self.members
            .iter()
            .map(|m| MemberState {
                outstanding: m.outstanding.load(Ordering::Relaxed),
                down: m.health.lock().map(|h| h.is_down(now)).unwrap_or(false),
            })
            .collect()
    }

    fn endpoint(&self, i: usize) -> &Endpoint {
        &self.members[i].client
    }
}

impl Policy for ServerPool {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let mut failures = Vec::new();
        let mut busy = true;
        for i in try_order(&self.states()) {
            let m = &self.members[i];
            m.health
                .lock()
                .map_err(|_| PolicyError::Backend("poisoned pool state".into()))?
                .claim_probe(Instant::now());
            let got = {
                let _busy = Outstanding::enter(&m.outstanding);
                m.client.chat(req)
            };
            let mut health = m.health.lock().map_err(|_| PolicyError::Backend("poisoned pool state".into()))?;
            let url = self.endpoint(i).base_url();
            match got {
                Ok(c) => {
                    health.record_success();
                    m.served.fetch_add(1, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(PolicyError::InvalidRequest(e)) => return Err(PolicyError::InvalidRequest(e)),
                // Up but loaded: the next server may take it; this one stays in rotation.
                Err(PolicyError::Busy(e)) => failures.push(format!("{url}: {e}")),
                Err(PolicyError::Backend(e)) => {
                    busy = false;
                    if let Some(wait) = health.record_failure(Instant::now()) {
                        eprintln!(
                            "warning: {url} failed ({e}); out of rotation for {} s, the request goes on",
                            wait.as_secs()
                        );
                    }
                    failures.push(format!("{url}: {e}"));
                }
            }
        }
        let all = failures.join("; ");
        Err(if busy {
            PolicyError::Busy(format!("every server in the pool is busy: {all}"))
        } else {
            PolicyError::Backend(format!("every server in the pool failed: {all}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_least_busy_server_in_rotation_first() {
        let s = |outstanding, down| MemberState { outstanding, down };
        assert_eq!(try_order(&[s(2, false), s(0, false), s(1, false)]), vec![1, 2, 0]);
        // Ties to the lower index; a server out of rotation only after every other.
        assert_eq!(try_order(&[s(1, false), s(0, true), s(1, false)]), vec![0, 2, 1]);
        assert_eq!(try_order(&[s(0, true), s(3, true)]), vec![0, 1]);
    }

    #[test]
    fn back_off_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(6), Duration::from_secs(60));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }

    #[test]
    fn one_outage_is_one_failure_and_one_request_probes() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(h.record_failure(t0), Some(Duration::from_secs(2)));
        // Requests that were in flight on it fail too: the same outage, no longer back-off.
        assert_eq!(h.record_failure(t0 + Duration::from_millis(10)), None);
        assert!(h.is_down(t0 + Duration::from_secs(1)) && !h.is_down(t0 + Duration::from_secs(3)));
        // Back-off over: one request claims the probe (the server is out again meanwhile); its
        // failure doubles the back-off.
        let t1 = t0 + Duration::from_secs(3);
        h.claim_probe(t1);
        assert!(h.is_down(t1 + Duration::from_millis(1)));
        assert_eq!(h.record_failure(t1 + Duration::from_millis(5)), Some(Duration::from_secs(4)));
        h.record_success();
        assert!(!h.is_down(t1 + Duration::from_millis(6)));
    }

    #[test]
    fn a_pool_needs_servers_with_http_urls() {
        assert!(ServerPool::new(&[], "m").is_err());
        assert!(ServerPool::new(&["http://127.0.0.1:1", "ftp://x"], "m").is_err());
    }
}
