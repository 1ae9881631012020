//! The one resolver of a model argument (`--model`): a checkpoint directory, a `config.json`
//! path, a preset name, a hub id found in the local Hugging Face cache (fetched only by a build
//! with the `download` feature), or `synthetic:NAME`. [`ModelSource::parse`] decides which, once;
//! [`Checkpoint::resolve`] reads its descriptor and says where its weights and tokenizer are.
//! Errors name the argument; the command line adds the flag.

use super::config::load_config;
use super::descriptor::ModelDesc;
use super::presets::{find_preset, preset_desc, Preset, PRESETS};
use super::synthetic::{synthetic_desc, SyntheticModel, SYNTHETIC};
use super::tokenizer::TextCodec;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// What a model argument names.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A checkpoint directory (its `config.json`, safetensors files, tokenizer).
    Dir(PathBuf),
    /// A `config.json` file (a descriptor without weights).
    ConfigFile(PathBuf),
    /// A built-in preset (a descriptor of a real checkpoint, without weights).
    Preset(&'static Preset),
    /// A Hugging Face hub id, resolved to its snapshot folder in the local cache.
    Hub {
        /// `org/name`.
        id: String,
        /// The snapshot folder.
        dir: PathBuf,
    },
    /// A built-in synthetic model (seeded random weights made in memory).
    Synthetic(&'static SyntheticModel),
}

/// Where a checkpoint's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    /// The safetensors files of a directory.
    Files(PathBuf),
    /// Seeded random weights made in memory.
    Synthetic,
}

impl ModelSource {
    /// Classifies a model argument: `synthetic:NAME`, an existing directory or file, a preset
    /// name, else a hub id (`org/name`) looked up in the local hub cache.
    pub fn parse(arg: &str) -> Result<Self> {
        if let Some(name) = arg.strip_prefix("synthetic:") {
            return SYNTHETIC
                .iter()
                .find(|m| m.name == name)
                .map(ModelSource::Synthetic)
                .ok_or_else(|| {
                    model_error(
                        arg,
                        format!(
                            "no such synthetic model; synthetic models: {}",
                            synthetic_names()
                        ),
                    )
                });
        }
        let path = Path::new(arg);
        if path.is_dir() {
            if !path.join("config.json").is_file() {
                return Err(model_error(
                    arg,
                    format!("{} has no config.json", path.display()),
                ));
            }
            return Ok(ModelSource::Dir(path.to_path_buf()));
        }
        if path.is_file() {
            return Ok(ModelSource::ConfigFile(path.to_path_buf()));
        }
        if let Some(p) = find_preset(arg) {
            return Ok(ModelSource::Preset(p));
        }
        // a hub id is `org/name`; anything else with a slash is a path that does not exist
        let hub_id =
            arg.split('/').count() == 2 && !arg.starts_with(['.', '/', '~']) && !arg.ends_with('/');
        if arg.contains('/') && !hub_id {
            return Err(model_error(
                arg,
                format!("no such directory or file ({})", path.display()),
            ));
        }
        if arg.contains('/') {
            let cache = hf_hub_cache();
            return match cache.as_deref().and_then(|c| find_in_hub_cache(c, arg)) {
                Some(dir) => Ok(ModelSource::Hub {
                    id: arg.to_string(),
                    dir,
                }),
                #[cfg(feature = "download")]
                None => Ok(ModelSource::Hub {
                    id: arg.to_string(),
                    dir: download(arg)?,
                }),
                #[cfg(not(feature = "download"))]
                None => Err(model_error(
                    arg,
                    format!(
                        "not a directory and not in the local Hugging Face cache ({}); fetch it on a machine with network access (`huggingface-cli download {arg}`, or a moecap built with `--features download`) or pass a checkpoint directory",
                        cache.map_or("no cache folder".into(), |c| c.display().to_string())
                    ),
                )),
            };
        }
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        Err(model_error(
            arg,
            format!(
                "is neither a model directory, a config file, a preset, a cached hub model (org/name) nor synthetic:NAME; presets: {}; synthetic models: {}",
                names.join(", "),
                synthetic_names()
            ),
        ))
    }
}

fn synthetic_names() -> String {
    SYNTHETIC
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn model_error(arg: &str, msg: String) -> Error {
    Error::Model {
        arg: arg.to_string(),
        msg,
    }
}

/// A resolved model: what it is and where its parts are.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The argument as given.
    pub arg: String,
    /// What it named.
    pub source: ModelSource,
    /// The model.
    pub desc: ModelDesc,
}

impl Checkpoint {
    /// Resolves a model argument and reads its descriptor.
    pub fn resolve(arg: &str) -> Result<Self> {
        let source = ModelSource::parse(arg)?;
        let desc = match &source {
            ModelSource::Dir(d) | ModelSource::Hub { dir: d, .. } => {
                load_config(&d.join("config.json"))?
            }
            ModelSource::ConfigFile(f) => load_config(f)?,
            ModelSource::Preset(p) => preset_desc(p)?,
            ModelSource::Synthetic(m) => synthetic_desc(m.name)?,
        };
        Ok(Checkpoint {
            arg: arg.to_string(),
            source,
            desc,
        })
    }

    /// The folder of the checkpoint's files (safetensors, tokenizer), when it has one: the
    /// directory, or the folder of a config file.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            ModelSource::Dir(d) | ModelSource::Hub { dir: d, .. } => Some(d),
            ModelSource::ConfigFile(f) => f.parent(),
            ModelSource::Preset(_) | ModelSource::Synthetic(_) => None,
        }
    }

    /// Where the weights are; an error for presets and config files, which carry none.
    pub fn weights(&self) -> Result<Weights> {
        match &self.source {
            ModelSource::Dir(d) | ModelSource::Hub { dir: d, .. } => Ok(Weights::Files(d.clone())),
            ModelSource::Synthetic(_) => Ok(Weights::Synthetic),
            ModelSource::Preset(_) => Err(model_error(
                &self.arg,
                "presets describe real checkpoints but carry no weights; pass the checkpoint directory, or use synthetic:NAME (moecap synth --list)".into(),
            )),
            ModelSource::ConfigFile(f) => Err(model_error(
                &self.arg,
                format!(
                    "a config file carries no weights; pass the checkpoint directory{}",
                    f.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .map_or(String::new(), |p| format!(" ({})", p.display()))
                ),
            )),
        }
    }

    /// Whether the weights are random: a synthetic model, or a checkpoint `moecap synth` wrote
    /// (its config carries `moecap_synthetic`).
    pub fn synthetic(&self) -> bool {
        match &self.source {
            ModelSource::Synthetic(_) => true,
            ModelSource::Preset(_) => false,
            _ => self
                .dir()
                .and_then(|d| std::fs::read_to_string(d.join("config.json")).ok())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v.get("moecap_synthetic").is_some()),
        }
    }

    /// The checkpoint's `tokenizer.json`, if it has one.
    pub fn tokenizer(&self) -> Result<Option<TextCodec>> {
        match self.dir() {
            Some(d) => TextCodec::from_dir(d),
            None => Ok(None),
        }
    }
}

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

/// Fetches a hub model into the Hugging Face cache: `config.json`, the safetensors files (one, or
/// every shard of the index), and `tokenizer.json` / `generation_config.json` where present.
#[cfg(feature = "download")]
fn download(id: &str) -> Result<PathBuf> {
    let fail = |e: &dyn std::fmt::Display| model_error(id, format!("download failed: {e}"));
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
