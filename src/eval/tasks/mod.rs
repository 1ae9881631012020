//! Accuracy tasks and their prompts, in lm-evaluation-harness's formats: MMLU (k-shot from each
//! subject's dev split, ` A`–` D`), ARC-Challenge/Easy and HellaSwag (zero-shot, one
//! continuation per choice; HellaSwag's text preprocessing) scored by log-likelihood, GSM8K
//! (5 exemplars drawn from the train split as the harness draws them, generation) and GSM8K
//! chain-of-thought (8 fixed exemplars, generation). Item counts of the full sets are checked.
//! One loader per task: [`mmlu`], [`arc`], [`hellaswag`], [`gsm8k`].

mod arc;
mod gsm8k;
mod hellaswag;
mod mmlu;

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub use gsm8k::{extract_flexible, extract_hashes, extract_strict, normalise_number};
pub use hellaswag::hellaswag_preprocess;

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
    match task {
        Task::Mmlu => mmlu::load(data, limit, shots),
        Task::ArcChallenge | Task::ArcEasy => arc::load(task, data, limit, shots),
        Task::Hellaswag => hellaswag::load(data, limit, shots),
        Task::Gsm8k => gsm8k::load(data, limit, shots, seed),
        Task::Gsm8kCot => gsm8k::load_cot(data, limit, shots),
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
