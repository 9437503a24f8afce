//! kaizen's int8 matrix multiply for 8-bit weights: `y = x · Wᵀ` with `W` quantised to Q8_0
//! (per 32 values: `w ≈ d_w · q_w`, `d_w = max|w| / 127`) and each activation row quantised the
//! same way on the fly. Per output and 32-block `b`:
//! `y += (Σ_j q_w[j] · q_x[j]) · (d_w[b] · d_x[b])`, summed over blocks in order.
//!
//! Why our own: candle's CPU Q8_0 path runs at a small fraction of what AVX-512 VNNI does, and
//! its VNNI kernels need `k % 256 == 0` (SmolLM2 has k = 576). Weights are repacked once into
//! tiles of 16 output rows so one `vpdpbusd` computes 4 products for 16 outputs, and one weight
//! tile serves up to 8 activation rows (the N continuations of a shared prefix) per load.
//!
//! The integer sums are exact and the float steps run in the same order on every path (VNNI or
//! scalar, any batch size, any thread count), so a row's result never depends on its batch.

use crate::kernels::parallel::{for_chunks, SharedOut};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

/// Output rows per tile: one 512-bit register of 16 lanes.
const TILE: usize = 16;
/// Values per quantisation block.
const QK: usize = 32;
/// 4-byte groups per block (one `vpdpbusd` each).
const GROUPS: usize = QK / 4;
/// Activation rows that share one pass over a weight tile.
const ROWS: usize = 8;

/// Weights `[n, k]` in Q8_0, repacked in tiles of 16 rows.
pub struct Q8Matrix {
    n: usize,
    k: usize,
    tiles: usize,
    kb: usize,
    /// `[tile][block][16]`: `d_w` of each row's block.
    scales: Vec<f32>,
    /// `[tile][block][group][16 rows][4]`: `q_w + 128` (unsigned, as `vpdpbusd` wants).
    quants: Vec<u8>,
}

/// Activations `[m, k]` quantised per 32-block.
pub struct Q8Acts {
    m: usize,
    kb: usize,
    /// `[m][block]`
    scales: Vec<f32>,
    /// `[m][k]`
    quants: Vec<i8>,
    /// `[m][block]`: `128 · Σ q_x`, undoing the +128 offset of the weights.
    offsets: Vec<i32>,
}

/// Rounds to the nearest integer, ties to even, for |v| < 2²²: adding 1.5·2²³ pushes the
/// fraction out of the mantissa. Plain arithmetic, so it vectorises (`f32::round` is a libm
/// call on baseline x86-64).
fn round_half_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// `d = max|v| / 127`, `q = round(v / d)` (ties to even); an all-zero block has `d = 0`.
fn quantize_block(v: &[f32], q: &mut [i8]) -> f32 {
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, x) in q.iter_mut().zip(v) {
        *o = round_half_even(x * id).clamp(-127.0, 127.0) as i8;
    }
    d
}

impl Q8Matrix {
    /// Quantises row-major f32 weights `[n, k]` (`k` a multiple of 32).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Self, String> {
        if k == 0 || k % QK != 0 || w.len() != n * k {
            return Err(format!(
                "Q8Matrix needs k a multiple of {QK} and {n}x{k} values, got k={k}, {} values",
                w.len()
            ));
        }
        let kb = k / QK;
        let tiles = n.div_ceil(TILE);
        let mut scales = vec![0f32; tiles * kb * TILE];
        let mut quants = vec![128u8; tiles * kb * QK * TILE];
        let mut q = [0i8; QK];
        for row in 0..n {
            let (t, lane) = (row / TILE, row % TILE);
            for b in 0..kb {
                let d = quantize_block(&w[row * k + b * QK..row * k + (b + 1) * QK], &mut q);
                scales[(t * kb + b) * TILE + lane] = d;
                let base = (t * kb + b) * QK * TILE;
                for g in 0..GROUPS {
                    for j in 0..4 {
                        quants[base + (g * TILE + lane) * 4 + j] = (q[g * 4 + j] as i16 + 128) as u8;
                    }
                }
            }
        }
        Ok(Q8Matrix { n, k, tiles, kb, scales, quants })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// `out[m, n] = x · Wᵀ` for quantised activations.
    pub fn matmul(&self, x: &Q8Acts, out: &mut [f32]) {
        assert_eq!(x.kb, self.kb, "activation width does not match the weights");
        assert!(out.len() >= x.m * self.n);
        let out_ptr = SharedOut(out.as_mut_ptr());
        for_chunks(self.tiles, self.n * self.k * x.m, |tiles| {
            for t in tiles {
                // SAFETY: tile t writes only columns t*16 .. t*16+16 of each row, and tiles are
                // disjoint across workers; `out` outlives the call.
                unsafe { self.tile(t, x, out_ptr) };
            }
        });
    }

    unsafe fn tile(&self, t: usize, x: &Q8Acts, out: SharedOut) {
        let mut r0 = 0;
        while r0 < x.m {
            let rows = (x.m - r0).min(ROWS);
            let mut acc = [[0f32; TILE]; ROWS];
            #[cfg(target_arch = "x86_64")]
            {
                if vnni::available() {
                    vnni::tile_rows(self, t, x, r0, rows, &mut acc);
                } else if avx2::available() {
                    avx2::tile_rows(self, t, x, r0, rows, &mut acc);
                } else {
                    self.tile_rows_scalar(t, x, r0, rows, &mut acc);
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            self.tile_rows_scalar(t, x, r0, rows, &mut acc);
            let cols = (self.n - t * TILE).min(TILE);
            for (r, a) in acc.iter().enumerate().take(rows) {
                let dst = out.at((r0 + r) * self.n + t * TILE);
                std::ptr::copy_nonoverlapping(a.as_ptr(), dst, cols);
            }
            r0 += rows;
        }
    }

    /// Portable reference with the same operation order as the SIMD path.
    fn tile_rows_scalar(&self, t: usize, x: &Q8Acts, r0: usize, rows: usize, acc: &mut [[f32; TILE]; ROWS]) {
        for b in 0..self.kb {
            let ws = &self.scales[(t * self.kb + b) * TILE..][..TILE];
            let wq = &self.quants[(t * self.kb + b) * QK * TILE..][..QK * TILE];
            for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                let row = r0 + r;
                let xq = &x.quants[row * self.k + b * QK..][..QK];
                let xd = x.scales[row * self.kb + b];
                let off = x.offsets[row * self.kb + b];
                for lane in 0..TILE {
                    let mut s = 0i32;
                    for g in 0..GROUPS {
                        for j in 0..4 {
                            s += wq[(g * TILE + lane) * 4 + j] as i32 * xq[g * 4 + j] as i32;
                        }
                    }
                    acc_r[lane] = ((s - off) as f32).mul_add(ws[lane] * xd, acc_r[lane]);
                }
            }
        }
    }
}

impl Q8Acts {
    /// Quantises row-major activations `[m, k]`.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        let kb = k / QK;
        let mut scales = vec![0f32; m * kb];
        let mut quants = vec![0i8; m * k];
        let mut offsets = vec![0i32; m * kb];
        for r in 0..m {
            for b in 0..kb {
                let i = r * k + b * QK;
                let q = &mut quants[i..i + QK];
                scales[r * kb + b] = quantize_block(&x[i..i + QK], q);
                offsets[r * kb + b] = 128 * q.iter().map(|&v| v as i32).sum::<i32>();
            }
        }
        Q8Acts { m, kb, scales, quants, offsets }
    }
}

/// Which kernel `Q8Matrix::matmul` runs on this CPU: `avx512-vnni`, `avx2` or `scalar`
/// (`KAIZEN_NO_VNNI=1` skips the first, `KAIZEN_NO_AVX2=1` the second).
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if vnni::available() {
            return "avx512-vnni";
        }
        if avx2::available() {
            return "avx2";
        }
    }
    "scalar"
}

/// Whether this CPU runs kaizen's AVX-512 kernels (`KAIZEN_NO_VNNI=1` turns them off: the AVX2
/// or portable ones run instead).
#[cfg(target_arch = "x86_64")]
pub fn avx512_available() -> bool {
    vnni::available()
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::*;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::env::var("KAIZEN_NO_VNNI").is_err()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vnni")
        })
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn tile_rows(m: &Q8Matrix, t: usize, x: &Q8Acts, r0: usize, rows: usize, out: &mut [[f32; TILE]; ROWS]) {
        let mut acc = [_mm512_setzero_ps(); ROWS];
        for b in 0..m.kb {
            let ws = _mm512_loadu_ps(m.scales.as_ptr().add((t * m.kb + b) * TILE));
            let wq = m.quants.as_ptr().add((t * m.kb + b) * QK * TILE);
            let w: [__m512i; GROUPS] = std::array::from_fn(|g| _mm512_loadu_si512(wq.add(g * 64) as *const __m512i));
            for r in 0..rows {
                let row = r0 + r;
                let xq = x.quants.as_ptr().add(row * m.k + b * QK) as *const i32;
                let mut s = _mm512_setzero_si512();
                for (g, wg) in w.iter().enumerate() {
                    s = _mm512_dpbusd_epi32(s, *wg, _mm512_set1_epi32(std::ptr::read_unaligned(xq.add(g))));
                }
                s = _mm512_sub_epi32(s, _mm512_set1_epi32(x.offsets[row * m.kb + b]));
                let scale = _mm512_mul_ps(ws, _mm512_set1_ps(x.scales[row * m.kb + b]));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[r]);
            }
        }
        for r in 0..rows {
            _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]);
        }
    }
}

/// The kernel for CPUs with AVX2 and FMA but not AVX-512 VNNI (most AMD and consumer Intel
/// parts). AVX2 has no exact u8·i8 dot product (`vpmaddubsw` saturates its 16-bit pair sums:
/// 2 · 255 · 127 > 2¹⁵), so weights and activations are widened to i16 and `vpmaddwd` sums
/// pairs into i32 — exact. Per 32-block and 16 output rows: for each of the 8 groups of 4, the
/// 64 weight bytes (16 rows × 4) widen into four vectors of 4 rows; `vpmaddwd` against the
/// group's 4 activations (repeated) gives each row's two pair sums, and `vphaddd` of two such
/// vectors gives one sum per row, in the lane order `[0, 1, 4, 5 | 2, 3, 6, 7]` (undone once
/// per block by a permute). The integer sum is the same number as on every other path, and
/// the float step is the same `fma(s − offset, d_w · d_x, acc)`, so results are bit-identical
/// to the scalar and VNNI kernels.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::env::var("KAIZEN_NO_AVX2").is_err()
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        })
    }

    /// One sum per row for 8 rows starting at `w` (row r's 4 bytes at `w + 4r`), given the
    /// group's activations widened and repeated in `x`: lanes in the order `[0, 1, 4, 5, 2, 3, 6, 7]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn group8(w: *const u8, x: __m256i) -> __m256i {
        let a = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(w as *const __m128i)), x);
        let b = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(w.add(16) as *const __m128i)), x);
        _mm256_hadd_epi32(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_rows(m: &Q8Matrix, t: usize, x: &Q8Acts, r0: usize, rows: usize, out: &mut [[f32; TILE]; ROWS]) {
        let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        for b in 0..m.kb {
            let sp = m.scales.as_ptr().add((t * m.kb + b) * TILE);
            let ws = [_mm256_loadu_ps(sp), _mm256_loadu_ps(sp.add(8))];
            let wq = m.quants.as_ptr().add((t * m.kb + b) * QK * TILE);
            for r in 0..rows {
                let row = r0 + r;
                let xq = x.quants.as_ptr().add(row * m.k + b * QK) as *const i32;
                let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for g in 0..GROUPS {
                    let xg = _mm256_cvtepi8_epi16(_mm_set1_epi32(std::ptr::read_unaligned(xq.add(g))));
                    let wg = wq.add(g * 64);
                    lo = _mm256_add_epi32(lo, group8(wg, xg));
                    hi = _mm256_add_epi32(hi, group8(wg.add(32), xg));
                }
                let off = _mm256_set1_epi32(x.offsets[row * m.kb + b]);
                let xd = _mm256_set1_ps(x.scales[row * m.kb + b]);
                for (h, s) in [lo, hi].into_iter().enumerate() {
                    let s = _mm256_sub_epi32(_mm256_permutevar8x32_epi32(s, order), off);
                    acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(ws[h], xd), acc[r][h]);
                }
            }
        }
        for r in 0..rows {
            _mm256_storeu_ps(out[r].as_mut_ptr(), acc[r][0]);
            _mm256_storeu_ps(out[r].as_mut_ptr().add(8), acc[r][1]);
        }
    }
}

/// `y = x · Wᵀ` as a candle op on f32 tensors `[…, k]` → `[…, n]` (inference only: no gradient).
pub struct Q8Linear(pub Q8Matrix);

impl CustomOp1 for Q8Linear {
    fn name(&self) -> &'static str {
        "kaizen-q8-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, k) = self.0.dims();
        let dims = layout.shape().dims();
        if dims.last() != Some(&k) {
            candle_core::bail!("q8 linear: input {:?} does not end in {k}", dims);
        }
        let CpuStorage::F32(data) = storage else { candle_core::bail!("q8 linear: input must be f32") };
        let x = match layout.contiguous_offsets() {
            Some((a, b)) => &data[a..b],
            None => candle_core::bail!("q8 linear: input must be contiguous"),
        };
        let m = x.len() / k;
        let acts = Q8Acts::quantize(x, m, k);
        let mut out = vec![0f32; m * n];
        self.0.matmul(&acts, &mut out);
        let mut out_dims = dims.to_vec();
        match out_dims.last_mut() {
            Some(last) => *last = n,
            None => candle_core::bail!("q8 linear: input must have rank ≥ 1"),
        }
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

#[cfg(test)]
#[path = "q8_matmul_tests.rs"]
mod tests;
