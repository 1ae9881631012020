//! HellaSwag (zero-shot): `activity_label: ctx_a Ctx_b` and each ending as a continuation, with
//! the harness's text cleaning (`preprocess`).

use super::{check_count, is_sample, need, s, strings, ChoiceItem, Items};
use crate::data::read_rows;
use crate::error::{Error, Result};
use std::path::Path;

/// Python's `str.capitalize`: first character upper case, the rest lower case.
fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
        None => String::new(),
    }
}

/// HellaSwag's text cleaning (lm-evaluation-harness `preprocess`): trim, ` [title]` → `. `,
/// drop bracketed tags, collapse double spaces.
pub fn hellaswag_preprocess(text: &str) -> String {
    let t = text.trim().replace(" [title]", ". ");
    let mut out = String::with_capacity(t.len());
    let mut rest = t.as_str();
    while let Some(open) = rest.find('[') {
        match rest[open..].find(']') {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

/// HellaSwag's items.
pub(super) fn load(data: &Path, limit: Option<usize>, shots: usize) -> Result<Items> {
    let take = |n: usize| limit.map_or(n, |l| l.min(n));
    let full = !is_sample(data);
    if shots > 0 {
        return Err(Error::Invalid(
            "--shots: hellaswag is zero-shot here".into(),
        ));
    }
    let f = need(data.join("hellaswag").join("validation.arrow"))?;
    let rows = read_rows(&f)?;
    check_count(&f, "items", rows.len(), 10042, full)?;
    rows.iter()
        .take(take(rows.len()))
        .enumerate()
        .map(|(i, r)| {
            let ctx = format!("{} {}", s(r, "ctx_a", &f)?, capitalize(s(r, "ctx_b", &f)?));
            let query = hellaswag_preprocess(&format!("{}: {ctx}", s(r, "activity_label", &f)?));
            let endings = strings(r, "endings", &f)?;
            let gold: usize = s(r, "label", &f)?.parse().map_err(|_| {
                Error::Invalid(format!("{}: item {i}: label is not a number", f.display()))
            })?;
            if gold >= endings.len() {
                return Err(Error::Invalid(format!(
                    "{}: item {i}: label past the endings",
                    f.display()
                )));
            }
            Ok(ChoiceItem {
                id: i.to_string(),
                group: String::new(),
                context: query,
                choices: endings
                    .iter()
                    .map(|e| format!(" {}", hellaswag_preprocess(e)))
                    .collect(),
                gold,
                ind: r.get("ind").and_then(serde_json::Value::as_i64),
            })
        })
        .collect::<Result<_>>()
        .map(Items::Choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellaswag_text_cleaning() {
        assert_eq!(
            hellaswag_preprocess(" Removing ice from car [title] Use a scraper.  [step] Push  it "),
            // as Python computes it: one pass of "  " -> " " leaves two of the three spaces
            // that removing "[step]" left
            "Removing ice from car. Use a scraper.  Push it"
        );
        assert_eq!(capitalize("then, the man"), "Then, the man");
        assert_eq!(capitalize("THE man"), "The man");
    }
}
