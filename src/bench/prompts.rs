//! Benchmark prompts: real text (GSM8K questions, ShareGPT first turns, a text file, or the
//! built-in sample text) tokenised and cut or extended to an exact length, or random ids. Every
//! prompt says where its text came from.

use crate::data::{paragraphs, SAMPLE_TEXT};
use crate::error::{Error, Result};
use crate::model::tokenizer::TextCodec;
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where prompt text comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptSource {
    /// GSM8K test questions (`$MOECAP_DATA/gsm8k/test.jsonl`, from `scripts/fetch-data.sh`).
    Gsm8k,
    /// ShareGPT first human turns (`$MOECAP_DATA/sharegpt/sharegpt.json`).
    Sharegpt,
    /// Paragraphs of a text file (separated by blank lines).
    Text(PathBuf),
    /// The built-in sample text.
    Sample,
    /// Uniformly random token ids (unrealistic routing; for comparison only).
    Random,
}

impl PromptSource {
    /// Parses `--prompts`: `gsm8k`, `sharegpt`, `text:FILE`, `sample`, `random`, or `auto`
    /// (GSM8K when fetched, else the sample text).
    pub fn parse(s: &str, data_dir: Option<&Path>) -> Result<Self> {
        match s {
            "gsm8k" => Ok(PromptSource::Gsm8k),
            "sharegpt" => Ok(PromptSource::Sharegpt),
            "sample" => Ok(PromptSource::Sample),
            "random" => Ok(PromptSource::Random),
            "auto" => Ok(match data_dir {
                Some(d) if gsm8k_file(d).is_file() => PromptSource::Gsm8k,
                _ => PromptSource::Sample,
            }),
            _ => match s.strip_prefix("text:") {
                Some(f) if !f.is_empty() => Ok(PromptSource::Text(PathBuf::from(f))),
                _ => Err(Error::Invalid(format!(
                    "--prompts: `{s}` is not gsm8k, sharegpt, text:FILE, sample, random or auto"
                ))),
            },
        }
    }

    /// A short name for reports.
    pub fn label(&self) -> String {
        match self {
            PromptSource::Gsm8k => "gsm8k".into(),
            PromptSource::Sharegpt => "sharegpt".into(),
            PromptSource::Text(p) => format!("text:{}", p.display()),
            PromptSource::Sample => "sample".into(),
            PromptSource::Random => "random".into(),
        }
    }
}

fn gsm8k_file(data: &Path) -> PathBuf {
    data.join("gsm8k").join("test.jsonl")
}

fn sharegpt_file(data: &Path) -> PathBuf {
    data.join("sharegpt").join("sharegpt.json")
}

/// The texts of a source, in order.
pub fn source_texts(src: &PromptSource, data: Option<&Path>) -> Result<Vec<String>> {
    let need_data = |f: fn(&Path) -> PathBuf| -> Result<PathBuf> {
        let Some(d) = data else {
            return Err(Error::Invalid(
                "--prompts: no data folder (set MOECAP_DATA or HOME)".into(),
            ));
        };
        let p = f(d);
        if !p.is_file() {
            return Err(Error::Invalid(format!(
                "--prompts {}: {} is missing; run scripts/fetch-data.sh (or use --prompts sample)",
                src.label(),
                p.display()
            )));
        }
        Ok(p)
    };
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
    let texts = match src {
        PromptSource::Sample => paragraphs(SAMPLE_TEXT),
        PromptSource::Text(p) => paragraphs(&read(p)?),
        PromptSource::Random => Vec::new(),
        PromptSource::Gsm8k => {
            let p = need_data(gsm8k_file)?;
            let mut out = Vec::new();
            for (i, line) in read(&p)?.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    Error::Invalid(format!("{} line {}: invalid JSON: {e}", p.display(), i + 1))
                })?;
                let q = v.get("question").and_then(|q| q.as_str()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{} line {}: no `question` string",
                        p.display(),
                        i + 1
                    ))
                })?;
                out.push(q.to_string());
            }
            out
        }
        PromptSource::Sharegpt => {
            let p = need_data(sharegpt_file)?;
            sharegpt_first_turns(&read(&p)?)
        }
    };
    if *src != PromptSource::Random && texts.is_empty() {
        return Err(Error::Invalid(format!(
            "--prompts {}: the source has no text",
            src.label()
        )));
    }
    Ok(texts)
}

/// The first human turn of each complete conversation of a ShareGPT JSON array. The file the
/// registry ships is cut off mid-array: items are read one by one and the broken tail ignored.
pub fn sharegpt_first_turns(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(start) = text.find('[') else {
        return out;
    };
    let mut rest = &text[start + 1..];
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        let mut it = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
        let Some(Ok(item)) = it.next() else {
            break;
        };
        let used = it.byte_offset();
        rest = &rest[used..];
        let turn = item
            .get("conversations")
            .and_then(|c| c.as_array())
            .and_then(|c| {
                c.iter().find(|t| {
                    matches!(
                        t.get("from").and_then(|f| f.as_str()),
                        Some("human" | "user")
                    )
                })
            })
            .and_then(|t| t.get("value"))
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        if let Some(t) = turn {
            out.push(t.to_string());
        }
    }
    out
}

/// How the texts become ids.
pub enum Tokenise<'a> {
    /// The checkpoint's tokenizer.
    Codec(&'a TextCodec),
    /// Words hashed into the vocabulary: for checkpoints without a tokenizer (or with one that
    /// does not cover the text). Equal words get equal ids, so the repetition structure of text
    /// survives.
    HashedWords,
}

/// One benchmark prompt and its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// Token ids (exactly the requested length).
    pub ids: Vec<u32>,
    /// Source label.
    pub source: String,
    /// Indices of the source texts used, in order (empty for random ids).
    pub items: Vec<usize>,
    /// How text became ids: `tokenizer`, `hashed-words` or `random`.
    pub tokenisation: String,
}

/// FNV-1a of a word, folded into `[first, vocab)`.
fn hashed_id(word: &str, vocab: usize) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let first = 3.min(vocab.saturating_sub(1));
    (first as u64 + h % (vocab - first) as u64) as u32
}

/// Builds `batch` prompts of exactly `len` ids: sequence `i` starts at text `offset + i` and
/// continues with the following texts (cyclically) until it is long enough, then is cut.
/// `Random` draws ids in `[3, vocab)` from `seed`.
#[allow(clippy::too_many_arguments)]
pub fn build_prompts(
    src: &PromptSource,
    texts: &[String],
    tok: &Tokenise,
    vocab: usize,
    batch: usize,
    len: usize,
    offset: usize,
    seed: u64,
) -> Result<Vec<Prompt>> {
    if len == 0 {
        return Err(Error::Invalid(
            "--prompt-len values must be at least 1".into(),
        ));
    }
    let mut out = Vec::with_capacity(batch);
    if *src == PromptSource::Random {
        let mut rng = SplitMix64::new(seed ^ (len as u64) << 32 ^ batch as u64);
        let lo = 3.min(vocab.saturating_sub(1)) as u64;
        for _ in 0..batch {
            let ids = (0..len)
                .map(|_| (lo + rng.next_u64() % (vocab as u64 - lo)) as u32)
                .collect();
            out.push(Prompt {
                ids,
                source: src.label(),
                items: Vec::new(),
                tokenisation: "random".into(),
            });
        }
        return Ok(out);
    }
    let encode = |t: &str| -> Result<Vec<u32>> {
        match tok {
            Tokenise::Codec(c) => c.encode(t),
            Tokenise::HashedWords => {
                Ok(t.split_whitespace().map(|w| hashed_id(w, vocab)).collect())
            }
        }
    };
    for i in 0..batch {
        let mut ids = Vec::with_capacity(len);
        let mut items = Vec::new();
        let mut j = offset + i;
        while ids.len() < len {
            let item = j % texts.len();
            let mut t = encode(&texts[item])?;
            if t.is_empty() && items.len() > texts.len() {
                return Err(Error::Invalid(format!(
                    "--prompts {}: the texts give no tokens",
                    src.label()
                )));
            }
            if !ids.is_empty() {
                // a continuation: drop the BOS the tokenizer adds to every text
                if let (Some(&first), Some(&bos)) = (t.first(), ids.first()) {
                    if first == bos && matches!(tok, Tokenise::Codec(_)) && t.len() > 1 {
                        t.remove(0);
                    }
                }
            }
            ids.extend(t);
            items.push(item);
            j += 1;
        }
        ids.truncate(len);
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Invalid(format!(
                "--prompts {}: the tokenizer gives id {bad}, outside the model's vocabulary of {vocab}",
                src.label()
            )));
        }
        out.push(Prompt {
            ids,
            source: src.label(),
            items,
            tokenisation: match tok {
                Tokenise::Codec(_) => "tokenizer".into(),
                Tokenise::HashedWords => "hashed-words".into(),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_prompts_have_exact_length_and_provenance() {
        let texts = source_texts(&PromptSource::Sample, None).unwrap();
        assert_eq!(texts.len(), 16);
        let p = build_prompts(
            &PromptSource::Sample,
            &texts,
            &Tokenise::HashedWords,
            1000,
            3,
            300,
            0,
            0,
        )
        .unwrap();
        assert_eq!(p.len(), 3);
        for (i, q) in p.iter().enumerate() {
            assert_eq!(q.ids.len(), 300);
            assert_eq!(q.items[0], i);
            assert!(q.items.len() >= 4, "300 words need several paragraphs");
            assert!(q.ids.iter().all(|&t| (3..1000).contains(&t)));
        }
        // equal words, equal ids: "the" recurs
        let the = hashed_id("the", 1000);
        assert!(p[0].ids.iter().filter(|&&t| t == the).count() > 5);
        let r = build_prompts(
            &PromptSource::Random,
            &[],
            &Tokenise::HashedWords,
            50,
            2,
            7,
            0,
            1,
        )
        .unwrap();
        assert!(r
            .iter()
            .all(|q| q.ids.len() == 7 && q.tokenisation == "random"));
        assert_ne!(r[0].ids, r[1].ids);
    }

    #[test]
    fn sharegpt_cut_off_file_yields_complete_items() {
        let text = r#"[{"id":"a","conversations":[{"from":"human","value":" Hi there "},{"from":"gpt","value":"x"}]},
 {"id":"b","conversations":[{"from":"gpt","value":"only bot"}]},
 {"id":"c","conversations":[{"from":"human","value":"Second"}]}, {"id":"d","conversations":[{"from":"hu"#;
        assert_eq!(sharegpt_first_turns(text), vec!["Hi there", "Second"]);
    }

    #[test]
    fn bad_prompt_flags() {
        assert!(PromptSource::parse("text:", None).is_err());
        assert!(PromptSource::parse("wiki", None)
            .unwrap_err()
            .to_string()
            .contains("--prompts"));
        assert_eq!(
            PromptSource::parse("auto", None).unwrap(),
            PromptSource::Sample
        );
        let e = source_texts(&PromptSource::Gsm8k, Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(e.to_string().contains("scripts/fetch-data.sh"), "{e}");
    }
}
