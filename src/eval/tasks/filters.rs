//! lm-evaluation-harness's answer filters and its `exact_match`, for the generating tasks: a
//! regular expression whose `findall` result is picked by index (`group_select`), the first
//! non-empty group of a multi-group match, whitespace stripped, `[invalid]` when nothing matches;
//! then both answer and reference lose GSM8K's `regexes_to_ignore` (`,`, `$`, everything up to
//! the last `#### `, one `.` at the end) and are compared without case.

use crate::error::{Error, Result};
use regex::Regex;

/// What a filter returns when its pattern does not match (the harness's `fallback`).
pub const INVALID: &str = "[invalid]";

/// GSM8K's strict extraction: the first `#### N`.
pub const GSM8K_STRICT: &str = r"#### (\-?[0-9\.\,]+)";
/// GSM8K-CoT's strict extraction: the first `The answer is N` followed by one more character
/// (the pattern's final `.` matches any character but a newline, as in Python).
pub const GSM8K_COT_STRICT: &str = r"The answer is (\-?[0-9\.\,]+).";
/// Both tasks' flexible extraction (used with `group_select = -1`: the last match).
pub const GSM8K_FLEXIBLE: &str = r"(-?[$0-9.,]{2,})|(-?[0-9]+)";

/// A regex filter as the harness applies it to one response.
#[derive(Debug, Clone)]
pub struct RegexFilter {
    re: Regex,
    /// Which match of `findall`: 0 the first, -1 the last.
    group_select: isize,
}

impl RegexFilter {
    /// A filter of `pattern`, picking match `group_select` (negative counts from the end).
    pub fn new(pattern: &str, group_select: isize) -> Result<Self> {
        let re = Regex::new(pattern)
            .map_err(|e| Error::Invalid(format!("answer filter `{pattern}`: {e}")))?;
        Ok(RegexFilter { re, group_select })
    }

    /// The extracted answer of `response`, or [`INVALID`].
    pub fn apply(&self, response: &str) -> String {
        // Python's findall: per match, the whole match without groups, the group with one,
        // else the tuple of groups (a group that did not take part is "")
        let found: Vec<Vec<&str>> = self
            .re
            .captures_iter(response)
            .map(|c| {
                if c.len() == 1 {
                    vec![c.get(0).map_or("", |m| m.as_str())]
                } else {
                    (1..c.len())
                        .map(|g| c.get(g).map_or("", |m| m.as_str()))
                        .collect()
                }
            })
            .collect();
        let n = found.len() as isize;
        let at = if self.group_select < 0 {
            n + self.group_select
        } else {
            self.group_select
        };
        if at < 0 || at >= n {
            // Python indexes past the end only when the list is empty (an IndexError otherwise,
            // which the harness never reaches with 0 and -1)
            return INVALID.to_string();
        }
        let groups = &found[at as usize];
        let picked = if groups.len() == 1 {
            Some(groups[0])
        } else {
            groups.iter().copied().find(|g| !g.is_empty())
        };
        match picked {
            Some(s) => python_strip(s).to_string(),
            None => INVALID.to_string(),
        }
    }
}

/// Python's `str.strip()`: also strips the separators U+001C–U+001F, which Rust's
/// `char::is_whitespace` keeps.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// GSM8K's `regexes_to_ignore` applied in the harness's order, then lower case.
pub fn gsm8k_normalise(s: &str) -> String {
    let mut t: String = s.chars().filter(|&c| c != ',' && c != '$').collect();
    // `(?s).*#### `: greedy, so everything up to and including the last `#### `
    if let Some(at) = t.rfind("#### ") {
        t = t[at + "#### ".len()..].to_string();
    }
    // `\.$`: a `.` at the very end, or just before a final newline (Python's `$`)
    if t.ends_with('.') {
        t.pop();
    } else if t.ends_with(".\n") {
        t.replace_range(t.len() - 2..t.len() - 1, "");
    }
    t.to_lowercase()
}

/// The harness's `exact_match` of GSM8K (`ignore_case`, its `regexes_to_ignore`).
pub fn gsm8k_exact_match(answer: &str, reference: &str) -> bool {
    gsm8k_normalise(answer) == gsm8k_normalise(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_python_findall() {
        let cot = RegexFilter::new(GSM8K_COT_STRICT, 0).unwrap();
        // the trailing `.` takes one character: a number at the very end does not match
        assert_eq!(cot.apply("So The answer is 6."), "6");
        // greedy: the number takes the full stop when one more character follows it
        assert_eq!(cot.apply("The answer is 1,007. Then"), "1,007.");
        assert_eq!(cot.apply("The answer is 1,007."), "1,007");
        assert_eq!(cot.apply("The answer is 6"), INVALID);
        assert_eq!(cot.apply("The answer is 6\nQ"), INVALID);
        assert_eq!(cot.apply("the answer is 6."), INVALID, "case-sensitive");
        assert_eq!(
            cot.apply("The answer is 5. The answer is 7."),
            "5.",
            "first"
        );
        let flex = RegexFilter::new(GSM8K_FLEXIBLE, -1).unwrap();
        assert_eq!(flex.apply("5 x 3 = 15 dollars. So 8 left"), "8");
        assert_eq!(flex.apply("costs $1,200."), "$1,200.");
        assert_eq!(flex.apply("from 5-3"), "-3");
        assert_eq!(flex.apply("well..."), "...");
        assert_eq!(flex.apply("none"), INVALID);
        let strict = RegexFilter::new(GSM8K_STRICT, 0).unwrap();
        assert_eq!(strict.apply("x\n#### -4\n#### 9"), "-4");
    }

    #[test]
    fn exact_match_ignores_what_gsm8k_ignores() {
        assert!(gsm8k_exact_match("$1,200.", "1200"));
        assert!(gsm8k_exact_match(
            "18",
            "Janet sells 16 - 3 - 4 = 9...\n#### 18"
        ));
        assert!(!gsm8k_exact_match("...", "1"));
        assert_eq!(gsm8k_normalise("5.."), "5.");
        assert_eq!(gsm8k_normalise("5.\n"), "5\n");
        assert_eq!(gsm8k_normalise("[invalid]"), "[invalid]");
        assert_eq!(python_strip("\u{1f} 7\n"), "7");
    }
}
