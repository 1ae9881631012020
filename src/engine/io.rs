//! Engine inputs and outputs on disk: `--input-ids` parsing, the `logits` command's
//! safetensors file, and writing a checkpoint (synthetic or upcycled) in Hugging Face
//! layout.

use crate::error::{Error, Result};
use crate::records::EngineRecord;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Parses `--input-ids "1,2,3;4,5"`: sequences separated by `;`, ids by `,`.
pub fn parse_input_ids(s: &str) -> Result<Vec<Vec<u32>>> {
    let mut out = Vec::new();
    for (i, seq) in s.split(';').enumerate() {
        let ids: Vec<u32> = seq
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<u32>().map_err(|_| {
                    Error::Invalid(format!("`{t}` in sequence {} is not a token id", i + 1))
                })
            })
            .collect::<Result<_>>()?;
        if ids.is_empty() {
            return Err(Error::Invalid(format!("sequence {} is empty", i + 1)));
        }
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
        msg: e.to_string(),
    })
}

/// Writes a checkpoint directory: `config.json`, `generation_config.json`, `tokenizer.json`
/// and `model.safetensors` (f32).
pub fn write_checkpoint(
    dir: &Path,
    config: &serde_json::Value,
    tensors: &HashMap<String, Tensor>,
    tokenizer: &serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cfg = serde_json::to_string_pretty(config).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(dir.join("config.json"), cfg)
        .map_err(|e| Error::io(dir.join("config.json"), e))?;
    let eos = config
        .get("eos_token_id")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let gen = serde_json::json!({"eos_token_id": eos, "do_sample": false});
    std::fs::write(dir.join("generation_config.json"), gen.to_string())
        .map_err(|e| Error::io(dir.join("generation_config.json"), e))?;
    let t = dir.join("tokenizer.json");
    std::fs::write(&t, tokenizer.to_string()).map_err(|e| Error::io(&t, e))?;
    let p = dir.join("model.safetensors");
    candle_core::safetensors::save(tensors, &p).map_err(|e| Error::Safetensors {
        file: p.display().to_string(),
        msg: e.to_string(),
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
    }
}
