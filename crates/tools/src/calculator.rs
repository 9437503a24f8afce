//! The `calculator` tool: exact arithmetic over rationals, evaluated in Rust (no Python).
//!
//! Grammar (Python's precedence: `-2^2 = -4`, `2^-1 = 0.5`):
//! `expr = term (("+" | "-") term)*`, `term = unary (("*" | "/") unary)*`,
//! `unary = ("-" | "+") unary | power`, `power = postfix (("^" | "**") unary)?`
//! (right-associative, integer exponents), `postfix = atom "%"?` (postfix % means /100),
//! `atom = number | "(" expr ")"`; numbers may have a decimal point, `_`/`,` separators between
//! digit groups are not allowed (ambiguous), and an exponent (`1.5e3`).

use kaizen_core::{Observation, Tool, ToolSpec};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use serde_json::{json, Value};
use std::time::Instant;

const MAX_INPUT: usize = 2000;
/// Bound on result size (bits of numerator or denominator) so `9^9^9` cannot eat the machine.
const MAX_BITS: u64 = 20_000;

pub struct Calculator;

impl Tool for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec(json!({"type": "function", "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression exactly: + - * / ^ ( ), decimals, and % as percent (15% = 0.15).",
            "parameters": {"type": "object", "properties": {"expr": {"type": "string", "description": "e.g. (17*23 + 4) / 5"}}, "required": ["expr"]},
        }}))
    }

    fn call(&self, arguments: &Value) -> Observation {
        let start = Instant::now();
        let expr = arguments.get("expr").or_else(|| arguments.get("expression")).and_then(Value::as_str);
        let mut obs = match expr {
            None => Observation::error("calculator needs {\"expr\": \"...\"}"),
            Some(e) => match evaluate(e) {
                Ok(v) => Observation::ok(format_exact(&v)),
                Err(msg) => Observation::error(format!("calculator error: {msg}")),
            },
        };
        obs.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
        obs
    }
}

/// Evaluates `expr` exactly.
pub fn evaluate(expr: &str) -> Result<BigRational, String> {
    if expr.len() > MAX_INPUT {
        return Err(format!("expression longer than {MAX_INPUT} characters"));
    }
    let mut p = Parser { s: expr.as_bytes(), i: 0, depth: 0 };
    let v = p.expr()?;
    p.skip_ws();
    if p.i < p.s.len() {
        return Err(format!("unexpected '{}' at position {}", p.s[p.i] as char, p.i + 1));
    }
    Ok(v)
}

/// An integer as is; a terminating decimal exactly; otherwise the fraction and a 15-digit value.
pub fn format_exact(v: &BigRational) -> String {
    if v.is_integer() {
        return v.to_integer().to_string();
    }
    let mut den = v.denom().clone();
    let (two, five) = (BigInt::from(2), BigInt::from(5));
    let mut digits = 0usize;
    while (&den % &two).is_zero() {
        den /= &two;
        digits += 1;
    }
    let mut fives = 0usize;
    while (&den % &five).is_zero() {
        den /= &five;
        fives += 1;
    }
    if den.is_one() {
        let scale = digits.max(fives);
        let scaled = (v * BigRational::from_integer(BigInt::from(10).pow(scale as u32))).to_integer();
        let neg = scaled.is_negative();
        let s = scaled.abs().to_string();
        let s = format!("{:0>width$}", s, width = scale + 1);
        let (int, frac) = s.split_at(s.len() - scale);
        return format!("{}{int}.{frac}", if neg { "-" } else { "" });
    }
    let approx = v.to_f64().map(|f| format!("{f:.15}")).unwrap_or_else(|| "?".into());
    format!("{v} (≈ {})", approx.trim_end_matches('0'))
}

/// How deep parentheses and signs may nest: model output can nest a thousand, and each level
/// is a stack frame of the recursive-descent parser (a stack overflow would abort the run).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// Open parentheses and prefix signs around the current position.
    depth: usize,
}

impl Parser<'_> {
    /// Runs `f` one nesting level deeper, refusing past `MAX_DEPTH`.
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Result<BigRational, String>) -> Result<BigRational, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels at position {}", self.i + 1));
        }
        self.depth += 1;
        let v = f(self);
        self.depth -= 1;
        v
    }
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        self.skip_ws();
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn expr(&mut self) -> Result<BigRational, String> {
        let mut v = self.term()?;
        loop {
            if self.eat("+") {
                v += self.term()?;
            } else if self.eat("-") {
                v -= self.term()?;
            } else {
                return Ok(v);
            }
        }
    }
    fn term(&mut self) -> Result<BigRational, String> {
        let mut v = self.unary()?;
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"**") {
                return Ok(v);
            }
            if self.eat("*") {
                v *= self.unary()?;
            } else if self.eat("/") {
                let d = self.unary()?;
                if d.is_zero() {
                    return Err("division by zero".into());
                }
                v /= d;
            } else {
                return Ok(v);
            }
            check_size(&v)?;
        }
    }
    fn power(&mut self) -> Result<BigRational, String> {
        let base = self.postfix()?;
        if self.eat("**") || self.eat("^") {
            let exp = self.unary()?;
            if !exp.is_integer() {
                return Err("exponents must be integers (the result would not be exact)".into());
            }
            let e = exp.to_integer().to_i64().filter(|e| e.abs() <= 100_000).ok_or("exponent too large")?;
            let bits = base.numer().bits().max(base.denom().bits()) as u64 * e.unsigned_abs();
            if bits > MAX_BITS {
                return Err("result too large".into());
            }
            if e < 0 && base.is_zero() {
                return Err("division by zero".into());
            }
            return Ok(num_traits::Pow::pow(base, e as i32));
        }
        Ok(base)
    }
    fn unary(&mut self) -> Result<BigRational, String> {
        if self.eat("-") {
            return Ok(-self.nested(Self::unary)?);
        }
        if self.eat("+") {
            return self.nested(Self::unary);
        }
        self.power()
    }
    fn postfix(&mut self) -> Result<BigRational, String> {
        let v = self.atom()?;
        if self.eat("%") {
            return Ok(v / BigRational::from_integer(BigInt::from(100)));
        }
        Ok(v)
    }
    fn atom(&mut self) -> Result<BigRational, String> {
        self.skip_ws();
        if self.eat("(") {
            let v = self.nested(Self::expr)?;
            if !self.eat(")") {
                return Err(format!("missing ')' at position {}", self.i + 1));
            }
            return Ok(v);
        }
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.') {
            self.i += 1;
        }
        let mantissa = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        if mantissa.is_empty() || mantissa == "." || mantissa.matches('.').count() > 1 {
            return Err(match self.s.get(start) {
                Some(c) => format!("expected a number at position {}, found '{}'", start + 1, *c as char),
                None => "expression ended early".into(),
            });
        }
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = format!("{int}{frac}");
        let mut v = BigRational::new(
            digits.parse::<BigInt>().map_err(|e| e.to_string())?,
            BigInt::from(10).pow(frac.len() as u32),
        );
        if self.i < self.s.len() && (self.s[self.i] == b'e' || self.s[self.i] == b'E') {
            self.i += 1;
            let neg = self.eat("-");
            if !neg {
                self.eat("+");
            }
            let es = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            let e: u32 = std::str::from_utf8(&self.s[es..self.i])
                .ok()
                .and_then(|t| t.parse().ok())
                .filter(|&e| e <= 4000)
                .ok_or("bad exponent")?;
            let p = BigRational::from_integer(BigInt::from(10).pow(e));
            v = if neg { v / p } else { v * p };
        }
        Ok(v)
    }
}

fn check_size(v: &BigRational) -> Result<(), String> {
    if v.numer().bits().max(v.denom().bits()) as u64 > MAX_BITS {
        return Err("result too large".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(e: &str) -> String {
        evaluate(e).map(|v| format_exact(&v)).unwrap_or_else(|m| format!("ERR {m}"))
    }

    #[test]
    fn exact_results_by_hand() {
        assert_eq!(calc("17*23"), "391");
        assert_eq!(calc("(17*23 + 4) / 5"), "79");
        assert_eq!(calc("0.1 + 0.2"), "0.3");
        assert_eq!(calc("1/3"), "1/3 (≈ 0.333333333333333)");
        assert_eq!(calc("2^10 - 2**3**2"), "512");
        assert_eq!(calc("-2^2"), "-4");
        assert_eq!(calc("15% * 80"), "12");
        assert_eq!(calc("1.5e3 / 4"), "375");
        assert_eq!(calc("123456789012345678901234567890 * 10"), "1234567890123456789012345678900");
        assert_eq!(calc("-7/8"), "-0.875");
        assert_eq!(calc("2^-2"), "0.25");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Nearly a thousand parentheses or signs (under the 2,000-character input limit): a
        // message each; within MAX_DEPTH a result.
        let parens = format!("{}1{}", "(".repeat(990), ")".repeat(990));
        assert!(evaluate(&parens).unwrap_err().contains("nested deeper than 64"));
        assert!(evaluate(&format!("{}2", "-".repeat(1990))).unwrap_err().contains("nested deeper"));
        assert!(evaluate(&format!("{}2", "- ".repeat(990))).unwrap_err().contains("nested deeper"));
        assert_eq!(calc(&format!("{}7{}", "(".repeat(60), ")".repeat(60))), "7");
        assert_eq!(calc("- - 3"), "3");
    }

    #[test]
    fn errors_are_messages() {
        assert!(calc("1/0").contains("division by zero"));
        assert!(calc("2^0.5").contains("integers"));
        assert!(calc("9^9^9").contains("too large"));
        assert!(calc("2 +").contains("ended early"));
        assert!(calc("(1+2").contains("missing ')'"));
        assert!(calc("import os").contains("expected a number"));
        assert!(calc("1 2").contains("unexpected '2'"));
    }
}
