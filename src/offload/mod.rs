//! Expert offloading, the stage between records and accounting: routing traces ([`trace`]),
//! their analytics ([`analytics`]), the expert cache and its policies ([`policy`]), exact trace
//! replay of every policy × capacity ([`sim`]) and the time model of an offloaded configuration
//! ([`timing`]); `crate::accounting::offload` turns replays into the simulation report (times,
//! bytes, S-MBU). docs/OFFLOAD.md defines every count and formula.

pub mod analytics;
pub mod policy;
pub mod relations;
pub mod sim;
pub mod timing;
pub mod trace;

use crate::error::{Error, Result};
use crate::model::descriptor::ModelDesc;
use sim::Layout;
use trace::Trace;

/// The MoE layers of a trace, their expert counts and top-k: the model's when given (the trace is
/// checked against it), else inferred from the trace (largest id plus one, widest token).
/// Returns the layout, the top-k per layer, and whether the model gave them.
pub fn layout_of(trace: &Trace, desc: Option<&ModelDesc>) -> Result<(Layout, Vec<usize>, bool)> {
    if let Some(d) = desc {
        let layers: std::collections::BTreeMap<usize, (usize, usize)> = d
            .moe_layers()
            .map(|(l, m)| (l.index, (m.num_experts, m.top_k)))
            .collect();
        if layers.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: a dense model has no experts to offload",
                d.display_name()
            )));
        }
        trace.check(&layers)?;
        return Ok((
            Layout {
                layers: layers.keys().copied().collect(),
                experts: layers.values().map(|v| v.0).collect(),
            },
            layers.values().map(|v| v.1).collect(),
            true,
        ));
    }
    let experts = trace.inferred_experts();
    let mut top_k = Vec::new();
    for l in experts.keys() {
        top_k.push(
            trace
                .passes()
                .filter_map(|p| p.layers.get(l))
                .flatten()
                .map(Vec::len)
                .max()
                .unwrap_or(1),
        );
    }
    Ok((
        Layout {
            layers: experts.keys().copied().collect(),
            experts: experts.values().copied().collect(),
        },
        top_k,
        false,
    ))
}
