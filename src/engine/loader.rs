//! Resolving the engine's `--model`: a checkpoint directory, a hub id found in the local Hugging
//! Face cache (never downloaded here), or `synthetic:NAME`.

use super::model::Model;
use super::synthetic::synthetic_weights;
use crate::model::synthetic::synthetic_desc;
use super::weights::WeightStore;
use crate::model::config::load_config;
use crate::error::{Error, Result};
use crate::model::presets::find_preset;
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};

/// The Hugging Face hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn hf_hub_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// The snapshot folder of `org/name` in a hub cache: `models--org--name/snapshots/<refs/main>`,
/// or the only snapshot when there is no `refs/main`.
pub fn find_in_hub_cache(cache: &Path, id: &str) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        let p = snapshots.join(rev.trim());
        if p.join("config.json").is_file() {
            return Some(p);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").is_file())
        .collect();
    if found.len() == 1 {
        found.pop()
    } else {
        None
    }
}

/// The checkpoint directory a `--model` argument names (`None` for synthetic models).
pub fn checkpoint_dir(arg: &str) -> Result<Option<PathBuf>> {
    if arg.starts_with("synthetic:") {
        return Ok(None);
    }
    let path = Path::new(arg);
    if path.is_dir() {
        return Ok(Some(path.to_path_buf()));
    }
    if arg.contains('/') && !path.exists() {
        let cache = hf_hub_cache();
        return match cache.as_deref().and_then(|c| find_in_hub_cache(c, arg)) {
            Some(p) => Ok(Some(p)),
            #[cfg(feature = "download")]
            None => download(arg).map(Some),
            #[cfg(not(feature = "download"))]
            None => Err(Error::Invalid(format!(
                "--model {arg}: not a directory and not in the local Hugging Face cache ({}); fetch it on a machine with network access (`huggingface-cli download {arg}`, or a moecap built with `--features download`) or pass a checkpoint directory",
                cache.map_or("no cache folder".into(), |c| c.display().to_string())
            ))),
        };
    }
    if find_preset(arg).is_some() {
        return Err(Error::Invalid(format!(
            "--model {arg}: presets describe real checkpoints but carry no weights; pass the checkpoint directory, or use synthetic:NAME (moecap synth --list)"
        )));
    }
    Err(Error::Invalid(format!(
        "--model {arg}: no such directory, cached hub model or synthetic:NAME"
    )))
}

/// Fetches a hub model into the Hugging Face cache: `config.json`, the safetensors files (one, or
/// every shard of the index), and `tokenizer.json` / `generation_config.json` where present.
#[cfg(feature = "download")]
fn download(id: &str) -> Result<PathBuf> {
    let fail =
        |e: &dyn std::fmt::Display| Error::Invalid(format!("--model {id}: download failed: {e}"));
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(true)
        .build()
        .map_err(|e| fail(&e))?;
    let repo = api.model(id.to_string());
    let cfg = repo.get("config.json").map_err(|e| fail(&e))?;
    match repo.get("model.safetensors.index.json") {
        Ok(index) => {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(&e))?;
            let files: std::collections::BTreeSet<&str> = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| fail(&"the index has no weight_map"))?
                .values()
                .filter_map(|f| f.as_str())
                .collect();
            for f in files {
                repo.get(f).map_err(|e| fail(&e))?;
            }
        }
        Err(_) => {
            repo.get("model.safetensors").map_err(|e| fail(&e))?;
        }
    }
    for optional in ["tokenizer.json", "generation_config.json"] {
        let _ = repo.get(optional);
    }
    cfg.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| fail(&"no snapshot folder"))
}

/// Loads a model for the engine.
pub fn load_model(arg: &str, device: &Device, dtype: DType, seed: u64) -> Result<Model> {
    let Some(dir) = checkpoint_dir(arg)? else {
        let name = arg.trim_start_matches("synthetic:");
        let desc = synthetic_desc(name)?;
        let w = synthetic_weights(&desc, seed)?;
        return Model::load(desc, &w, dtype, device);
    };
    let cfg = dir.join("config.json");
    if !cfg.is_file() {
        return Err(Error::Invalid(format!(
            "--model: {} has no config.json",
            dir.display()
        )));
    }
    let desc = load_config(&cfg)?;
    let w = WeightStore::open(&dir)?;
    Model::load(desc, &w, dtype, device)
}
