//! Splitting CPU kernels across candle's own thread pool (the one its ops use), so kaizen's
//! kernels never start a second pool that would fight candle's spinning workers for cores.

use std::mem::MaybeUninit;

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

/// `0..n_items` cut into one contiguous part per thread of candle's pool (fewer when items are
/// few), for kernels that pay a setup per call — gemm packs a whole operand, a reduction keeps
/// a partial sum — where a few large parts beat finely balanced small ones.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    n_items: usize,
    per_part: usize,
}

impl Parts {
    pub fn per_thread(n_items: usize) -> Self {
        let threads = candle_core::utils::barrier_pool().n_workers() + 1;
        Parts { n_items, per_part: n_items.div_ceil(threads).max(1) }
    }

    pub fn count(&self) -> usize {
        self.n_items.div_ceil(self.per_part)
    }

    /// Runs `f(part, items)` for every part, across the pool when `work` is large enough.
    pub fn run(&self, work: usize, f: impl Fn(usize, std::ops::Range<usize>) + Sync) {
        for_chunks(self.count(), work, |parts| {
            for part in parts {
                f(part, part * self.per_part..((part + 1) * self.per_part).min(self.n_items));
            }
        });
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

    /// `len` floats from `i`, possibly not written yet, for one worker to fill.
    ///
    /// # Safety
    /// `i + len` lies within the buffer's allocation, and nothing else touches these floats
    /// while the slice lives.
    pub unsafe fn slots<'a>(self, i: usize, len: usize) -> &'a mut [MaybeUninit<f32>] {
        // SAFETY: in bounds and exclusive (the caller's promise); `MaybeUninit` asks nothing
        // of the current contents.
        unsafe { std::slice::from_raw_parts_mut(self.at(i).cast::<MaybeUninit<f32>>(), len) }
    }
}

/// A kernel's output of `len` floats, not zeroed first: its workers each fill a disjoint part
/// (`SharedOut::slots`), then `into_vec` hands it over. Zeroing outputs that are written in
/// full anyway cost a memory pass per op, on the single calling thread.
pub struct Fresh {
    buf: Vec<f32>,
    len: usize,
}

impl Fresh {
    pub fn new(len: usize) -> Self {
        Fresh { buf: Vec::with_capacity(len), len }
    }

    pub fn shared(&mut self) -> SharedOut {
        SharedOut(self.buf.as_mut_ptr())
    }

    /// # Safety
    /// Every one of the `len` floats has been written.
    pub unsafe fn into_vec(mut self) -> Vec<f32> {
        // SAFETY: capacity is `len`, and all of it is initialised (the caller's promise).
        unsafe { self.buf.set_len(self.len) };
        self.buf
    }
}

// SAFETY: only used for writes to disjoint ranges (each caller documents its partition), and
// the buffer outlives the parallel call.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}
