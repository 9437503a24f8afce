//! Splitting CPU kernels across candle's own thread pool (the one its ops use), so kaizen's
//! kernels never start a second pool that would fight candle's spinning workers for cores.

/// Runs `f` over `0..n_items` in chunks: on the calling thread when `work` (a rough cost) is
/// small — waking the pool costs more — else across the pool.
pub fn for_chunks(n_items: usize, work: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    /// About 250k multiply-adds: below this one thread is faster than waking others.
    const PARALLEL_MIN_WORK: usize = 1 << 18;
    if work < PARALLEL_MIN_WORK || n_items < 2 {
        f(0..n_items);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(n_items, f);
    }
}

/// An output buffer that several workers write at disjoint places.
#[derive(Clone, Copy)]
pub struct SharedOut(pub *mut f32);

impl SharedOut {
    /// The address `i` floats in. (A method, so closures capture the `Sync` wrapper rather
    /// than the raw pointer field.)
    pub fn at(self, i: usize) -> *mut f32 {
        // SAFETY of use: callers stay inside the buffer and write disjoint ranges.
        self.0.wrapping_add(i)
    }
}

// SAFETY: only used for writes to disjoint ranges (each caller documents its partition), and
// the buffer outlives the parallel call.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}
