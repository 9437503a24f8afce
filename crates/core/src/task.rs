//! Tasks and how an answer is checked. A task is a prompt plus a reference answer and the rule
//! that compares them; the checker is a pure function, so rewards are reproducible.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub prompt: String,
    pub answer: String,
    pub checker: Checker,
    /// Free-form facts about the task (difficulty, kind) for reports.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
    /// Images the task shows with its prompt (`data:` URLs): a visual question's picture.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Checker {
    /// Same text after trimming and collapsing whitespace (case-sensitive).
    Exact,
    /// Same number: `|a − b| ≤ abs_tol + rel_tol · |b|`. Accepts `1,234`, `$5`, `12%`, `3/4`.
    Numeric {
        #[serde(default = "default_rel_tol")]
        rel_tol: f64,
        #[serde(default)]
        abs_tol: f64,
    },
    /// The answer matches this regular expression (whole string).
    Regex { pattern: String },
    /// One letter among the options (`A`, `(b)`, `C.` all read as that letter).
    MultipleChoice,
    /// The env scores the episode itself (a web page's own reward); text never checks.
    Env,
}

fn default_rel_tol() -> f64 {
    1e-6
}

impl Task {
    /// The task's content as compared across streams: its prompt, lower-cased, whitespace
    /// collapsed, then the content hash of each image it shows (the same question about two
    /// pictures is two tasks). Two tasks with the same key are the same task for held-out
    /// purposes.
    pub fn content_key(&self) -> String {
        let mut key = normalize_ws(&self.prompt.to_lowercase());
        for url in &self.images {
            key.push_str(" [image ");
            key.push_str(&crate::image::content_hash(url));
            key.push(']');
        }
        key
    }

    /// Reward for a final answer: 1 if it checks, else 0 (also 0 when there is no answer).
    pub fn reward(&self, answer: Option<&str>) -> f32 {
        answer.map(|a| self.checker.check(a, &self.answer)).map(|ok| if ok { 1.0 } else { 0.0 }).unwrap_or(0.0)
    }
}

impl Checker {
    /// Whether two *answers* are the same answer (for majority votes): as `check` compares an
    /// answer with a reference where that comparison is symmetric (exact, numeric, choice),
    /// else — a regex or an env's own check say whether an answer passes, not whether two
    /// agree — the same text up to whitespace.
    pub fn same_answer(&self, a: &str, b: &str) -> bool {
        match self {
            Checker::Exact | Checker::Numeric { .. } | Checker::MultipleChoice => self.check(a, b),
            _ => normalize_ws(a) == normalize_ws(b),
        }
    }

    pub fn check(&self, got: &str, want: &str) -> bool {
        match self {
            Checker::Exact => normalize_ws(got) == normalize_ws(want),
            Checker::Numeric { rel_tol, abs_tol } => match (parse_number(got), parse_number(want)) {
                (Some(a), Some(b)) => (a - b).abs() <= abs_tol + rel_tol * b.abs(),
                _ => false,
            },
            Checker::Regex { pattern } => {
                regex_lite::Regex::new(&format!("^(?:{pattern})$")).map(|r| r.is_match(got.trim())).unwrap_or(false)
            }
            Checker::MultipleChoice => choice_letter(got).is_some() && choice_letter(got) == choice_letter(want),
            Checker::Env => false,
        }
    }

    /// Checks that the rule itself is usable (a regex that compiles).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Checker::Regex { pattern } => {
                regex_lite::Regex::new(pattern).map(|_| ()).map_err(|e| format!("bad regex {pattern:?}: {e}"))
            }
            Checker::Numeric { rel_tol, abs_tol } if *rel_tol < 0.0 || *abs_tol < 0.0 => {
                Err("tolerances must be non-negative".into())
            }
            _ => Ok(()),
        }
    }
}

fn normalize_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a number the way people write answers: `1,234.5`, `$12`, `12%` (as 12), `3/4`,
/// `-2.5e3`; with surrounding text (`x = 42`, `42 apples`) the first number token is used.
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim().trim_end_matches('.').replace(['$', '€', '£', '%', ','], "");
    let t = t.trim();
    if let Some((a, b)) = t.split_once('/') {
        let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
        return (b != 0.0).then(|| a / b);
    }
    if let Ok(v) = t.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    // "x = 42", "42 apples": the first token that is a number.
    t.split(|c: char| c.is_whitespace() || c == '=').find_map(|w| w.parse::<f64>().ok().filter(|v| v.is_finite()))
}

fn choice_letter(s: &str) -> Option<char> {
    let t = s.trim().trim_start_matches('(').trim_end_matches(['.', ')', ':']);
    let mut cs = t.chars();
    let c = cs.next()?;
    (cs.next().is_none() && c.is_ascii_alphabetic()).then(|| c.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_the_same_as_the_checker_compares_them_where_that_is_symmetric() {
        let numeric = Checker::Numeric { rel_tol: 1e-6, abs_tol: 0.0 };
        assert!(numeric.same_answer("1,234", "1234.0") && !numeric.same_answer("12", "1234"));
        // A regex says whether an answer passes, not whether two answers agree: "cat" and
        // "cats" both match, yet are two answers; the same text is one.
        let regex = Checker::Regex { pattern: "cats?".into() };
        assert!(!regex.same_answer("cat", "cats") && regex.same_answer("cat ", "cat"));
        assert!(Checker::Env.same_answer("ok", "ok") && !Checker::Env.same_answer("ok", "no"));
    }

    #[test]
    fn checkers_by_hand() {
        let num = Checker::Numeric { rel_tol: 1e-6, abs_tol: 0.0 };
        for (got, want) in
            [("1,234", "1234"), ("$12", "12"), ("0.75", "3/4"), ("391.", "391"), ("x = 42", "42"), ("2.5e3", "2500")]
        {
            assert!(num.check(got, want), "{got} vs {want}");
        }
        assert!(!num.check("391.1", "391"));
        assert!(!num.check("many", "3"));
        assert!(Checker::Numeric { rel_tol: 0.0, abs_tol: 0.2 }.check("391.1", "391"));
        assert!(Checker::Exact.check("  Paris \n", "Paris"));
        assert!(!Checker::Exact.check("paris", "Paris"));
        let re = Checker::Regex { pattern: "[0-9]+ (apples|pears)".into() };
        assert!(re.check("12 apples", "") && !re.check("12 apples!", ""));
        assert!(Checker::MultipleChoice.check("(b)", "B") && Checker::MultipleChoice.check("C.", "c"));
        assert!(!Checker::MultipleChoice.check("B or C", "B"));
        assert!(Checker::Regex { pattern: "(".into() }.validate().is_err());
    }

    #[test]
    fn reward_is_zero_without_an_answer() {
        let t = Task {
            id: "t".into(),
            prompt: "p".into(),
            answer: "4".into(),
            checker: Checker::Exact,
            meta: Default::default(),
            images: Vec::new(),
        };
        assert_eq!((t.reward(Some("4")), t.reward(Some("5")), t.reward(None)), (1.0, 0.0, 0.0));
    }
}
