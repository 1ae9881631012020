//! Where weights come from: memory-mapped safetensors files of a checkpoint directory (single or
//! sharded), or tensors made in memory (synthetic models). Every lookup checks the shape and
//! names the tensor and the file when something is wrong; weights are converted to the run's
//! dtype once, at load.

use crate::error::{Error, Result};
use crate::model::tensors::{checkpoint_files, read_safetensors_header};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

enum Source {
    Mmap {
        files: MmapedSafetensors,
        /// tensor name → file name
        location: HashMap<String, String>,
    },
    Memory(HashMap<String, Tensor>),
}

/// A set of named weights.
pub struct WeightStore {
    source: Source,
    origin: String,
}

impl WeightStore {
    /// Opens the safetensors files of a checkpoint directory. Headers are validated first (a
    /// truncated file is an error naming it); the data is memory-mapped, not read.
    pub fn open(dir: &Path) -> Result<Self> {
        let paths = checkpoint_files(dir)?;
        if paths.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no safetensors files (expected model.safetensors or model.safetensors.index.json)",
                dir.display()
            )));
        }
        let mut location = HashMap::new();
        for p in &paths {
            let file = p
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for name in read_safetensors_header(p)?.into_keys() {
                location.insert(name, file.clone());
            }
        }
        // SAFETY: the files are mapped read-only; moecap does not modify checkpoint files while
        // they are mapped.
        let files =
            unsafe { MmapedSafetensors::multi(&paths) }.map_err(|e| Error::Safetensors {
                file: dir.display().to_string(),
                msg: crate::error::candle_message(&e),
            })?;
        Ok(WeightStore {
            source: Source::Mmap { files, location },
            origin: dir.display().to_string(),
        })
    }

    /// Weights held in memory (synthetic models); `origin` names them in errors.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, origin: &str) -> Self {
        WeightStore {
            source: Source::Memory(tensors),
            origin: origin.to_string(),
        }
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Mmap { location, .. } => location.contains_key(name),
            Source::Memory(m) => m.contains_key(name),
        }
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingTensor {
            origin: self.origin.clone(),
            name: name.to_string(),
        }
    }

    /// Loads a tensor, checks its shape, converts it to `dtype` on `device`.
    pub fn get(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let (t, file) = match &self.source {
            Source::Mmap { files, location } => {
                let file = location.get(name).ok_or_else(|| self.missing(name))?;
                let t = files
                    .load(name, &Device::Cpu)
                    .map_err(|e| Error::Safetensors {
                        file: file.clone(),
                        msg: format!("tensor `{name}`: {}", crate::error::candle_message(&e)),
                    })?;
                (t, file.clone())
            }
            Source::Memory(m) => {
                let t = m.get(name).ok_or_else(|| self.missing(name))?;
                (t.clone(), self.origin.clone())
            }
        };
        if t.dims() != shape {
            return Err(Error::Safetensors {
                file,
                msg: format!(
                    "tensor `{name}` has shape {:?}, the config implies {shape:?}",
                    t.dims()
                ),
            });
        }
        if !t.dtype().is_float() {
            return Err(Error::Safetensors {
                file,
                msg: format!(
                    "tensor `{name}` holds {:?} values; weights are floating point (a quantised checkpoint moecap does not load?)",
                    t.dtype()
                ),
            });
        }
        let t = t.to_dtype(dtype)?.to_device(device)?;
        Ok(t)
    }
}
