//! The cost side of offloading (`docs/COST.md`): each simulated policy × capacity priced on the
//! smallest GPU of the table whose memory holds its resident weights plus the cache, with host DRAM
//! for the slow tier; and, for hardware one does not own, the cheapest device × count meeting a
//! TPOT target with every expert resident or with offloading at an assumed hit rate.

use super::cost::Accountant;
use super::deployment::{Deployment, Part, DEFAULT_SERVER_CPU};
use super::money::phase_cost;
use super::offload::SimulateReport;
use crate::error::{Error, Result};
use crate::machine::hardware::{DeviceKind, Hardware, HardwareTable};
use crate::machine::parts::{PartKind, PartsTable};
use crate::records::SeqSlice;
use serde::Serialize;

/// One configuration priced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PricedConfig {
    /// Policy (`resident` for the all-resident reference).
    pub policy: String,
    /// Experts per pool (every expert for `resident`).
    pub capacity: Option<usize>,
    /// Device memory the configuration needs, bytes.
    pub device_memory_bytes: f64,
    /// The smallest GPU holding it (none: no row of the table is large enough).
    pub gpu: Option<String>,
    /// Host DRAM of the deployment, GB.
    pub dram_gb: f64,
    /// Cost per hour of the deployment, USD/h.
    pub cost_per_hour: Option<f64>,
    /// Predicted decode tokens/s.
    pub decode_tokens_per_s: Option<f64>,
    /// USD per million decode tokens.
    pub decode_usd_per_mtoken: Option<f64>,
    /// On the cost–performance frontier: no other configuration is as cheap per hour and at least
    /// as fast, and strictly better in one.
    pub frontier: bool,
}

/// Marks the configurations no other one dominates in cost per hour (lower) and decode tokens/s
/// (higher); those without both figures are never on the frontier.
pub fn mark_frontier(c: &mut [PricedConfig]) {
    let pts: Vec<Option<(f64, f64)>> = c
        .iter()
        .map(|x| x.cost_per_hour.zip(x.decode_tokens_per_s))
        .collect();
    for (i, x) in c.iter_mut().enumerate() {
        x.frontier = match pts[i] {
            None => false,
            Some((ci, ti)) => !pts.iter().enumerate().any(|(j, p)| {
                j != i && p.is_some_and(|(cj, tj)| cj <= ci && tj >= ti && (cj < ci || tj > ti))
            }),
        };
    }
}

/// The host of priced deployments: a deployment's parts other than accelerators and DRAM.
pub fn host_template(d: &Deployment) -> Deployment {
    let mut t = d.clone();
    t.parts
        .retain(|p| !matches!(p.kind, PartKind::Gpu | PartKind::Dram));
    t
}

/// The default host of priced GPU deployments: the default deployment's server CPU, board and
/// SSD (its DRAM is sized per configuration).
pub fn default_host(table: &HardwareTable, parts: &PartsTable) -> Result<Deployment> {
    let cpu = table.find(DEFAULT_SERVER_CPU)?;
    Ok(host_template(&Deployment::default_for(
        cpu, 1, 0.0, table, parts,
    )?))
}

/// `template` plus `count` × `gpu` and `dram_gb` of the parts table's default DRAM.
pub fn with_devices(
    template: &Deployment,
    gpu: &Hardware,
    count: f64,
    dram_gb: f64,
    parts: &PartsTable,
) -> Result<Deployment> {
    let dram = parts.default_of(PartKind::Dram).ok_or_else(|| {
        Error::Invalid(format!(
            "the parts table ({}) has no default DRAM",
            parts.origin
        ))
    })?;
    let mut d = template.clone();
    let missing = |f: &str| {
        Error::Invalid(format!(
            "hardware row {} has no {f}: add it with --hardware-file",
            gpu.name
        ))
    };
    d.parts.insert(
        0,
        Part {
            name: gpu.name.clone(),
            kind: PartKind::Gpu,
            count,
            price_usd: gpu.price_usd.ok_or_else(|| missing("price_usd"))?,
            power_w: gpu.tdp_w.ok_or_else(|| missing("tdp_w"))?,
            cloud_usd_per_hour: None,
            memory_gb: gpu.memory_gb,
            source: format!("table row {}", gpu.name),
        },
    );
    d.parts.push(Part {
        name: dram.name.clone(),
        kind: PartKind::Dram,
        count: dram_gb,
        price_usd: dram.price_usd,
        power_w: dram.power_w,
        cloud_usd_per_hour: None,
        memory_gb: None,
        source: format!("table row {}", dram.name),
    });
    d.name = format!("{}x {} + host", count, gpu.name);
    Ok(d)
}

/// The GPU rows by memory, smallest first (ties: cheapest first).
fn gpus_by_memory(table: &HardwareTable) -> Vec<&Hardware> {
    let mut g: Vec<&Hardware> = table
        .rows
        .iter()
        .filter(|h| h.kind == DeviceKind::Gpu && h.memory_gb.is_some() && h.price_usd.is_some())
        .collect();
    g.sort_by(|a, b| {
        let key = |h: &Hardware| (h.memory_gb.unwrap_or(0.0), h.price_usd.unwrap_or(0.0));
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    g
}

fn round_up(gb: f64, step: f64) -> f64 {
    (gb / step).ceil().max(1.0) * step
}

/// Prices every configuration of a simulation: the smallest GPU holding it, host DRAM for the
/// whole expert set (the slow tier keeps every routed expert) rounded up to 64 GB, the host of
/// `template`, and the decode tokens/s the simulation predicts (`decode_tokens` over its decode
/// time).
pub fn price_simulation(
    r: &SimulateReport,
    template: &Deployment,
    table: &HardwareTable,
    parts: &PartsTable,
    all_expert_bytes: f64,
    decode_tokens: f64,
    decode_passes: f64,
) -> Result<Vec<PricedConfig>> {
    let gpus = gpus_by_memory(table);
    let tier_gb = round_up(all_expert_bytes / 1e9, 64.0);
    let price = |policy: String,
                 capacity: Option<usize>,
                 mem: f64,
                 tpot: Option<f64>,
                 dram_gb: f64|
     -> Result<PricedConfig> {
        let gpu = gpus
            .iter()
            .find(|g| g.memory_gb.unwrap_or(0.0) * 1e9 >= mem)
            .copied();
        let d = gpu
            .map(|g| with_devices(template, g, 1.0, dram_gb, parts))
            .transpose()?;
        let rates = d.as_ref().map(|d| d.rates(None));
        let tps = tpot
            .filter(|t| *t > 0.0 && decode_passes > 0.0)
            .map(|t| decode_tokens / decode_passes / t);
        Ok(PricedConfig {
            policy,
            capacity,
            device_memory_bytes: mem,
            gpu: gpu.map(|g| g.name.clone()),
            dram_gb,
            cost_per_hour: rates.map(|r| r.cost_per_hour),
            decode_tokens_per_s: tps,
            decode_usd_per_mtoken: rates
                .zip(tps)
                .and_then(|(r, t)| phase_cost(&r, t))
                .map(|c| c.usd_per_mtoken),
            frontier: false,
        })
    };
    let mut out = Vec::new();
    if let Some(mem) = r.resident.device_memory_bytes {
        out.push(price(
            "resident".into(),
            None,
            mem,
            r.resident.tpot_s,
            64.0,
        )?);
    }
    for p in &r.results {
        if let Some(mem) = p.device_memory_bytes {
            out.push(price(
                p.policy.clone(),
                Some(p.capacity),
                mem,
                p.decode.tpot_s,
                tier_gb,
            )?);
        }
    }
    mark_frontier(&mut out);
    Ok(out)
}

/// One device × count for a TPOT target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceChoice {
    /// Hardware row.
    pub hardware: String,
    /// Devices.
    pub devices: u32,
    /// `resident` or `offload`.
    pub mode: &'static str,
    /// Routed experts resident on the devices (all of them for `resident`).
    pub resident_experts: f64,
    /// Predicted TPOT, seconds: the roofline plus the misses' transfers over the host link.
    pub tpot_s: f64,
    /// Cost per hour of the default deployment (devices + host).
    pub cost_per_hour: f64,
    /// USD per million decode tokens.
    pub usd_per_mtoken: f64,
}

/// What the cheapest-device search assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffloadQuestion {
    /// Sequences per decode step.
    pub batch: u64,
    /// Context per sequence.
    pub context: u64,
    /// TPOT target, seconds.
    pub tpot_slo_s: f64,
    /// Hit rate of the expert cache when not every expert is resident.
    pub hit_rate: f64,
    /// Devices per configuration at most.
    pub max_devices: u32,
}

/// For every GPU row and count up to `max_devices`: all-resident when the weights and KV fit,
/// else offloading (experts beyond the memory left streamed over the host link at the assumed
/// miss rate). Per row, the fewest devices meeting the target in each mode (rows that cannot
/// meet it are left out); sorted by $/Mtoken.
pub fn cheapest_devices(
    acct: &Accountant,
    dtype: crate::model::dtype::DType,
    q: OffloadQuestion,
    table: &HardwareTable,
    parts: &PartsTable,
) -> Result<Vec<DeviceChoice>> {
    let seqs = vec![
        SeqSlice {
            cached: q.context,
            new: 1
        };
        q.batch as usize
    ];
    let expected = acct.expected_activated(q.batch);
    let cost = acct.pass_cost(&seqs, &expected, q.batch);
    let bytes = cost.weight_bytes + cost.kv_bytes;
    let expert_bytes = acct.expert_params() as f64 * dtype.bytes();
    let non_expert = acct.non_expert_bytes();
    let all_experts = acct.weight_footprint_bytes() - non_expert;
    let kv = (q.batch * q.context) as f64 * acct.kv_bytes_per_token();
    let activated_per_step: f64 = expected.iter().sum();
    let host_gb = round_up(acct.weight_footprint_bytes() / 1e9, 64.0);
    let host = default_host(table, parts)?;
    let mut out = Vec::new();
    for g in gpus_by_memory(table) {
        let (Some(mem_gb), Ok(flops)) = (g.memory_gb, g.peak_flops(dtype)) else {
            continue;
        };
        let link = g.host_link_gbs().map(|l| l * 1e9);
        let mut found_offload = false;
        for n in 1..=q.max_devices {
            let mem = mem_gb * 1e9 * n as f64;
            let base = (bytes / (g.bandwidth_bytes_per_s() * n as f64))
                .max(cost.flops / (flops * n as f64));
            let room = mem - non_expert - kv;
            if room <= 0.0 {
                continue;
            }
            let resident = room >= all_experts;
            let (mode, tpot, resident_experts) = if resident {
                ("resident", base, all_experts / expert_bytes.max(1.0))
            } else {
                let Some(link) = link else { continue };
                let misses = activated_per_step * (1.0 - q.hit_rate);
                (
                    "offload",
                    base + misses * expert_bytes / link,
                    (room / expert_bytes.max(1.0)).floor(),
                )
            };
            if (!resident && found_offload) || tpot > q.tpot_slo_s {
                continue;
            }
            let d = with_devices(&host, g, n as f64, host_gb, parts)?;
            let rates = d.rates(None);
            let tps = q.batch as f64 / tpot;
            out.push(DeviceChoice {
                hardware: g.name.clone(),
                devices: n,
                mode,
                resident_experts,
                tpot_s: tpot,
                cost_per_hour: rates.cost_per_hour,
                usd_per_mtoken: phase_cost(&rates, tps).map_or(f64::INFINITY, |c| c.usd_per_mtoken),
            });
            if resident {
                break;
            }
            found_offload = true;
        }
    }
    out.sort_by(|a, b| {
        a.usd_per_mtoken
            .partial_cmp(&b.usd_per_mtoken)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cost: Option<f64>, tps: Option<f64>) -> PricedConfig {
        PricedConfig {
            policy: "p".into(),
            capacity: None,
            device_memory_bytes: 0.0,
            gpu: None,
            dram_gb: 0.0,
            cost_per_hour: cost,
            decode_tokens_per_s: tps,
            decode_usd_per_mtoken: None,
            frontier: false,
        }
    }

    #[test]
    fn the_frontier_keeps_only_undominated_configurations() {
        let mut c = vec![
            cfg(Some(1.0), Some(10.0)), // cheapest: frontier
            cfg(Some(2.0), Some(30.0)), // faster for more: frontier
            cfg(Some(2.0), Some(20.0)), // as dear as [1], slower: dominated
            cfg(Some(3.0), Some(30.0)), // dearer than [1], no faster: dominated
            cfg(Some(4.0), Some(40.0)), // fastest: frontier
            cfg(None, Some(50.0)),      // no price: never
        ];
        mark_frontier(&mut c);
        let f: Vec<bool> = c.iter().map(|x| x.frontier).collect();
        assert_eq!(f, [true, true, false, false, true, false]);
    }
}
