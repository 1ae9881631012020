//! The cross-check of the tensors a checkpoint must contain (its [`tensor_plan`]) against the
//! headers of real safetensors files, single or sharded, without loading any weight.

use crate::error::{Error, Result};
use crate::model::descriptor::ModelDesc;
use crate::model::plan::tensor_plan;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A tensor name and shape.
pub type TensorSpec = (String, Vec<usize>);

/// The tensors of the main model (multi-token-prediction layers excluded), in checkpoint order:
/// the names and shapes of the [`tensor_plan`].
pub fn expected_tensors(desc: &ModelDesc) -> Vec<TensorSpec> {
    tensor_plan(desc)
        .into_iter()
        .map(|t| (t.name, t.shape))
        .collect()
}

/// A tensor as a safetensors header describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundTensor {
    /// Element type (`BF16`, `F32`, `F8_E4M3`, ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// The file holding it.
    pub file: String,
}

/// Bytes per element of a safetensors dtype, where fixed.
fn safetensors_dtype_bytes(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "F8_E4M3" | "F8_E5M2" | "I8" | "U8" | "BOOL" | "F8_E8M0" => 1,
        _ => return None,
    })
}

/// Reads the header of one safetensors file and checks every tensor's byte range against the
/// file's size and its dtype and shape.
pub fn read_safetensors_header(path: &Path) -> Result<BTreeMap<String, FoundTensor>> {
    let file = path.display().to_string();
    let err = |msg: String| Error::Safetensors {
        file: file.clone(),
        msg,
    };
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| err("shorter than the 8-byte header length".into()))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || n + 8 > len {
        return Err(err(format!(
            "header length {n} does not fit in the file ({len} bytes): not a safetensors file, or truncated"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| err(format!("reading the header: {e}")))?;
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_safetensors_header(&header, len - 8 - n, &file, &name)
}

/// Checks the JSON header of a safetensors file whose data part holds `data_len` bytes: every
/// tensor's dtype, shape and byte range. `file` names the file in errors; `file_name` is
/// recorded with each tensor.
pub fn parse_safetensors_header(
    header: &[u8],
    data_len: u64,
    file: &str,
    file_name: &str,
) -> Result<BTreeMap<String, FoundTensor>> {
    let err = |msg: String| Error::Safetensors {
        file: file.to_string(),
        msg,
    };
    let value: Value = serde_json::from_slice(header)
        .map_err(|e| err(format!("the header is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(err("the header is not a JSON object".into()));
    };
    let mut out = BTreeMap::new();
    for (name, info) in map {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| err(format!("tensor `{name}` has no dtype")))?
            .to_string();
        let shape: Vec<usize> = info
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| err(format!("tensor `{name}` has no shape")))?
            .iter()
            .map(|s| s.as_u64().map(|x| x as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| err(format!("tensor `{name}` has a malformed shape")))?;
        let offs: Vec<u64> = info
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
            .filter(|a| a.len() == 2 && a[0] <= a[1])
            .ok_or_else(|| err(format!("tensor `{name}` has malformed data_offsets")))?;
        if offs[1] > data_len {
            return Err(err(format!(
                "tensor `{name}` ends at byte {} of the data but the file holds only {data_len}: truncated",
                offs[1]
            )));
        }
        if let Some(b) = safetensors_dtype_bytes(&dtype) {
            let want = shape
                .iter()
                .try_fold(b as u64, |acc, &d| acc.checked_mul(d as u64));
            let Some(want) = want else {
                return Err(err(format!(
                    "tensor `{name}` ({dtype} {shape:?}) is larger than any file can hold"
                )));
            };
            if offs[1] - offs[0] != want {
                return Err(err(format!(
                    "tensor `{name}` ({dtype} {shape:?}) should take {want} bytes but its data_offsets span {}",
                    offs[1] - offs[0]
                )));
            }
        }
        out.insert(
            name,
            FoundTensor {
                dtype,
                shape,
                file: file_name.to_string(),
            },
        );
    }
    Ok(out)
}

/// The safetensors files of a checkpoint directory: those of `model.safetensors.index.json` when
/// present (checking that every file it names exists), else every `*.safetensors` file.
pub fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::Json {
            file: index.display().to_string(),
            msg: e.to_string(),
        })?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::field(&index.display().to_string(), "weight_map", "missing"))?;
        let names: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        let mut files = Vec::new();
        for n in names {
            let p = dir.join(n);
            if !p.is_file() {
                return Err(Error::Safetensors {
                    file: index.display().to_string(),
                    msg: format!("weight_map names `{n}`, which does not exist"),
                });
            }
            files.push(p);
        }
        return Ok(files);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

/// The result of comparing a checkpoint's tensors with the descriptor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorCheck {
    /// Files read.
    pub files: Vec<String>,
    /// Tensors found in the headers.
    pub tensors_found: usize,
    /// Tensors the descriptor expects.
    pub tensors_expected: usize,
    /// Expected but absent.
    pub missing: Vec<String>,
    /// Present but not expected.
    pub unexpected: Vec<String>,
    /// Present with another shape: `name: expected [..], found [..] in FILE`.
    pub mismatched: Vec<String>,
    /// Present and set aside: quantisation scales, multi-token-prediction layers, rotary buffers.
    pub ignored: usize,
    /// Element types seen, with their tensor counts.
    pub dtypes: BTreeMap<String, usize>,
    /// Whether shapes were compared (not for packed-integer quantisation).
    pub shapes_checked: bool,
}

impl TensorCheck {
    /// No missing, unexpected or mismatched tensor.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

/// Whether a safetensors dtype holds floating-point values (a weight of a float or fp8
/// checkpoint).
fn is_float_dtype(dtype: &str) -> bool {
    matches!(
        dtype,
        "F64" | "F32" | "F16" | "BF16" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0"
    )
}

/// Whether a tensor is auxiliary: quantisation scales and zero points, rotary caches.
fn is_auxiliary(name: &str) -> bool {
    [
        "_scale_inv",
        ".weight_scale",
        ".input_scale",
        ".scales",
        ".qzeros",
        ".g_idx",
        "rotary_emb.inv_freq",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

/// The layer index of a `model.layers.N.` / `transformer.blocks.N.` name.
fn layer_of(name: &str) -> Option<usize> {
    let rest = name
        .strip_prefix("model.layers.")
        .or_else(|| name.strip_prefix("transformer.blocks."))?;
    rest.split('.').next()?.parse().ok()
}

/// Compares the tensors of the safetensors files of `dir` with the descriptor.
pub fn check_checkpoint(desc: &ModelDesc, dir: &Path) -> Result<Option<TensorCheck>> {
    let files = checkpoint_files(dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut found: BTreeMap<String, FoundTensor> = BTreeMap::new();
    for f in &files {
        for (name, t) in read_safetensors_header(f)? {
            if let Some(prev) = found.get(&name) {
                return Err(Error::Safetensors {
                    file: f.display().to_string(),
                    msg: format!("tensor `{name}` is also in {}", prev.file),
                });
            }
            found.insert(name, t);
        }
    }
    Ok(Some(compare(desc, &files, &found)))
}

fn compare(
    desc: &ModelDesc,
    files: &[PathBuf],
    found: &BTreeMap<String, FoundTensor>,
) -> TensorCheck {
    let packed = desc
        .quantization
        .as_ref()
        .is_some_and(|q| q.method != "fp8");
    let expected = expected_tensors(desc);
    let mut dtypes = BTreeMap::new();
    let mut ignored = 0;
    let mut present: BTreeMap<String, &FoundTensor> = BTreeMap::new();
    for (name, t) in found {
        *dtypes.entry(t.dtype.clone()).or_insert(0) += 1;
        let mtp = desc.mtp_layers > 0 && layer_of(name).is_some_and(|l| l >= desc.num_layers());
        if mtp || is_auxiliary(name) {
            ignored += 1;
            continue;
        }
        // Packed-integer checkpoints store `X.qweight` for `X.weight`.
        let key = match name.strip_suffix(".qweight") {
            Some(stem) if packed => format!("{stem}.weight"),
            _ => name.clone(),
        };
        present.insert(key, t);
    }
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let mut expected_names = BTreeSet::new();
    for (name, shape) in &expected {
        expected_names.insert(name.as_str());
        match present.get(name) {
            None => missing.push(format!("{name} {shape:?}")),
            Some(t) if !packed && &t.shape != shape => mismatched.push(format!(
                "{name}: expected {shape:?}, found {:?} in {}",
                t.shape, t.file
            )),
            Some(t) if !packed && !is_float_dtype(&t.dtype) => mismatched.push(format!(
                "{name}: expected floating-point values, found {} in {}",
                t.dtype, t.file
            )),
            Some(_) => {}
        }
    }
    let unexpected = present
        .iter()
        .filter(|(n, _)| !expected_names.contains(n.as_str()))
        .map(|(n, t)| format!("{n} {:?} in {}", t.shape, t.file))
        .collect();
    TensorCheck {
        files: files
            .iter()
            .map(|f| {
                f.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect(),
        tensors_found: found.len(),
        tensors_expected: expected.len(),
        missing,
        unexpected,
        mismatched,
        ignored,
        dtypes,
        shapes_checked: !packed,
    }
}
