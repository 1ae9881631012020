//! GSM8K's prompts: plain (`Question:`/`Answer:` exemplars drawn from the train split as the
//! harness draws them), lm-evaluation-harness's chain of thought (`gsm8k_cot`, its 8 fixed `Q:`/
//! `A:` exemplars) and OLMES's (`gsm8k_cot_olmes`); and OLMES's strict extraction. The harness's
//! own extractions are regular expressions ([`super::filters`]).

use super::super::fewshot::sample_per_doc;
use super::filters::{python_strip, INVALID};
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
            // the harness's reference is the whole solution; `exact_match` drops all up to `#### `
            Ok(GenItem {
                id: i.to_string(),
                prompt,
                answer,
            })
        })
        .collect::<Result<_>>()
        .map(Items::Gen)
}

/// GSM8K-CoT as lm-evaluation-harness's `gsm8k_cot`: the first `shots` of its 8 exemplars
/// (`gsm8k/cot_exemplars_lm_eval.jsonl`, `{question, target}` from the harness's task file),
/// each `Q: …\nA: …` and followed by a blank line, then `Q: {question}\nA:`; the reference is
/// the text after the answer's last `####`, stripped.
pub(super) fn load_cot(data: &Path, limit: Option<usize>, shots: usize) -> Result<Items> {
    let ex = need(data.join("gsm8k").join("cot_exemplars_lm_eval.jsonl"))?;
    let exemplars = read_rows(&ex)?;
    let mut prefix = String::new();
    for r in exemplars.iter().take(shots) {
        prefix += &format!(
            "Q: {}\nA: {}\n\n",
            s(r, "question", &ex)?,
            s(r, "target", &ex)?
        );
    }
    too_few(shots, exemplars.len(), &ex)?;
    test_items(data, limit, |q| format!("{prefix}Q: {q}\nA:"))
}

/// GSM8K-CoT as OLMo's evaluation suite (OLMES) words it: the first `shots` of its 8 exemplars
/// (`gsm8k/cot_exemplars.txt`, `Question: …\nAnswer: … So the answer is N.` blocks), then
/// `Question: {question}\nAnswer:`.
pub(super) fn load_cot_olmes(data: &Path, limit: Option<usize>, shots: usize) -> Result<Items> {
    let ex = need(data.join("gsm8k").join("cot_exemplars.txt"))?;
    let exemplars = std::fs::read_to_string(&ex).map_err(|e| Error::io(&ex, e))?;
    let blocks: Vec<&str> = exemplars
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    too_few(shots, blocks.len(), &ex)?;
    let prefix: String = blocks[..shots]
        .iter()
        .map(|b| format!("{}\n\n", b.trim_end()))
        .collect();
    test_items(data, limit, |q| format!("{prefix}Question: {q}\nAnswer:"))
}

fn too_few(shots: usize, have: usize, file: &Path) -> Result<()> {
    if shots > have {
        return Err(Error::Invalid(format!(
            "--shots {shots}: {} holds {have} exemplars",
            file.display()
        )));
    }
    Ok(())
}

/// The test split's first `limit` items with the prompt `prompt(question)` and the reference
/// `answer.split('####')[-1].strip()`.
fn test_items(data: &Path, limit: Option<usize>, prompt: impl Fn(&str) -> String) -> Result<Items> {
    let full = !is_sample(data);
    let f = need(data.join("gsm8k").join("test.jsonl"))?;
    let rows = read_rows(&f)?;
    check_count(&f, "questions", rows.len(), 1319, full)?;
    rows.iter()
        .take(limit.map_or(rows.len(), |l| l.min(rows.len())))
        .enumerate()
        .map(|(i, r)| {
            let answer = s(r, "answer", &f)?;
            Ok(GenItem {
                id: i.to_string(),
                prompt: prompt(s(r, "question", &f)?),
                answer: python_strip(answer.rsplit("####").next().unwrap_or("")).to_string(),
            })
        })
        .collect::<Result<_>>()
        .map(Items::Gen)
}

/// OLMES's strict answer: the number after the last `the answer is ` in any case (its exemplars
/// end `So the answer is N.`), or [`INVALID`].
pub fn answer_is_last(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let Some(at) = lower.rfind("the answer is ") else {
        return INVALID.to_string();
    };
    let num: String = text[at + "the answer is ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | ',' | '$'))
        .collect();
    if num.chars().any(|c| c.is_ascii_digit()) {
        num
    } else {
        INVALID.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn olmes_answer_is_the_last_in_any_case() {
        assert_eq!(
            answer_is_last("so 3 + 4 = 7. The answer is 1,007."),
            "1,007."
        );
        assert_eq!(
            answer_is_last("the answer is 2. So the answer is $18"),
            "$18"
        );
        assert_eq!(answer_is_last("no answer"), INVALID);
    }
}
