//! Elementwise math in plain arithmetic, so that loops calling it vectorise (libm's scalar
//! calls do not). Functions are `#[inline(always)]`: they take the target features of the
//! kernel they are inlined into (the AVX-512 variants of `causal_attention` and `row_ops`).

/// `eˣ` for `x ∈ [−87, 88]` (clamped outside: ~1e-38 below, which no softmax weight or
/// sigmoid notices): `eˣ = 2ⁿ · eʳ` with `n = round(x / ln 2)`, `r = x − n ln 2 ∈
/// [−ln2/2, ln2/2]`, and `eʳ` by its degree-6 Taylor polynomial (relative error < 10⁻⁶).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n · LN2_HI is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 · 2²³ rounds to an integer in the float unit itself.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let rounded = x * LOG2E + ROUND;
    let n = rounded - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let poly = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `rounded`'s low mantissa bits hold n (two's complement): 2ⁿ's exponent field is n + 127.
    // (Integer bit arithmetic rather than `n as i32`, whose saturating cast does not vectorise.)
    let two_n = rounded.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    poly * f32::from_bits(two_n)
}

/// `σ(x) = 1 / (1 + e⁻ˣ)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `$vis fn $name(args)` running `$body(args)` compiled for AVX-512 when the CPU has it (chosen
/// at run time, so one binary serves every x86-64 CPU), else as compiled for the baseline. The
/// body is `#[inline(always)]` plain loops, which the compiler vectorises for each target.
macro_rules! with_avx512 {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn fast($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use with_avx512;

#[cfg(test)]
#[path = "vmath_tests.rs"]
mod tests;
