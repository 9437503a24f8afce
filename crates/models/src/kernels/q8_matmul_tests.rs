//! Unit tests of `q8_matmul` (kept in their own file beside it).

use super::*;

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
}

#[test]
fn block_quantisation_by_hand() {
    // max |v| = 2.54 → d = 0.02; 1.0 / 0.02 = 50, −2.54 → −127, 0.011 → round(0.55) = 1.
    let mut v = [0f32; QK];
    v[0] = 1.0;
    v[1] = -2.54;
    v[2] = 0.011;
    let mut q = [0i8; QK];
    let d = quantize_block(&v, &mut q);
    assert!((d - 0.02).abs() < 1e-7);
    assert_eq!(&q[..4], &[50, -127, 1, 0]);
    assert_eq!(quantize_block(&[0.0; QK], &mut q), 0.0);
    let r: Vec<f32> =
        [0.5f32, 1.5, 2.5, -0.5, -1.5, 126.5, 0.49999997, -3.7].iter().map(|&v| round_half_even(v)).collect();
    assert_eq!(r, vec![0.0, 2.0, 2.0, -0.0, -2.0, 126.0, 0.0, -4.0]);
}

#[test]
fn matches_f32_matmul_within_quantisation_error_and_is_batch_invariant() {
    let (n, k, m) = (40, 96, 11); // n not a multiple of 16, m over one row group
    let mut s = 42u64;
    let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut s)).collect();
    let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut s)).collect();
    let wm = Q8Matrix::quantize(&w, n, k).unwrap();
    let mut y = vec![0f32; m * n];
    wm.matmul(&Q8Acts::quantize(&x, m, k), &mut y);
    // Against the exact product of the dequantised operands (what the kernel computes).
    let deq = |v: &[f32]| -> Vec<f64> {
        let mut q = [0i8; QK];
        v.chunks(QK)
            .flat_map(|c| {
                let d = quantize_block(c, &mut q);
                q.map(|x| x as f64 * d as f64)
            })
            .collect()
    };
    let (wd, xd) = (deq(&w), deq(&x));
    for r in 0..m {
        for c in 0..n {
            let want: f64 = (0..k).map(|j| xd[r * k + j] * wd[c * k + j]).sum();
            let exact: f32 = (0..k).map(|j| x[r * k + j] * w[c * k + j]).sum();
            assert!((y[r * n + c] as f64 - want).abs() < 1e-4, "({r},{c}): {} vs {want}", y[r * n + c]);
            assert!((y[r * n + c] - exact).abs() < 0.1, "({r},{c}): {} vs {exact}", y[r * n + c]);
        }
        // Each row alone gives bit-identical results to the batch.
        let mut one = vec![0f32; n];
        wm.matmul(&Q8Acts::quantize(&x[r * k..(r + 1) * k], 1, k), &mut one);
        assert_eq!(&one[..], &y[r * n..(r + 1) * n]);
    }
}

#[test]
fn simd_and_scalar_paths_agree_bit_for_bit() {
    let (n, k, m) = (32, 64, 3);
    let mut s = 7u64;
    let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut s)).collect();
    let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut s) * 3.0).collect();
    let wm = Q8Matrix::quantize(&w, n, k).unwrap();
    let a = Q8Acts::quantize(&x, m, k);
    let mut simd_paths = 0;
    for t in 0..wm.tiles {
        let mut scalar = [[0f32; TILE]; ROWS];
        wm.tile_rows_scalar(t, &a, 0, m, &mut scalar);
        #[cfg(target_arch = "x86_64")]
        if vnni::available() {
            let mut simd = [[0f32; TILE]; ROWS];
            unsafe { vnni::tile_rows(&wm, t, &a, 0, m, &mut simd) };
            assert_eq!(simd, scalar);
            simd_paths += 1;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            let mut simd = [[0f32; TILE]; ROWS];
            unsafe { avx2::tile_rows(&wm, t, &a, 0, m, &mut simd) };
            assert_eq!(simd, scalar);
            simd_paths += 1;
        }
    }
    // On x86-64 every machine this project runs on has at least AVX2: a SIMD path was compared.
    #[cfg(target_arch = "x86_64")]
    assert!(simd_paths > 0 || std::env::var("KAIZEN_NO_AVX2").is_ok(), "no SIMD kernel ran on this CPU");
    let _ = simd_paths;
}

#[test]
fn the_avx2_kernel_sums_extreme_blocks_exactly() {
    // Every weight and activation at ±127 (the u8 form 255 and 1): pair sums of 2 · 255 · 127
    // that a saturating 16-bit dot product would clip. By hand, each output is
    // Σ_j d_w q_w · d_x q_x over 64 values with q = ±127, d = 1/127 → Σ (±1)(±1).
    let (n, k, m) = (16, 64, 2);
    let w: Vec<f32> = (0..n * k).map(|i| if (i / k + i % 3) % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let x: Vec<f32> = (0..m * k).map(|i| if i % 5 == 0 { -1.0 } else { 1.0 }).collect();
    let wm = Q8Matrix::quantize(&w, n, k).unwrap();
    let a = Q8Acts::quantize(&x, m, k);
    let mut scalar = [[0f32; TILE]; ROWS];
    wm.tile_rows_scalar(0, &a, 0, m, &mut scalar);
    for r in 0..m {
        for c in 0..n {
            let want: f32 = (0..k).map(|j| w[c * k + j] * x[r * k + j]).sum();
            assert!((scalar[r][c] - want).abs() < 1e-4, "({r},{c}): {} vs {want}", scalar[r][c]);
        }
    }
    // The AVX2 kernel itself (whatever `matmul` would pick on this CPU), bit for bit.
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        let mut simd = [[0f32; TILE]; ROWS];
        unsafe { avx2::tile_rows(&wm, 0, &a, 0, m, &mut simd) };
        assert_eq!(simd, scalar);
    }
}

#[test]
fn rejects_bad_shapes() {
    assert!(Q8Matrix::quantize(&[0.0; 30], 1, 30).is_err());
    assert!(Q8Matrix::quantize(&[0.0; 64], 3, 32).is_err());
}
