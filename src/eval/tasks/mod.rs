//! Accuracy tasks and their prompts, in lm-evaluation-harness's formats: MMLU (k-shot from each
//! subject's dev split, ` A`–` D`), ARC-Challenge/Easy and HellaSwag (zero-shot, one
//! continuation per choice; HellaSwag's text preprocessing) scored by log-likelihood, GSM8K
//! (5 exemplars drawn from the train split as the harness draws them, generation) and GSM8K
//! chain-of-thought (8 fixed exemplars, generation; the harness's `gsm8k_cot` and OLMES's
//! wording), with the harness's answer filters ([`filters`]). Item counts of the full sets are checked.
//! One loader per task: [`mmlu`], [`arc`], [`hellaswag`], [`gsm8k`].

mod arc;
pub mod filters;
mod gsm8k;
mod hellaswag;
mod mmlu;

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

use filters::{RegexFilter, GSM8K_COT_STRICT, GSM8K_FLEXIBLE, GSM8K_STRICT};
pub use gsm8k::answer_is_last;
pub use hellaswag::hellaswag_preprocess;
pub use mmlu::Subjects;

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
    /// GSM8K test with lm-evaluation-harness's 8 chain-of-thought exemplars (`Q:`/`A:`).
    Gsm8kCot,
    /// GSM8K test with OLMES's wording of the same 8 exemplars (`Question:`/`Answer:`).
    Gsm8kCotOlmes,
}

impl Task {
    /// Every task, in report order.
    pub const ALL: [Task; 7] = [
        Task::Mmlu,
        Task::ArcChallenge,
        Task::ArcEasy,
        Task::Hellaswag,
        Task::Gsm8k,
        Task::Gsm8kCot,
        Task::Gsm8kCotOlmes,
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
            Task::Gsm8kCotOlmes => "gsm8k_cot_olmes",
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
                            "unknown task `{t}` (tasks: {})",
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
            Task::Gsm8kCot | Task::Gsm8kCotOlmes => 8,
            _ => 0,
        }
    }

    /// Whether answers are generated (else chosen by log-likelihood).
    pub fn generates(self) -> bool {
        matches!(self, Task::Gsm8k | Task::Gsm8kCot | Task::Gsm8kCotOlmes)
    }

    /// The answer extractions of a generating task: the strict one (`#### N` for GSM8K, the
    /// first `The answer is N.` for `gsm8k_cot`, the last `the answer is N` in any case for
    /// OLMES's) and the flexible one (the last number), as lm-evaluation-harness's filters.
    pub fn extractors(self) -> Result<Extractors> {
        let strict = match self {
            Task::Gsm8k => Strict::Regex(RegexFilter::new(GSM8K_STRICT, 0)?),
            Task::Gsm8kCotOlmes => Strict::AnswerIsLast,
            _ => Strict::Regex(RegexFilter::new(GSM8K_COT_STRICT, 0)?),
        };
        Ok(Extractors {
            strict,
            flexible: RegexFilter::new(GSM8K_FLEXIBLE, -1)?,
        })
    }

    /// The stop strings of a generating task without chat (lm-evaluation-harness's `until`;
    /// OLMES's also stops at a blank line).
    pub fn stops(self) -> &'static [&'static str] {
        match self {
            Task::Gsm8k => &["Question:", "</s>", "<|im_end|>"],
            Task::Gsm8kCotOlmes => &["Question:", "</s>", "<|im_end|>", "\n\n"],
            _ => &["Q:", "</s>", "<|im_end|>"],
        }
    }
}

/// A strict answer extraction.
#[derive(Debug, Clone)]
pub enum Strict {
    /// lm-evaluation-harness's regex filter.
    Regex(RegexFilter),
    /// OLMES's: the last `the answer is N`, any case.
    AnswerIsLast,
}

/// The two answer extractions of a generating task.
#[derive(Debug, Clone)]
pub struct Extractors {
    /// The strict extraction.
    pub strict: Strict,
    /// The flexible extraction (the last number).
    pub flexible: RegexFilter,
}

impl Extractors {
    /// The strict answer of `text` ([`filters::INVALID`] when there is none).
    pub fn strict(&self, text: &str) -> String {
        match &self.strict {
            Strict::Regex(f) => f.apply(text),
            Strict::AnswerIsLast => answer_is_last(text),
        }
    }

    /// The flexible answer of `text`.
    pub fn flexible(&self, text: &str) -> String {
        self.flexible.apply(text)
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
    /// HellaSwag's `ind` (the dataset's own item number, which lm-evaluation-harness logs).
    pub ind: Option<i64>,
}

/// One generation item.
#[derive(Debug, Clone, PartialEq)]
pub struct GenItem {
    /// Item id.
    pub id: String,
    /// The prompt.
    pub prompt: String,
    /// The reference as lm-evaluation-harness's `doc_to_target` gives it (GSM8K: the whole
    /// solution; the chain-of-thought tasks: the number after `####`).
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
    load_subjects(task, data, limit, shots, seed, None)
}

/// [`load`], with MMLU restricted to `subjects` (other tasks ignore it).
pub fn load_subjects(
    task: Task,
    data: &Path,
    limit: Option<usize>,
    shots: usize,
    seed: u64,
    subjects: Option<&Subjects>,
) -> Result<Items> {
    match task {
        Task::Mmlu => mmlu::load(data, limit, shots, subjects),
        Task::ArcChallenge | Task::ArcEasy => arc::load(task, data, limit, shots),
        Task::Hellaswag => hellaswag::load(data, limit, shots),
        Task::Gsm8k => gsm8k::load(data, limit, shots, seed),
        Task::Gsm8kCot => gsm8k::load_cot(data, limit, shots),
        Task::Gsm8kCotOlmes => gsm8k::load_cot_olmes(data, limit, shots),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
