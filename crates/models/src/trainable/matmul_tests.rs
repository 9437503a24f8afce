//! Unit tests of the strided `matmul` (kept in their own file beside it).

use super::*;

#[test]
fn products_of_views_and_transposes_by_hand() {
    // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]].
    let a = [1f32, 2.0, 3.0, 4.0];
    let b = [5f32, 6.0, 7.0, 8.0];
    let mut out = [0f32; 4];
    matmul(MatMut::rows(&mut out, 2, 2), MatRef::rows(&a, 2, 2), MatRef::rows(&b, 2, 2), 1.0, false);
    assert_eq!(out, [19.0, 22.0, 43.0, 50.0]);
    // aᵀ b = [[26, 30], [38, 44]], scaled by 0.5 and added to what is there.
    matmul(MatMut::rows(&mut out, 2, 2), MatRef::rows(&a, 2, 2).t(), MatRef::rows(&b, 2, 2), 0.5, true);
    assert_eq!(out, [32.0, 37.0, 62.0, 72.0]);
    // a bᵀ = [[17, 23], [39, 53]], overwriting.
    matmul(MatMut::rows(&mut out, 2, 2), MatRef::rows(&a, 2, 2), MatRef::rows(&b, 2, 2).t(), 1.0, false);
    assert_eq!(out, [17.0, 23.0, 39.0, 53.0]);
}

#[test]
fn a_view_reads_only_the_leading_rows_of_a_longer_slice() {
    // The first row of a 3-wide buffer times a 3 × 1 column: [1, 2, 3] · [1, 1, 1] = 6.
    let a = [1f32, 2.0, 3.0, 100.0, 100.0, 100.0];
    let ones = [1f32; 3];
    let mut out = [0f32; 1];
    matmul(MatMut::rows(&mut out, 1, 1), MatRef::rows(&a, 1, 3), MatRef::rows(&ones, 3, 1), 1.0, false);
    assert_eq!(out, [6.0]);
}

#[test]
#[should_panic(expected = "matmul")]
fn shapes_that_do_not_chain_are_refused_before_any_memory_is_read() {
    let x = [0f32; 6];
    let mut out = [0f32; 4];
    matmul(MatMut::rows(&mut out, 2, 2), MatRef::rows(&x, 2, 3), MatRef::rows(&x, 2, 3), 1.0, false);
}

#[test]
fn strided_views_read_and_write_one_head_of_interleaved_rows() {
    // Two rows of two 2-wide heads: [[1, 2 | 3, 4], [5, 6 | 7, 8]]. Head 1 is [[3, 4], [7, 8]];
    // times the identity, written into head 0 of `out` (head 1 of `out` left as it was).
    let x = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let eye = [1f32, 0.0, 0.0, 1.0];
    let mut out = [-1f32; 8];
    // SAFETY: head 0 of two 4-wide rows lies inside `out`, and nothing else touches it meanwhile.
    let dst = unsafe { MatMut::strided(out.as_mut_ptr(), 2, 2, 4) };
    matmul(dst, MatRef::strided(&x[2..], 2, 2, 4), MatRef::rows(&eye, 2, 2), 1.0, false);
    assert_eq!(out, [3.0, 4.0, -1.0, -1.0, 7.0, 8.0, -1.0, -1.0]);
}

#[test]
fn a_row_range_of_a_transpose_reads_those_columns() {
    // x = [[1, 2, 3], [4, 5, 6]]; rows 1..3 of xᵀ are [[2, 5], [3, 6]]; times [1, 1]ᵀ = [7, 9].
    let x = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let ones = [1f32; 2];
    let mut out = [0f32; 2];
    let a = MatRef::rows(&x, 2, 3).t().row_range(1..3);
    matmul(MatMut::rows(&mut out, 2, 1), a, MatRef::rows(&ones, 2, 1), 1.0, false);
    assert_eq!(out, [7.0, 9.0]);
}
