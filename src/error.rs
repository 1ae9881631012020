//! The library's error type: every failure a user can cause, as a one-line message that names the
//! file, field, flag or line at fault.

use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model configuration is unreadable, incomplete or self-contradictory.
    #[error("{file}: field `{field}`: {msg}")]
    ConfigField {
        /// The config file (or preset name).
        file: String,
        /// The offending field.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The config names an architecture moecap does not model.
    #[error(
        "{file}: field `architectures`: unsupported architecture `{arch}`; supported: {supported}"
    )]
    UnknownArchitecture {
        /// The config file.
        file: String,
        /// The architecture named there.
        arch: String,
        /// Comma-separated list of supported architectures.
        supported: String,
    },
    /// A model argument names no model, or one that cannot serve (a preset has no weights).
    #[error("{arg}: {msg}")]
    Model {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        msg: String,
    },
    /// A tensor the model needs is not in its checkpoint.
    #[error("{origin}: tensor `{name}` is missing from the checkpoint")]
    MissingTensor {
        /// The checkpoint (directory or synthetic model).
        origin: String,
        /// The tensor.
        name: String,
    },
    /// A file could not be read or written. (The operating system's error is part of the
    /// message, not a chained source, so that a printed chain says it once.)
    #[error("{}: {error}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file is not valid JSON (or not the JSON expected).
    #[error("{file}: invalid JSON: {msg}")]
    Json {
        /// The file.
        file: String,
        /// The parser's message.
        msg: String,
    },
    /// A line of a per-pass records file is wrong.
    #[error("{file}:{line}: {msg}")]
    Record {
        /// The records file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A safetensors file is malformed or truncated.
    #[error("{file}: {msg}")]
    Safetensors {
        /// The file.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// A hardware table row is malformed.
    #[error("{file}:{line}: {msg}")]
    HardwareTable {
        /// The table file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A deployment file is malformed or names what no table has.
    #[error("{file}: {msg}")]
    Deployment {
        /// The deployment file (or how a default deployment was built).
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// A hardware name is not in the table.
    #[error("unknown hardware `{name}` (see `moecap hw list`); closest: {suggestions}")]
    UnknownHardware {
        /// The name asked for.
        name: String,
        /// Names that resemble it.
        suggestions: String,
    },
    /// A requested quantity is not defined for the inputs given (for example a dtype the
    /// hardware has no peak for).
    #[error("{0}")]
    Unsupported(String),
    /// A value given on the command line or in an input is out of range.
    #[error("{0}")]
    Invalid(String),
    /// An error within a larger step (a sweep point, a task), which it names. (The inner
    /// error is part of the message, not a chained source, so that a printed chain says it
    /// once.)
    #[error("{context}: {inner}")]
    Within {
        /// The step.
        context: String,
        /// What went wrong in it.
        inner: Box<Error>,
    },
    /// A forward pass produced NaN or infinite logits.
    #[error(
        "pass {pass}: the logits are not finite (NaN or infinity), first in {first}; look for \
         a broken weight or a config value out of range such as rms_norm_eps, or pass \
         --allow-nonfinite to go on"
    )]
    NonFinite {
        /// The pass (1-based, counted per engine).
        pass: u64,
        /// Where the first non-finite value appears (`the output of layer 3`).
        first: String,
    },
    /// A tensor operation failed.
    #[error("tensor computation: {}", candle_message(.0))]
    Candle(#[from] candle_core::Error),
}

/// A candle error's message without the backtrace candle attaches when `RUST_BACKTRACE` is set
/// (an error is one line; a backtrace is for a panic).
pub fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        e => e.to_string(),
    }
}

/// Result alias of the library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for a [`Error::ConfigField`].
    pub fn field(file: &str, field: &str, msg: impl Into<String>) -> Self {
        Error::ConfigField {
            file: file.to_string(),
            field: field.to_string(),
            msg: msg.into(),
        }
    }

    /// This error within the step `context`.
    pub fn within(self, context: impl Into<String>) -> Self {
        Error::Within {
            context: context.into(),
            inner: Box::new(self),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
