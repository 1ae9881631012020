//! What a model is, before anything runs: its `config.json` read in every family's dialect
//! ([`config`]) into a [`descriptor::ModelDesc`] (with the router's family rules as data), the
//! built-in [`presets`] and [`synthetic`] models, the one [`plan`] of checkpoint tensors (names,
//! shapes and components, from [`naming`]) that parameter counts ([`params`]), the tensor check
//! ([`tensors`]) and the loader derive from, the dtypes of the tables ([`dtype`]), a checkpoint's
//! [`tokenizer`], and the one resolver of `--model` ([`source`]).

pub mod config;
pub mod descriptor;
pub mod dtype;
pub mod naming;
pub mod params;
pub mod plan;
pub mod presets;
pub mod source;
pub mod synthetic;
pub mod tensors;
pub mod tokenizer;
