//! Typed access to the fields of a `config.json` object, with errors that name the file and the
//! field (and the accepted spellings where several exist).

use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// One JSON object of a config.
pub(super) struct Cfg<'a> {
    /// The file (or preset) the object comes from.
    pub file: &'a str,
    /// The object.
    pub map: &'a Map<String, Value>,
    /// The path of the object inside the file (`rope_scaling.`), prefixed to field names.
    pub prefix: &'a str,
}

impl<'a> Cfg<'a> {
    pub(super) fn err(&self, field: &str, msg: impl Into<String>) -> Error {
        Error::field(self.file, &format!("{}{}", self.prefix, field), msg)
    }

    /// The value of a field, treating JSON `null` as absent.
    pub(super) fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub(super) fn opt_usize(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => {
                let n = as_usize(v).ok_or_else(|| {
                    self.err(field, format!("expected a non-negative integer, got {v}"))
                })?;
                super::limits::check(self, field, n)?;
                Ok(Some(n))
            }
        }
    }

    /// The first of several spellings that is present.
    pub(super) fn opt_usize_any(&self, fields: &[&str]) -> Result<Option<usize>> {
        for f in fields {
            if let Some(v) = self.opt_usize(f)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    pub(super) fn usize_any(&self, fields: &[&str]) -> Result<usize> {
        self.opt_usize_any(fields)?.ok_or_else(|| {
            let alts = if fields.len() > 1 {
                format!(" (also accepted: {})", fields[1..].join(", "))
            } else {
                String::new()
            };
            self.err(fields[0], format!("missing{alts}"))
        })
    }

    pub(super) fn positive(&self, field: &str) -> Result<usize> {
        self.positive_any(&[field])
    }

    pub(super) fn positive_any(&self, fields: &[&str]) -> Result<usize> {
        let v = self.usize_any(fields)?;
        if v == 0 {
            return Err(self.err(fields[0], "must be greater than zero"));
        }
        Ok(v)
    }

    pub(super) fn opt_f64(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a number, got {v}"))),
        }
    }

    pub(super) fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Some configs write flags as 0/1.
            Some(v) if as_usize(v).is_some_and(|n| n <= 1) => Ok(as_usize(v).map(|n| n == 1)),
            Some(v) => Err(self.err(field, format!("expected true or false, got {v}"))),
        }
    }

    pub(super) fn opt_str(&self, field: &str) -> Result<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(field, format!("expected a string, got {v}"))),
        }
    }

    pub(super) fn object(&self, field: &str) -> Result<Option<&'a Map<String, Value>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.err(field, format!("expected an object, got {v}"))),
        }
    }

    pub(super) fn usize_list(&self, field: &str) -> Result<Vec<usize>> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    as_usize(v).ok_or_else(|| {
                        self.err(field, format!("expected a list of layer indices, got {v}"))
                    })
                })
                .collect(),
            Some(v) => Err(self.err(field, format!("expected a list, got {v}"))),
        }
    }
}

pub(super) fn as_usize(v: &Value) -> Option<usize> {
    if let Some(u) = v.as_u64() {
        return usize::try_from(u).ok();
    }
    // Integral floats such as `40.0` appear in real files.
    v.as_f64()
        .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
        .map(|f| f as usize)
}
