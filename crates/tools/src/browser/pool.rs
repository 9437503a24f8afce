//! K browsers shared by concurrent episodes. An episode leases one; a lease that comes back
//! broken (crashed, hung) is thrown away and the slot relaunches on its next lease, so one
//! dead browser costs one failed episode and the run goes on.

use super::driver::{Browser, BrowserConfig, BrowserError};
use std::sync::{Arc, Condvar, Mutex};

pub struct BrowserPool {
    cfg: BrowserConfig,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    /// Idle browsers (launched or not yet: `None` launches on lease).
    idle: Vec<Option<Browser>>,
    launches: usize,
    discarded: usize,
}

impl BrowserPool {
    pub fn new(size: usize, cfg: BrowserConfig) -> Arc<BrowserPool> {
        let size = size.max(1);
        Arc::new(BrowserPool {
            cfg,
            size,
            state: Mutex::new(PoolState { idle: (0..size).map(|_| None).collect(), launches: 0, discarded: 0 }),
            freed: Condvar::new(),
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Browsers launched so far, and how many were thrown away broken (each is a restart).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.launches, s.discarded)
    }

    /// Memory of the idle, launched browsers (bytes, PSS), and how many there are.
    pub fn idle_memory(&self) -> (u64, usize) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let live: Vec<&Browser> = s.idle.iter().flatten().collect();
        (live.iter().map(|b| b.memory_bytes()).sum(), live.len())
    }

    /// Waits for a free browser (launching it if the slot is empty).
    pub fn lease(self: &Arc<Self>) -> Result<Lease, BrowserError> {
        let slot = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(b) = s.idle.pop() {
                    break b;
                }
                s = self.freed.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        };
        let browser = match slot {
            Some(b) => b,
            None => match Browser::launch(&self.cfg) {
                Ok(b) => {
                    self.state.lock().unwrap_or_else(|p| p.into_inner()).launches += 1;
                    b
                }
                Err(e) => {
                    self.give_back(None, false);
                    return Err(e);
                }
            },
        };
        Ok(Lease { pool: self.clone(), browser: std::mem::ManuallyDrop::new(browser) })
    }

    fn give_back(&self, browser: Option<Browser>, discarded: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.idle.push(browser);
        s.discarded += discarded as usize;
        drop(s);
        self.freed.notify_one();
    }
}

/// A browser on loan; returned to the pool on drop (or thrown away if it broke).
pub struct Lease {
    pool: Arc<BrowserPool>,
    /// Taken out only in `drop`.
    browser: std::mem::ManuallyDrop<Browser>,
}

impl std::ops::Deref for Lease {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Browser {
        &mut self.browser
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // SAFETY: `browser` is never used again after this; `drop` runs once.
        let browser = unsafe { std::mem::ManuallyDrop::take(&mut self.browser) };
        let broken = browser.is_broken();
        // Dropping a broken browser kills its processes; the slot relaunches on next lease.
        self.pool.give_back((!broken).then_some(browser), broken);
    }
}
