//! MMLU in lm-evaluation-harness's format: per subject, `The following are multiple choice
//! questions (with answers) about SUBJECT.`, `k` exemplars from the dev split, then the question
//! with its lettered choices and `Answer:`, scored on ` A`–` D`.

use super::{check_count, is_sample, need, s, strings, ChoiceItem, Items};
use crate::data::read_rows;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

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

/// Which MMLU subjects a run scores (`--subjects`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subjects {
    /// These, by name (`abstract_algebra,anatomy`).
    Named(Vec<String>),
    /// The first N in alphabetical order (`first:N`).
    First(usize),
}

impl Subjects {
    /// Parses `--subjects`: names separated by commas, or `first:N`.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(n) = s.trim().strip_prefix("first:") {
            return match n.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Subjects::First(n)),
                _ => Err(Error::Invalid(format!(
                    "--subjects {s}: `first:N` needs a whole number N of at least 1"
                ))),
            };
        }
        let names: Vec<String> = s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
        if names.is_empty() {
            return Err(Error::Invalid(format!("--subjects `{s}` names no subject")));
        }
        Ok(Subjects::Named(names))
    }

    /// The chosen subjects among `all` (sorted), in `all`'s order; an unknown name is an error.
    fn pick(&self, all: &[String], root: &Path) -> Result<Vec<String>> {
        match self {
            Subjects::First(n) => Ok(all.iter().take(*n).cloned().collect()),
            Subjects::Named(names) => {
                if let Some(bad) = names.iter().find(|n| !all.contains(n)) {
                    let mut near: Vec<&String> = all.iter().collect();
                    near.sort_by_key(|a| crate::machine::hardware::edit_distance(a, bad));
                    return Err(Error::Invalid(format!(
                        "--subjects: no MMLU subject `{bad}` in {} (closest: {})",
                        root.display(),
                        near.iter()
                            .take(3)
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                Ok(all.iter().filter(|a| names.contains(a)).cloned().collect())
            }
        }
    }
}

/// MMLU's items: the first `limit` of each subject (all subjects, or `subjects`), with `shots`
/// dev exemplars.
pub(super) fn load(
    data: &Path,
    limit: Option<usize>,
    shots: usize,
    chosen: Option<&Subjects>,
) -> Result<Items> {
    let take = |n: usize| limit.map_or(n, |l| l.min(n));
    let full = !is_sample(data);
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
    // a chosen subset is not a truncated set: its counts are not checked
    let full = full && chosen.is_none();
    if let Some(c) = chosen {
        subjects = c.pick(&subjects, &root)?;
    }
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
                ind: None,
            });
        }
    }
    check_count(&root, "MMLU subjects", subjects.len(), 57, full)?;
    check_count(&root, "MMLU test items", n_test, 14042, full)?;
    check_count(&root, "MMLU dev items", n_dev, 285, full)?;
    Ok(Items::Choice(items))
}
