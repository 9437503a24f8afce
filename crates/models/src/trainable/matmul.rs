//! Small matrix products inside CPU kernels, on strided views of plain slices: the `gemm`
//! crate (candle's own matrix multiply, with its AVX-512 micro-kernels) on one thread, since
//! the kernels that call it already split their work across candle's pool.

use gemm::Parallelism;

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
        MatRef { data: &data[..rows * cols], rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose, reading the same floats.
    pub fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
}

/// A writable `rows × cols` matrix, row after row, in the first `rows × cols` floats of a slice.
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
}

impl<'a> MatMut<'a> {
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut { data: &mut data[..rows * cols], rows, cols }
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
    // SAFETY: each view's slice was cut to exactly cover its strided elements (`rows`), and
    // `t` only swaps strides, so every index gemm forms — `r·rs + c·cs` with `r < rows`,
    // `c < cols` — lies inside its slice; the shapes chain (asserted above); `dst` is borrowed
    // mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            1,
            dst.cols as isize,
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
