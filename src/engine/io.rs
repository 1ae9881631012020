//! Engine inputs and outputs on disk: `--input-ids` parsing, the `logits` command's
//! safetensors file, and writing a checkpoint (synthetic or upcycled) in Hugging Face
//! layout.

use crate::error::{Error, Result};
use crate::machine::disk::check_disk_room;
use crate::records::EngineRecord;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Parses `--input-ids "1,2,3;4,5"`: sequences separated by `;`, ids by `,`.
pub fn parse_input_ids(s: &str) -> Result<Vec<Vec<u32>>> {
    let mut out = Vec::new();
    for (i, seq) in s.split(';').enumerate() {
        if seq.trim().is_empty() {
            return Err(Error::Invalid(format!("sequence {} is empty", i + 1)));
        }
        let ids: Vec<u32> = seq
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(j, t)| {
                if t.is_empty() {
                    return Err(Error::Invalid(format!(
                        "sequence {}: id {} is empty (two commas in a row, or a trailing comma)",
                        i + 1,
                        j + 1
                    )));
                }
                t.parse::<u32>().map_err(|_| {
                    Error::Invalid(format!("`{t}` in sequence {} is not a token id", i + 1))
                })
            })
            .collect::<Result<_>>()?;
        out.push(ids);
    }
    Ok(out)
}

/// Writes the `logits` command's file: `logits` `[batch, seq, vocab]` f32 (rows past a
/// sequence's end are 0), `lengths` `[batch]` i64, and per MoE layer `L` `topk_ids.L`
/// `[batch, seq, k]` i64 (−1 past the end) and `topk_weights.L` f32 (0 past the end).
/// `logits[b]` is `[lengths[b], vocab]`; the record's routing rows are in the same order.
pub fn write_logits_file(
    path: &Path,
    logits: &[Tensor],
    lengths: &[usize],
    record: Option<&EngineRecord>,
) -> Result<()> {
    let batch = lengths.len();
    let max_n = lengths.iter().copied().max().unwrap_or(0);
    let vocab = match logits.first() {
        Some(t) => t.dim(1)?,
        None => 0,
    };
    let mut all = vec![0f32; batch * max_n * vocab];
    for (b, l) in logits.iter().enumerate() {
        for (t, row) in l.to_vec2::<f32>()?.into_iter().enumerate() {
            let at = (b * max_n + t) * vocab;
            all[at..at + vocab].copy_from_slice(&row);
        }
    }
    let mut out: HashMap<String, Tensor> = HashMap::new();
    out.insert(
        "logits".into(),
        Tensor::from_vec(all, (batch, max_n, vocab), &Device::Cpu)?,
    );
    let lens: Vec<i64> = lengths.iter().map(|&n| n as i64).collect();
    out.insert("lengths".into(), Tensor::new(lens, &Device::Cpu)?);
    if let Some(rec) = record {
        for (layer, r) in &rec.topk {
            let k = r.ids.first().map_or(0, Vec::len);
            let mut ids = vec![-1i64; batch * max_n * k];
            let mut ws = vec![0f32; batch * max_n * k];
            let mut row = 0;
            for (b, &n) in lengths.iter().enumerate() {
                for t in 0..n {
                    let at = (b * max_n + t) * k;
                    for j in 0..k {
                        ids[at + j] = r.ids[row + t][j] as i64;
                        ws[at + j] = r.weights[row + t][j];
                    }
                }
                row += n;
            }
            let shape = (batch, max_n, k);
            out.insert(
                format!("topk_ids.{layer}"),
                Tensor::from_vec(ids, shape, &Device::Cpu)?,
            );
            out.insert(
                format!("topk_weights.{layer}"),
                Tensor::from_vec(ws, shape, &Device::Cpu)?,
            );
        }
    }
    candle_core::safetensors::save(&out, path).map_err(|e| Error::Safetensors {
        file: path.display().to_string(),
        msg: crate::error::candle_message(&e),
    })
}

/// Writes a checkpoint directory: `config.json`, `generation_config.json`, `tokenizer.json`,
/// `model.safetensors` (f32) and any `extra` JSON files (name, content).
///
/// Everything is written into a staging folder beside `dir` and renamed into place at the end,
/// so a failure midway leaves no half checkpoint. A `dir` that exists and is not empty is
/// refused unless `force`; with `force` its old contents are replaced as a whole (an old
/// sharded index or shards never stay beside the new files). A checkpoint larger than the room
/// left on the filesystem is refused before anything is written.
pub fn write_checkpoint(
    dir: &Path,
    config: &serde_json::Value,
    tensors: &HashMap<String, Tensor>,
    tokenizer: &serde_json::Value,
    extra: &[(&str, &serde_json::Value)],
    force: bool,
) -> Result<()> {
    let occupied = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(dir, e)),
    };
    if occupied && !force {
        return Err(Error::Invalid(format!(
            "{} exists and is not empty; choose another folder or pass --force to replace it",
            dir.display()
        )));
    }
    let bytes: u64 = tensors
        .values()
        .map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
        .sum();
    check_disk_room(dir, bytes)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let sibling = |tag: &str| dir.with_file_name(format!(".{name}.{tag}{}", std::process::id()));
    let staging = sibling("partial");
    let _ = std::fs::remove_dir_all(&staging);
    let written = write_files(&staging, config, tensors, tokenizer, extra);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // An existing folder (empty, or replaced under --force) moves aside first, so that the
    // rename of the staging folder cannot fail on it, and is removed once the new one is there.
    let old = sibling("old");
    let moved = dir.exists();
    if moved {
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    if let Err(e) = std::fs::rename(&staging, dir) {
        if moved {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(Error::io(dir, e));
    }
    if moved {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

fn write_files(
    dir: &Path,
    config: &serde_json::Value,
    tensors: &HashMap<String, Tensor>,
    tokenizer: &serde_json::Value,
    extra: &[(&str, &serde_json::Value)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    let cfg = serde_json::to_string_pretty(config).map_err(|e| Error::Invalid(e.to_string()))?;
    write("config.json", cfg)?;
    let eos = config
        .get("eos_token_id")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let gen = serde_json::json!({"eos_token_id": eos, "do_sample": false});
    write("generation_config.json", gen.to_string())?;
    write("tokenizer.json", tokenizer.to_string())?;
    for (name, v) in extra {
        let text = serde_json::to_string_pretty(v).map_err(|e| Error::Invalid(e.to_string()))?;
        write(name, text + "\n")?;
    }
    let p = dir.join("model.safetensors");
    candle_core::safetensors::save(tensors, &p).map_err(|e| Error::Safetensors {
        file: p.display().to_string(),
        msg: crate::error::candle_message(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_ids() {
        assert_eq!(
            parse_input_ids("1,2,3; 4,5").unwrap(),
            vec![vec![1, 2, 3], vec![4, 5]]
        );
        assert!(parse_input_ids("1,x")
            .unwrap_err()
            .to_string()
            .contains("`x`"));
        assert!(parse_input_ids("1;;2")
            .unwrap_err()
            .to_string()
            .contains("sequence 2"));
        let e = parse_input_ids("1,,2").unwrap_err().to_string();
        assert!(e.contains("sequence 1: id 2 is empty"), "{e}");
        assert!(parse_input_ids("1,2,").is_err());
    }
}
