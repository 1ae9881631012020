//! The output folder of an evaluation: its settings (`eval.json`), refused when it already
//! holds a run unless resumed or replaced, and the per-item files (`TASK.jsonl`) written item by
//! item so that a killed run keeps every finished item; `--resume` reads them back, drops a torn
//! last line, checks that each kept item is the one the same settings would score, and goes on.

use crate::error::{Error, Result};
use crate::files::write_atomic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Every setting that changes an item's prompt or its answer; a resumed run must repeat them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// The model argument.
    pub model: String,
    /// Engine device as named.
    pub device: String,
    /// Engine dtype.
    pub dtype: String,
    /// The data folder.
    pub data: String,
    /// Task names in order.
    pub tasks: Vec<String>,
    /// Items per task at most.
    pub limit: Option<usize>,
    /// Exemplars per prompt (else each task's default).
    pub shots: Option<usize>,
    /// Seed of sampled exemplars.
    pub seed: u64,
    /// Chat mode.
    pub chat: bool,
    /// Generated tokens at most.
    pub max_gen_tokens: usize,
    /// MMLU subjects as given.
    pub subjects: Option<String>,
}

impl EvalSettings {
    /// The first setting that differs: `(field, earlier, now)`.
    fn difference(&self, now: &EvalSettings) -> Option<(String, String, String)> {
        let (a, b) = (
            serde_json::to_value(self).ok()?,
            serde_json::to_value(now).ok()?,
        );
        let (a, b) = (a.as_object()?, b.as_object()?);
        a.iter().find_map(|(k, v)| {
            let w = b.get(k).cloned().unwrap_or(Value::Null);
            (*v != w).then(|| (k.clone(), v.to_string(), w.to_string()))
        })
    }
}

/// The files a run writes besides the per-item ones.
const RUN_FILES: [&str; 4] = ["eval.json", "records.jsonl", "summary.json", "summary.md"];

/// An evaluation's output folder.
#[derive(Debug)]
pub struct OutDir {
    dir: PathBuf,
    resume: bool,
}

impl OutDir {
    /// Opens `dir` for a run with `settings`: a folder already holding a run is an error unless
    /// `resume` (same settings, checked) or `force` (its run files and `task_files` removed).
    pub fn open(
        dir: &Path,
        settings: &EvalSettings,
        task_files: &[String],
        resume: bool,
        force: bool,
    ) -> Result<OutDir> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| Error::io(&p, e)
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let run = dir.join("eval.json");
        let held: Vec<String> = RUN_FILES
            .iter()
            .map(|s| s.to_string())
            .chain(task_files.iter().cloned())
            .filter(|f| dir.join(f).exists())
            .collect();
        if resume {
            let text = std::fs::read_to_string(&run).map_err(|_| {
                Error::Invalid(format!(
                    "--resume: {} has no eval.json, so there is no run to resume",
                    dir.display()
                ))
            })?;
            let old: EvalSettings = serde_json::from_str(&text).map_err(|e| {
                Error::Invalid(format!(
                    "{}: not a moecap eval settings file: {e}",
                    run.display()
                ))
            })?;
            if let Some((field, was, now)) = old.difference(settings) {
                return Err(Error::Invalid(format!(
                    "--resume: {} was run with {field} = {was}, this command has {now}; use the same settings or another --out",
                    run.display()
                )));
            }
        } else {
            if !held.is_empty() && !force {
                return Err(Error::Invalid(format!(
                    "--out {} already holds an evaluation ({}); pass --resume to continue it, --force to replace it, or choose another --out",
                    dir.display(),
                    held.join(", ")
                )));
            }
            for f in &held {
                std::fs::remove_file(dir.join(f)).map_err(io(&dir.join(f)))?;
            }
            let text = serde_json::to_string_pretty(settings)
                .map_err(|e| Error::Invalid(format!("serialising eval settings: {e}")))?;
            write_atomic(&run, text.as_bytes())?;
        }
        let rec = dir.join("records.jsonl");
        if !rec.exists() {
            std::fs::write(&rec, b"").map_err(io(&rec))?;
        }
        Ok(OutDir {
            dir: dir.to_path_buf(),
            resume,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The records file.
    pub fn records(&self) -> PathBuf {
        self.dir.join("records.jsonl")
    }

    /// Opens `TASK.jsonl` for appending; when resuming, returns the rows already finished (the
    /// file rewritten without a torn last line), each checked by `check(index, row)`.
    pub fn task_file(
        &self,
        task: &str,
        check: &mut dyn FnMut(usize, &Value) -> Result<()>,
    ) -> Result<(ItemFile, Vec<Value>)> {
        let path = self.dir.join(format!("{task}.jsonl"));
        let mut rows = Vec::new();
        if self.resume && path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let mut kept = String::new();
            for line in text.split_inclusive('\n') {
                // a line is finished when it ends with its newline and parses
                let Some(body) = line.strip_suffix('\n') else {
                    break;
                };
                let Ok(v) = serde_json::from_str::<Value>(body) else {
                    break;
                };
                check(rows.len(), &v).map_err(|e| {
                    Error::Invalid(format!(
                        "--resume: {} item {}: {e}",
                        path.display(),
                        rows.len()
                    ))
                })?;
                rows.push(v);
                kept.push_str(line);
            }
            write_atomic(&path, kept.as_bytes())?;
        } else {
            std::fs::write(&path, b"").map_err(|e| Error::io(&path, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok((ItemFile { file, path }, rows))
    }
}

/// A per-item file open for appending.
#[derive(Debug)]
pub struct ItemFile {
    file: std::fs::File,
    path: PathBuf,
}

impl ItemFile {
    /// Appends `rows`, one line each, and flushes them to the file.
    pub fn append(&mut self, rows: &[Value]) -> Result<()> {
        let mut buf = String::new();
        for r in rows {
            buf.push_str(&r.to_string());
            buf.push('\n');
        }
        self.file
            .write_all(buf.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}
