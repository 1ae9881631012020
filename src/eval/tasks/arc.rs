//! ARC-Challenge and ARC-Easy (zero-shot): `Question: Q\nAnswer:` and each choice as a
//! continuation, from the test requests the OLMo evaluation package ships (each document once,
//! by its id).

use super::{check_count, is_sample, need, s, strings, ChoiceItem, Items, Task};
use crate::data::read_rows;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// ARC's items (`task` is one of the two sets).
pub(super) fn load(task: Task, data: &Path, limit: Option<usize>, shots: usize) -> Result<Items> {
    let take = |n: usize| limit.map_or(n, |l| l.min(n));
    let full = !is_sample(data);
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
            .ok_or_else(|| Error::Invalid(format!("{}: a request has no doc.id", f.display())))?
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
            let doc = r
                .get("doc")
                .ok_or_else(|| Error::Invalid(format!("{}: a request has no doc", f.display())))?;
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
                ind: None,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Items::Choice(items))
}
