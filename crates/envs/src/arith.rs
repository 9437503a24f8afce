//! `arith`: procedurally generated math word problems at five levels, chosen so that exact
//! arithmetic with a tool clearly helps a small model: multi-step sums, large products,
//! chained percentages, unit conversions with rates. Every answer is computed exactly in
//! integers (cents, minutes), never with floats.

use crate::ANSWER_FORMAT;
use kaizen_core::{Checker, Env, Task};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Arith {
    /// `None`: levels cycle 1..=5 over task indices.
    level: Option<u8>,
    name: String,
}

impl Arith {
    pub fn mixed() -> Self {
        Arith { level: None, name: "arith".into() }
    }

    pub fn level(l: u8) -> Result<Self, String> {
        if !(1..=5).contains(&l) {
            return Err(format!("arith level must be 1..=5, got {l}"));
        }
        Ok(Arith { level: Some(l), name: format!("arith:{l}") })
    }

    /// Task `index` of the stream for `seed` (stable: the same pair always gives the same task).
    pub fn task(&self, seed: u64, index: usize) -> Task {
        let level = self.level.unwrap_or((index % 5) as u8 + 1);
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
        // Each level also gives the calculator expression that solves it (for demonstrations).
        let (prompt, answer, checker, expression) = match level {
            1 => {
                let (a, b, c) =
                    (rng.random_range(1200..9800u64), rng.random_range(300..4000u64), rng.random_range(100..1200u64));
                (
                    format!("A warehouse had {a} boxes. It received {b} more boxes and then shipped {c} boxes. How many boxes are in the warehouse now?"),
                    (a + b - c).to_string(),
                    exact_number(),
                    format!("{a} + {b} - {c}"),
                )
            }
            2 => {
                let (a, b) = (rng.random_range(24..480u64), rng.random_range(12..96u64));
                (
                    format!("A school orders {a} packs of pencils with {b} pencils in each pack. How many pencils does it get?"),
                    (a * b).to_string(),
                    exact_number(),
                    format!("{a} * {b}"),
                )
            }
            3 => {
                let (a, d, s) =
                    (rng.random_range(1200..9800u64), rng.random_range(12..60u64), rng.random_range(1000..9000u64));
                (
                    format!("A factory makes {a} widgets per day for {d} days, then sells {s} of them. How many widgets does it have left?"),
                    (a * d - s).to_string(),
                    exact_number(),
                    format!("{a} * {d} - {s}"),
                )
            }
            4 => {
                let price = rng.random_range(40..900u64);
                let disc = [10u64, 15, 20, 25, 30, 35, 40][rng.random_range(0..7)];
                let tax = [5u64, 6, 8, 10][rng.random_range(0..4)];
                // price · (1 − d) · (1 + t) in units of 1/10000 dollar: exact.
                let units = price * (100 - disc) * (100 + tax);
                (
                    format!("A jacket costs ${price}. It is discounted by {disc}%, and then a {tax}% sales tax is added to the discounted price. What is the final price in dollars?"),
                    decimal(units, 4),
                    Checker::Numeric { rel_tol: 0.0, abs_tol: 0.005 },
                    format!("{price} * (100 - {disc}) / 100 * (100 + {tax}) / 100"),
                )
            }
            _ => {
                let km = rng.random_range(120..900u64);
                let (h, m) = (rng.random_range(1..9u64), [10u64, 15, 20, 30, 40, 45, 50][rng.random_range(0..7)]);
                // km / (h + m/60) = 60·km / (60h + m), reported to 2 decimals.
                let hundredths = (6000 * km * 2 + (60 * h + m)) / (2 * (60 * h + m)); // rounded half up
                (
                    format!("A car travels {km} kilometers in {h} hours and {m} minutes. What is its average speed in kilometers per hour? Round to 2 decimal places."),
                    decimal(hundredths, 2),
                    Checker::Numeric { rel_tol: 0.0, abs_tol: 0.011 },
                    format!("{km} / ({h} + {m} / 60)"),
                )
            }
        };
        Task {
            id: format!("arith-{seed}-{index}"),
            prompt,
            answer,
            checker,
            meta: serde_json::json!({ "level": level, "expression": expression }),
            images: Vec::new(),
        }
    }
}

fn exact_number() -> Checker {
    Checker::Numeric { rel_tol: 0.0, abs_tol: 1e-9 }
}

/// `units / 10^scale` as a decimal string without trailing zeros.
fn decimal(units: u64, scale: u32) -> String {
    let p = 10u64.pow(scale);
    let (int, frac) = (units / p, units % p);
    if frac == 0 {
        return int.to_string();
    }
    let f = format!("{frac:0width$}", width = scale as usize);
    format!("{int}.{}", f.trim_end_matches('0'))
}

impl Env for Arith {
    fn name(&self) -> &str {
        &self.name
    }

    fn system_prompt(&self) -> String {
        format!(
            "You are a careful assistant that solves math word problems. You can call the calculator \
             tool for exact arithmetic or the python tool to run code. {ANSWER_FORMAT}"
        )
    }

    fn tool_names(&self) -> Vec<String> {
        kaizen_tools::ToolRegistry::standard_names()
    }

    /// One calculator call with the task's expression, then the final answer.
    fn demonstration(&self, task: &Task) -> Option<Vec<String>> {
        let expr = task.meta.get("expression")?.as_str()?;
        // The argument name the calculator's schema declares (what the policy is shown).
        let call = kaizen_core::tool_call::format_call("calculator", &serde_json::json!({ "expr": expr }));
        Some(vec![call, format!("The answer is \\boxed{{{}}}.", task.answer)])
    }

    fn tasks(&self, seed: u64, n: usize) -> Vec<Task> {
        (0..n).map(|i| self.task(seed, i)).collect()
    }
}

#[cfg(test)]
#[path = "arith_tests.rs"]
mod tests;
