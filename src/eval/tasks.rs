//! Accuracy tasks and their prompts, in lm-evaluation-harness's formats: MMLU (k-shot from each
//! subject's dev split, ` A`–` D`), ARC-Challenge/Easy and HellaSwag (zero-shot, one
//! continuation per choice; HellaSwag's text preprocessing) scored by log-likelihood, GSM8K
//! (5 exemplars drawn from the train split as the harness draws them, generation) and GSM8K
//! chain-of-thought (8 fixed exemplars, generation). Item counts of the full sets are checked.

use super::fewshot::sample_per_doc;
use crate::data::read_rows;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A task moecap evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// MMLU, 57 subjects.
    Mmlu,
    /// ARC-Challenge test.
    ArcChallenge,
    /// ARC-Easy test.
    ArcEasy,
    /// HellaSwag validation.
    Hellaswag,
    /// GSM8K test with exemplars drawn from the train split (`Question:`/`Answer:` … `#### N`).
    Gsm8k,
    /// GSM8K test with 8 chain-of-thought exemplars.
    Gsm8kCot,
}

impl Task {
    /// Every task, in report order.
    pub const ALL: [Task; 6] = [
        Task::Mmlu,
        Task::ArcChallenge,
        Task::ArcEasy,
        Task::Hellaswag,
        Task::Gsm8k,
        Task::Gsm8kCot,
    ];

    /// The task's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Task::Mmlu => "mmlu",
            Task::ArcChallenge => "arc_challenge",
            Task::ArcEasy => "arc_easy",
            Task::Hellaswag => "hellaswag",
            Task::Gsm8k => "gsm8k",
            Task::Gsm8kCot => "gsm8k_cot",
        }
    }

    /// Parses `--tasks` (comma-separated).
    pub fn parse_list(s: &str) -> Result<Vec<Task>> {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                Task::ALL
                    .iter()
                    .copied()
                    .find(|k| k.name() == t)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "--tasks: unknown task `{t}` (tasks: {})",
                            Task::ALL.map(Task::name).join(", ")
                        ))
                    })
            })
            .collect()
    }

    /// Default shots (lm-evaluation-harness's).
    pub fn default_shots(self) -> usize {
        match self {
            Task::Mmlu | Task::Gsm8k => 5,
            Task::Gsm8kCot => 8,
            _ => 0,
        }
    }

    /// Whether answers are generated (else chosen by log-likelihood).
    pub fn generates(self) -> bool {
        matches!(self, Task::Gsm8k | Task::Gsm8kCot)
    }

    /// The strict answer extraction of a generating task: `#### N` for GSM8K, `The answer is
    /// N` for its chain-of-thought variant.
    pub fn strict_extractor(self) -> fn(&str) -> Option<String> {
        match self {
            Task::Gsm8k => extract_hashes,
            _ => extract_strict,
        }
    }

    /// The stop strings of a generating task without chat (lm-evaluation-harness's `until`).
    pub fn stops(self) -> &'static [&'static str] {
        match self {
            Task::Gsm8k => &["Question:", "</s>", "<|im_end|>"],
            _ => &["Question:", "</s>", "<|im_end|>", "\n\n"],
        }
    }
}

/// One multiple-choice item: the context and each choice's continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceItem {
    /// Item id (subject and index for MMLU).
    pub id: String,
    /// Group for per-group accuracy (the MMLU subject; empty otherwise).
    pub group: String,
    /// The prompt.
    pub context: String,
    /// Continuations, each with its leading space.
    pub choices: Vec<String>,
    /// The right choice.
    pub gold: usize,
}

/// One generation item.
#[derive(Debug, Clone, PartialEq)]
pub struct GenItem {
    /// Item id.
    pub id: String,
    /// The prompt.
    pub prompt: String,
    /// The reference answer (a number for GSM8K).
    pub answer: String,
}

/// A task's items.
#[derive(Debug, Clone)]
pub enum Items {
    /// Scored by log-likelihood.
    Choice(Vec<ChoiceItem>),
    /// Scored on generated text.
    Gen(Vec<GenItem>),
}

impl Items {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            Items::Choice(v) => v.len(),
            Items::Gen(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn need(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Invalid(format!(
            "{} is missing; run scripts/fetch-data.sh (or set MOECAP_DATA)",
            path.display()
        )))
    }
}

fn s<'v>(v: &'v Value, k: &str, file: &Path) -> Result<&'v str> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid(format!("{}: a row has no `{k}` string", file.display())))
}

fn strings(v: &Value, k: &str, file: &Path) -> Result<Vec<String>> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .ok_or_else(|| Error::Invalid(format!("{}: a row has no `{k}` list", file.display())))
}

fn check_count(file: &Path, what: &str, got: usize, want: usize, full: bool) -> Result<()> {
    // committed samples hold fewer items on purpose
    if full && got != want {
        return Err(Error::Invalid(format!(
            "{}: {got} {what}, expected {want}: the file is truncated or not the published set; fetch it again",
            file.display()
        )));
    }
    Ok(())
}

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

/// MMLU's question block: question, lettered choices, `Answer:`.
fn mmlu_block(row: &Value, file: &Path) -> Result<(String, usize)> {
    let q = s(row, "question", file)?.trim().to_string();
    let ch = strings(row, "choices", file)?;
    if ch.len() != 4 {
        return Err(Error::Invalid(format!(
            "{}: an item has {} choices, not 4",
            file.display(),
            ch.len()
        )));
    }
    let gold = row
        .get("answer")
        .and_then(Value::as_u64)
        .filter(|a| *a < 4)
        .ok_or_else(|| {
            Error::Invalid(format!("{}: an item's `answer` is not 0-3", file.display()))
        })?;
    Ok((
        format!(
            "{q}\nA. {}\nB. {}\nC. {}\nD. {}\nAnswer:",
            ch[0], ch[1], ch[2], ch[3]
        ),
        gold as usize,
    ))
}

const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

/// Whether `data` is a committed sample (a `SAMPLE` file in it): item counts are then not
/// checked.
pub fn is_sample(data: &Path) -> bool {
    data.join("SAMPLE").is_file()
}

/// Loads a task's items from `data`: the first `limit` items (per subject for MMLU), with
/// `shots` exemplars where the task has them; `seed` seeds the draw of exemplars where they are
/// sampled (GSM8K; lm-evaluation-harness's `fewshot_random_seed`, 1234 by default there). The
/// item counts of full sets are checked.
pub fn load(
    task: Task,
    data: &Path,
    limit: Option<usize>,
    shots: usize,
    seed: u64,
) -> Result<Items> {
    let take = |n: usize| limit.map_or(n, |l| l.min(n));
    let full = !is_sample(data);
    match task {
        Task::Mmlu => {
            let root = data.join("mmlu");
            let mut subjects: Vec<String> = std::fs::read_dir(&root)
                .map_err(|_| {
                    Error::Invalid(format!(
                        "{} is missing; run scripts/fetch-data.sh mmlu (or set MOECAP_DATA)",
                        root.display()
                    ))
                })?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            subjects.sort();
            let mut items = Vec::new();
            let (mut n_test, mut n_dev) = (0, 0);
            for subj in &subjects {
                let dev_f = need(root.join(subj).join("dev.arrow"))?;
                let test_f = need(root.join(subj).join("test.arrow"))?;
                let dev = read_rows(&dev_f)?;
                let test = read_rows(&test_f)?;
                n_dev += dev.len();
                n_test += test.len();
                if shots > dev.len() {
                    return Err(Error::Invalid(format!(
                        "--shots {shots}: MMLU's {subj} dev split has {} exemplars",
                        dev.len()
                    )));
                }
                let mut ctx = format!(
                    "The following are multiple choice questions (with answers) about {}.\n\n",
                    subj.replace('_', " ")
                );
                for ex in &dev[..shots] {
                    let (block, gold) = mmlu_block(ex, &dev_f)?;
                    ctx += &format!("{block} {}\n\n", LETTERS[gold]);
                }
                for (i, row) in test.iter().take(take(test.len())).enumerate() {
                    let (block, gold) = mmlu_block(row, &test_f)?;
                    items.push(ChoiceItem {
                        id: format!("{subj}/{i}"),
                        group: subj.clone(),
                        context: format!("{ctx}{block}"),
                        choices: LETTERS.iter().map(|l| format!(" {l}")).collect(),
                        gold,
                    });
                }
            }
            check_count(&root, "MMLU subjects", subjects.len(), 57, full)?;
            check_count(&root, "MMLU test items", n_test, 14042, full)?;
            check_count(&root, "MMLU dev items", n_dev, 285, full)?;
            Ok(Items::Choice(items))
        }
        Task::ArcChallenge | Task::ArcEasy => {
            if shots > 0 {
                return Err(Error::Invalid(format!(
                    "--shots: {} is zero-shot here",
                    task.name()
                )));
            }
            let f = need(data.join(task.name()).join("test.jsonl.gz"))?;
            // the file holds one request per choice, each document twice (two request sets);
            // the documents, by their ARC id, are what is evaluated
            let mut seen = std::collections::BTreeSet::new();
            let mut docs = Vec::new();
            for r in read_rows(&f)? {
                let id = r
                    .get("doc")
                    .and_then(|d| d.get("id"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Error::Invalid(format!("{}: a request has no doc.id", f.display()))
                    })?
                    .to_string();
                if seen.insert(id) {
                    docs.push(r);
                }
            }
            let want = if task == Task::ArcChallenge {
                1172
            } else {
                2376
            };
            check_count(&f, "documents", docs.len(), want, full)?;
            docs.truncate(take(docs.len()));
            let items = docs
                .iter()
                .map(|r| {
                    let doc = r.get("doc").ok_or_else(|| {
                        Error::Invalid(format!("{}: a request has no doc", f.display()))
                    })?;
                    let choices = strings(doc, "choices", &f)?;
                    let gold = doc
                        .get("gold")
                        .and_then(Value::as_u64)
                        .filter(|g| (*g as usize) < choices.len())
                        .ok_or_else(|| {
                            Error::Invalid(format!("{}: a doc's gold is not a choice", f.display()))
                        })?;
                    Ok(ChoiceItem {
                        id: s(doc, "id", &f)?.to_string(),
                        group: String::new(),
                        context: s(doc, "query", &f)?.to_string(),
                        choices: choices.iter().map(|c| format!(" {c}")).collect(),
                        gold: gold as usize,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(Items::Choice(items))
        }
        Task::Hellaswag => {
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
                    let query =
                        hellaswag_preprocess(&format!("{}: {ctx}", s(r, "activity_label", &f)?));
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
                    })
                })
                .collect::<Result<_>>()
                .map(Items::Choice)
        }
        Task::Gsm8k => {
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
        Task::Gsm8kCot => {
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
    }
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

    #[test]
    fn task_names() {
        assert_eq!(
            Task::parse_list("mmlu, gsm8k_cot").unwrap(),
            vec![Task::Mmlu, Task::Gsm8kCot]
        );
        assert!(Task::parse_list("mmlu,piqa")
            .unwrap_err()
            .to_string()
            .contains("piqa"));
    }
}
