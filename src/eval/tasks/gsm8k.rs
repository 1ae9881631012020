//! GSM8K: plain (`Question:`/`Answer:` exemplars drawn from the train split as the harness
//! draws them, strict extraction `#### N`) and chain-of-thought (8 fixed exemplars, strict
//! extraction `the answer is N`); both also score the flexible extraction (the last number).

use super::super::fewshot::sample_per_doc;
use super::{check_count, is_sample, need, s, GenItem, Items};
use crate::data::read_rows;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// GSM8K's items with `shots` exemplars drawn from the train split by `seed`.
pub(super) fn load(data: &Path, limit: Option<usize>, shots: usize, seed: u64) -> Result<Items> {
    let take = |n: usize| limit.map_or(n, |l| l.min(n));
    let full = !is_sample(data);
    let f = need(data.join("gsm8k").join("test.jsonl"))?;
    let train_f = data.join("gsm8k").join("train.jsonl");
    if shots > 0 && !train_f.is_file() {
        return Err(Error::Invalid(format!(
            "{} is missing: gsm8k draws its exemplars from GSM8K's train split (7473 rows \
             {{question, answer}}, e.g. grade_school_math/data/train.jsonl of \
             github.com/openai/grade-school-math), which no registry package ships; put it \
             there, or run gsm8k_cot (fixed exemplars)",
            train_f.display()
        )));
    }
    let rows = read_rows(&f)?;
    check_count(&f, "questions", rows.len(), 1319, full)?;
    // zero-shot (chat mode) draws nothing and needs no train split
    let train = if shots > 0 {
        let train = read_rows(&train_f)?;
        check_count(&train_f, "questions", train.len(), 7473, full)?;
        train
    } else {
        Vec::new()
    };
    let n = take(rows.len());
    let draws = sample_per_doc(seed, train.len(), shots, n).ok_or_else(|| {
        Error::Invalid(format!(
            "--shots {shots}: {} holds {} exemplars",
            train_f.display(),
            train.len()
        ))
    })?;
    let qa = |r: &Value, file: &Path| -> Result<(String, String)> {
        Ok((
            format!("Question: {}\nAnswer:", s(r, "question", file)?),
            s(r, "answer", file)?.to_string(),
        ))
    };
    rows.iter()
        .take(n)
        .zip(draws)
        .enumerate()
        .map(|(i, (r, picks))| {
            let mut prompt = String::new();
            for p in picks {
                let (q, a) = qa(&train[p], &train_f)?;
                prompt += &format!("{q} {a}\n\n");
            }
            let (q, answer) = qa(r, &f)?;
            prompt += &q;
            let gold = answer.rsplit("#### ").next().unwrap_or("").trim();
            Ok(GenItem {
                id: i.to_string(),
                prompt,
                answer: normalise_number(gold),
            })
        })
        .collect::<Result<_>>()
        .map(Items::Gen)
}

/// GSM8K-CoT's items with the first `shots` of the fixed exemplars.
pub(super) fn load_cot(data: &Path, limit: Option<usize>, shots: usize) -> Result<Items> {
    let take = |n: usize| limit.map_or(n, |l| l.min(n));
    let full = !is_sample(data);
    let f = need(data.join("gsm8k").join("test.jsonl"))?;
    let ex = need(data.join("gsm8k").join("cot_exemplars.txt"))?;
    let exemplars = std::fs::read_to_string(&ex).map_err(|e| Error::io(&ex, e))?;
    let blocks: Vec<&str> = exemplars
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    if shots > blocks.len() {
        return Err(Error::Invalid(format!(
            "--shots {shots}: {} holds {} exemplars",
            ex.display(),
            blocks.len()
        )));
    }
    let prefix: String = blocks[..shots]
        .iter()
        .map(|b| format!("{}\n\n", b.trim_end()))
        .collect();
    let rows = read_rows(&f)?;
    check_count(&f, "questions", rows.len(), 1319, full)?;
    rows.iter()
        .take(take(rows.len()))
        .enumerate()
        .map(|(i, r)| {
            let answer = s(r, "answer", &f)?;
            let gold = answer.rsplit("#### ").next().unwrap_or("").trim();
            Ok(GenItem {
                id: i.to_string(),
                prompt: format!("{prefix}Question: {}\nAnswer:", s(r, "question", &f)?),
                answer: normalise_number(gold),
            })
        })
        .collect::<Result<_>>()
        .map(Items::Gen)
}

/// GSM8K's answer normalisation: drop `,` and `$`, and a trailing `.`.
pub fn normalise_number(s: &str) -> String {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| *c != ',' && *c != '$')
        .collect();
    t.strip_suffix('.').unwrap_or(&t).to_string()
}

/// The strict answer: the number after the last `the answer is ` (any case: the exemplars
/// end `So the answer is N.`).
pub fn extract_strict(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = lower.rfind("the answer is ")?;
    let rest = &text[at + "the answer is ".len()..];
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | ',' | '$'))
        .collect();
    let n = normalise_number(&num);
    n.chars().any(|c| c.is_ascii_digit()).then_some(n)
}

/// GSM8K's strict answer: the first `#### N` (an optional `-`, then digits, `.` and `,`).
pub fn extract_hashes(text: &str) -> Option<String> {
    text.match_indices("#### ").find_map(|(at, m)| {
        let rest = &text[at + m.len()..];
        let (sign, body) = match rest.strip_prefix('-') {
            Some(b) => ("-", b),
            None => ("", rest),
        };
        let num: String = body
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ','))
            .collect();
        (!num.is_empty()).then(|| normalise_number(&format!("{sign}{num}")))
    })
}

/// The flexible answer: the last number in the text.
pub fn extract_flexible(text: &str) -> Option<String> {
    let mut last = None;
    let mut cur = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit()
            || ((c == '-' || c == '$') && cur.is_empty())
            || (matches!(c, '.' | ',') && !cur.is_empty())
        {
            cur.push(c);
        } else if !cur.is_empty() {
            let n = normalise_number(&cur);
            if n.chars().any(|c| c.is_ascii_digit()) {
                last = Some(n);
            }
            cur.clear();
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_answer_extraction() {
        assert_eq!(
            extract_strict("so 3 + 4 = 7. The answer is 1,007."),
            Some("1007".into())
        );
        assert_eq!(extract_strict("The answer is $18"), Some("18".into()));
        assert_eq!(extract_strict("no answer"), None);
        assert_eq!(extract_strict("So the answer is 6."), Some("6".into()));
        assert_eq!(
            extract_flexible("He has 5 apples, then 12.5 and finally -3."),
            Some("-3".into())
        );
        assert_eq!(extract_flexible("costs $1,200."), Some("1200".into()));
        assert_eq!(extract_flexible("none"), None);
        assert_eq!(normalise_number("$1,000."), "1000");
    }
}
