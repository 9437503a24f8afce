//! Small matrix products inside CPU kernels, on strided views of plain slices: the `gemm`
//! crate (candle's own matrix multiply, with its AVX-512 micro-kernels) on one thread, since
//! the kernels that call it already split their work across candle's pool.

use gemm::Parallelism;
use std::marker::PhantomData;

/// A read-only `rows × cols` matrix in a slice: element `(r, c)` at `r·rs + c·cs`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// The first `rows × cols` floats of `data`, row after row.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    /// `rows` rows of `cols` floats from `data[0]`, each `rs` floats after the one before
    /// (one head's columns inside rows that hold every head).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        MatRef { data: &data[..span(rows, cols, rs, 1)], rows, cols, rs, cs: 1 }
    }

    /// The transpose, reading the same floats.
    pub fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// Rows `range` only.
    pub fn row_range(self, range: std::ops::Range<usize>) -> Self {
        let rows = range.end.min(self.rows).saturating_sub(range.start);
        let from = if rows == 0 { 0 } else { range.start * self.rs };
        MatRef { data: &self.data[from..][..span(rows, self.cols, self.rs, self.cs)], rows, ..self }
    }
}

/// A writable `rows × cols` matrix, rows `rs` floats apart. A raw pointer rather than a slice,
/// so that workers can each own some columns of the same rows (one head of every token).
pub struct MatMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    rs: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

impl<'a> MatMut<'a> {
    /// The first `rows × cols` floats of `data`, row after row.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        let data = &mut data[..rows * cols];
        MatMut { ptr: data.as_mut_ptr(), rows, cols, rs: cols, _borrow: PhantomData }
    }

    /// `rows` rows of `cols` floats from `ptr`, each `rs` floats after the one before.
    ///
    /// # Safety
    /// For `'a`, `ptr + r·rs + c` (`r < rows`, `c < cols`) must be valid for writes, and
    /// nothing else may read or write those floats.
    pub unsafe fn strided(ptr: *mut f32, rows: usize, cols: usize, rs: usize) -> Self {
        MatMut { ptr, rows, cols, rs, _borrow: PhantomData }
    }
}

/// Floats from a strided matrix's first element to its last, inclusive.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `dst = dst + scale · a b` when `accumulate`, else `dst = scale · a b`.
///
/// Panics when the shapes do not chain (`a: m × k`, `b: k × n`, `dst: m × n`): callers derive
/// them from one checked set of sizes, so a mismatch is a bug in the kernel, never bad input.
pub fn matmul(dst: MatMut, a: MatRef, b: MatRef, scale: f32, accumulate: bool) {
    assert!(
        a.rows == dst.rows && b.cols == dst.cols && a.cols == b.rows,
        "matmul: {}×{} · {}×{} into {}×{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst.rows,
        dst.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    // SAFETY: each input view's slice was cut to cover its strided elements (`strided`), and
    // `t` only swaps strides, so every index gemm forms — `r·rs + c·cs` with `r < rows`,
    // `c < cols` — lies inside its slice; `dst`'s elements are writable and its own
    // (`MatMut::rows` borrows them mutably, `MatMut::strided`'s caller promises it), so they
    // alias neither input; the shapes chain (asserted above).
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.ptr,
            1,
            dst.rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

#[cfg(test)]
#[path = "matmul_tests.rs"]
mod tests;
