//! What performance costs (`docs/metrics.md` §4, `docs/COST.md`): a deployment's capex, energy and
//! cost per hour, and per phase of a measured point its $/Mtoken and J/token; plus the published
//! MoE-CAP code's cost formula (`moecap-compat`, §5 item 7), reproduced as it is.

use super::deployment::Deployment;
use crate::error::{Error, Result};
use crate::machine::compat_prices::CompatPrices;
pub use crate::machine::energy::MeasuredPower;
use crate::machine::parts::PartKind;
use serde::{Deserialize, Serialize};

/// Hours in an average year (365.25 days).
pub const HOURS_PER_YEAR: f64 = 8766.0;

/// How the power behind the energy figures was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyBasis {
    /// Every part's TDP or typical power from the tables or the deployment file.
    TdpEstimate,
    /// The CPUs or GPUs measured (RAPL, NVML), the other parts estimated.
    Measured,
}

impl EnergyBasis {
    /// As printed.
    pub fn label(self) -> &'static str {
        match self {
            EnergyBasis::TdpEstimate => "TDP estimate",
            EnergyBasis::Measured => "measured",
        }
    }
}

/// A deployment's rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Purchase price of all parts, USD.
    pub capex_usd: f64,
    /// Purchase price spread over the hours in service, USD/h.
    pub capex_per_hour: f64,
    /// Power of all parts (IT power, before PUE), W.
    pub power_w: f64,
    /// Electricity at the facility (power × PUE × price), USD/h.
    pub energy_per_hour: f64,
    /// Sum of the parts' cloud prices, when every part has one, USD/h.
    pub cloud_per_hour: Option<f64>,
    /// The cloud price when there is one, else capex + energy, USD/h.
    pub cost_per_hour: f64,
    /// Where the power figure comes from.
    pub energy: EnergyBasis,
}

impl Deployment {
    /// The rates, with measured power (when given) replacing the TDP of the CPUs or GPUs.
    pub fn rates(&self, measured: Option<&MeasuredPower>) -> Rates {
        let capex_usd: f64 = self.parts.iter().map(|p| p.price_usd * p.count).sum();
        let capex_per_hour =
            capex_usd / (self.amortisation_years * HOURS_PER_YEAR * self.utilisation);
        let mut power_w = 0.0;
        let mut energy = EnergyBasis::TdpEstimate;
        for kind in [
            PartKind::Gpu,
            PartKind::Cpu,
            PartKind::Dram,
            PartKind::Ssd,
            PartKind::Board,
            PartKind::Nic,
            PartKind::Other,
        ] {
            let spec: f64 = self
                .parts
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.power_w * p.count)
                .sum();
            let has = self.parts.iter().any(|p| p.kind == kind);
            let reading = match kind {
                PartKind::Cpu => measured.and_then(|m| m.cpu_w),
                PartKind::Gpu => measured.and_then(|m| m.gpu_w),
                _ => None,
            };
            match reading {
                Some(w) if has => {
                    power_w += w;
                    energy = EnergyBasis::Measured;
                }
                _ => power_w += spec,
            }
        }
        let energy_per_hour = power_w / 1000.0 * self.pue * self.usd_per_kwh;
        let cloud_per_hour = self
            .parts
            .iter()
            .map(|p| p.cloud_usd_per_hour.map(|c| c * p.count))
            .sum::<Option<f64>>();
        Rates {
            capex_usd,
            capex_per_hour,
            power_w,
            energy_per_hour,
            cloud_per_hour,
            cost_per_hour: cloud_per_hour.unwrap_or(capex_per_hour + energy_per_hour),
            energy,
        }
    }
}

/// What one phase's tokens cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhaseCost {
    /// Tokens per second (the point's median throughput).
    pub tokens_per_s: f64,
    /// USD per million tokens.
    pub usd_per_mtoken: f64,
    /// Joules per token (IT power over throughput, before PUE).
    pub j_per_token: f64,
}

/// The cost of tokens produced at `tokens_per_s` under `rates`; none without throughput.
pub fn phase_cost(rates: &Rates, tokens_per_s: f64) -> Option<PhaseCost> {
    (tokens_per_s.is_finite() && tokens_per_s > 0.0).then(|| PhaseCost {
        tokens_per_s,
        usd_per_mtoken: rates.cost_per_hour / (tokens_per_s * 3600.0) * 1e6,
        j_per_token: rates.power_w / tokens_per_s,
    })
}

/// The published MoE-CAP harness's cost of `seconds` of running on `gpus` × a GPU of the given
/// price and TDP (§5 item 7): not a running cost but a purchase price times 1.25 plus energy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompatCost {
    /// GPU price × GPUs + 7,214 (its fixed CPU price), USD.
    pub capital_usd: f64,
    /// (GPU TDP × GPUs + 350 W) / 1000 × $0.15/kWh × hours, USD.
    pub energy_usd: f64,
    /// 1.2 × energy + 1.25 × capital, USD.
    pub cost_usd: f64,
}

/// The fixed CPU price of the published formula, USD.
pub const COMPAT_CPU_PRICE_USD: f64 = 7214.0;
/// The fixed host power of the published formula, W.
pub const COMPAT_HOST_POWER_W: f64 = 350.0;
/// The electricity price of the published formula, USD/kWh.
pub const COMPAT_USD_PER_KWH: f64 = 0.15;

/// The published formula on explicit inputs.
pub fn compat_cost(gpu_price_usd: f64, gpu_tdp_w: f64, gpus: f64, seconds: f64) -> CompatCost {
    let capital_usd = gpu_price_usd * gpus + COMPAT_CPU_PRICE_USD;
    let energy_usd =
        (gpu_tdp_w * gpus + COMPAT_HOST_POWER_W) / 1000.0 * COMPAT_USD_PER_KWH * seconds / 3600.0;
    CompatCost {
        capital_usd,
        energy_usd,
        cost_usd: 1.2 * energy_usd + 1.25 * capital_usd,
    }
}

/// The published formula on a deployment's accelerators (one kind of GPU, as that code assumes),
/// with that code's own price and TDP of the GPU; like that code, no cost for a GPU its table
/// does not list.
pub fn compat_cost_of(d: &Deployment, seconds: f64) -> Result<CompatCost> {
    let gpus: Vec<_> = d.gpus().collect();
    let first = gpus.first().ok_or_else(|| {
        Error::Unsupported(format!(
            "--formula moecap-compat prices GPUs only; deployment `{}` has none",
            d.name
        ))
    })?;
    if gpus.iter().any(|g| g.name != first.name) {
        return Err(Error::Unsupported(format!(
            "--formula moecap-compat assumes one kind of GPU; deployment `{}` mixes {}",
            d.name,
            gpus.iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let table = CompatPrices::builtin()?;
    let row = table.of_hardware(&first.name).ok_or_else(|| {
        Error::Unsupported(format!(
            "--formula moecap-compat: the published harness's price table has no {} (it lists {}) and its code gives no cost for it",
            first.name,
            table
                .rows
                .iter()
                .filter_map(|r| r.hardware.as_deref())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let n: f64 = gpus.iter().map(|g| g.count).sum();
    Ok(compat_cost(row.price_usd, row.tdp_w, n, seconds))
}

/// Which arithmetic a cost report uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostFormula {
    /// `docs/metrics.md` §4: amortised capex plus energy (or cloud prices), per token.
    Exact,
    /// The published harness's formula besides the exact figures (§5 item 7).
    MoecapCompat,
}

impl CostFormula {
    /// Parses `exact` or `moecap-compat`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(CostFormula::Exact),
            "moecap-compat" => Some(CostFormula::MoecapCompat),
            _ => None,
        }
    }
}

/// What a cost report needs of one measured point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointInput {
    /// The point's id (`b4-p256`, or a task).
    pub point: String,
    /// Median prefill tokens per second.
    pub prefill_tokens_per_s: Option<f64>,
    /// Median decode tokens per second.
    pub decode_tokens_per_s: Option<f64>,
    /// Seconds the point ran (timed work), for the compat formula.
    pub seconds: f64,
    /// Power measured over the point's timed window.
    pub power: Option<MeasuredPower>,
}

/// One point's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointCost {
    /// The point's id.
    pub point: String,
    /// Power behind the energy: measured or TDP estimate.
    pub energy: EnergyBasis,
    /// IT power, W.
    pub power_w: f64,
    /// Energy cost per hour at this point's power, USD/h.
    pub energy_per_hour: f64,
    /// Cost per hour at this point's power, USD/h.
    pub cost_per_hour: f64,
    /// Prefill tokens.
    pub prefill: Option<PhaseCost>,
    /// Decode tokens.
    pub decode: Option<PhaseCost>,
    /// The published formula over the point's seconds (`--formula moecap-compat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<CompatCost>,
}

/// Cost of a run on a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// The deployment, every figure resolved.
    pub deployment: Deployment,
    /// exact or moecap-compat.
    pub formula: CostFormula,
    /// The deployment's rates at its TDP figures.
    pub capex_per_hour: f64,
    /// Energy per hour at the TDP figures, USD/h.
    pub energy_per_hour: f64,
    /// Cost per hour at the TDP figures, USD/h.
    pub cost_per_hour: f64,
    /// Whether the cost per hour is the cloud price.
    pub cloud: bool,
    /// Per point.
    pub points: Vec<PointCost>,
}

/// Prices every point of a run on a deployment.
pub fn cost_report(
    d: &Deployment,
    formula: CostFormula,
    points: &[PointInput],
) -> Result<CostReport> {
    let base = d.rates(None);
    let mut out = Vec::new();
    for p in points {
        let r = d.rates(p.power.as_ref());
        let compat = match formula {
            CostFormula::Exact => None,
            CostFormula::MoecapCompat => Some(compat_cost_of(d, p.seconds)?),
        };
        out.push(PointCost {
            point: p.point.clone(),
            energy: r.energy,
            power_w: r.power_w,
            energy_per_hour: r.energy_per_hour,
            cost_per_hour: r.cost_per_hour,
            prefill: p.prefill_tokens_per_s.and_then(|t| phase_cost(&r, t)),
            decode: p.decode_tokens_per_s.and_then(|t| phase_cost(&r, t)),
            compat,
        });
    }
    Ok(CostReport {
        deployment: d.clone(),
        formula,
        capex_per_hour: base.capex_per_hour,
        energy_per_hour: base.energy_per_hour,
        cost_per_hour: base.cost_per_hour,
        cloud: base.cloud_per_hour.is_some(),
        points: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::deployment::{Deployment, DeploymentSpec};
    use crate::machine::hardware::HardwareTable;
    use crate::machine::parts::PartsTable;

    fn deployment(json: &str) -> Deployment {
        let spec: DeploymentSpec = serde_json::from_str(json).unwrap();
        Deployment::resolve(
            &spec,
            "t",
            "t",
            &HardwareTable::builtin().unwrap(),
            &PartsTable::builtin().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn rates_and_token_costs_by_hand() {
        // 2 GPUs at $20,000 and 500 W, a $10,000 host at 300 W; 4 years at 50 %, PUE 1.5, $0.10/kWh.
        let d = deployment(
            r#"{"parts":[{"part":"g","count":2,"price_usd":20000,"power_w":500},
                         {"part":"h","count":1,"price_usd":10000,"power_w":300}],
                "amortisation_years":4,"utilisation":0.5,"pue":1.5,"usd_per_kwh":0.1}"#,
        );
        let r = d.rates(None);
        assert_eq!(r.capex_usd, 50000.0);
        // 50,000 / (4 x 8766 x 0.5) = 2.851927...
        assert!((r.capex_per_hour - 50000.0 / 17532.0).abs() < 1e-12);
        assert_eq!(r.power_w, 1300.0);
        // 1.3 kW x 1.5 x $0.10 = $0.195/h
        assert!((r.energy_per_hour - 0.195).abs() < 1e-12);
        assert_eq!(r.cloud_per_hour, None);
        let c = phase_cost(&r, 1000.0).unwrap();
        // (2.851927 + 0.195) $/h over 3.6 M tokens/h = 0.846369 $/Mtoken
        assert!((c.usd_per_mtoken - (50000.0 / 17532.0 + 0.195) / 3.6).abs() < 1e-12);
        assert!((c.j_per_token - 1.3).abs() < 1e-12);
        assert!(phase_cost(&r, 0.0).is_none());
        // Measured CPU power replaces... nothing here (no CPU part): still a TDP estimate.
        let m = MeasuredPower {
            cpu_w: Some(50.0),
            gpu_w: Some(600.0),
            window_s: 10.0,
        };
        let r2 = d.rates(Some(&m));
        assert_eq!(r2.power_w, 1300.0);
        assert_eq!(r2.energy, EnergyBasis::TdpEstimate);
    }

    #[test]
    fn cloud_price_wins_only_when_every_part_has_one() {
        let d = deployment(
            r#"{"parts":[{"part":"H100-SXM","count":8,"cloud_usd_per_hour":2.5},
                         {"part":"EPYC-9654","count":1,"cloud_usd_per_hour":1}]}"#,
        );
        assert_eq!(d.rates(None).cost_per_hour, 21.0);
        let d = deployment(
            r#"{"parts":[{"part":"H100-SXM","count":8,"cloud_usd_per_hour":2.5},
                         {"part":"EPYC-9654","count":1}]}"#,
        );
        let r = d.rates(None);
        assert_eq!(r.cloud_per_hour, None);
        assert_eq!(r.cost_per_hour, r.capex_per_hour + r.energy_per_hour);
        // CPU measured at 200 W instead of its 360 W TDP.
        let m = MeasuredPower {
            cpu_w: Some(200.0),
            gpu_w: None,
            window_s: 1.0,
        };
        assert_eq!(d.rates(Some(&m)).power_w, 8.0 * 700.0 + 200.0);
    }

    #[test]
    fn compat_cost_follows_the_published_formula() {
        // 2 GPUs at $30,000 and 700 W for one hour:
        // capital = 60,000 + 7,214 = 67,214; energy = (1,400 + 350)/1000 x 0.15 x 1 = 0.2625;
        // cost = 1.2 x 0.2625 + 1.25 x 67,214 = 84,017.815.
        let c = compat_cost(30000.0, 700.0, 2.0, 3600.0);
        assert_eq!(c.capital_usd, 67214.0);
        assert!((c.energy_usd - 0.2625).abs() < 1e-12);
        assert!((c.cost_usd - 84017.815).abs() < 1e-9);
        // Ten minutes on one $8,000, 350 W GPU: energy (700/1000) x 0.15 / 6 = 0.0175.
        let c = compat_cost(8000.0, 350.0, 1.0, 600.0);
        assert!((c.energy_usd - 0.0175).abs() < 1e-12);
        assert!((c.cost_usd - (1.2 * 0.0175 + 1.25 * 15214.0)).abs() < 1e-9);
        let d = deployment(
            r#"{"parts":[{"part":"H100-SXM","count":2},{"part":"EPYC-9654","count":1}]}"#,
        );
        // The published table's H100 SXM ("H100-80GB-HBM3"): $38,000 and 700 W.
        assert_eq!(
            compat_cost_of(&d, 3600.0).unwrap(),
            compat_cost(38000.0, 700.0, 2.0, 3600.0)
        );
        let h20 = deployment(r#"{"parts":[{"part":"H20","count":1}]}"#);
        let e = compat_cost_of(&h20, 1.0).unwrap_err().to_string();
        assert!(e.contains("has no H20-96GB"), "{e}");
        let cpu = deployment(r#"{"parts":[{"part":"EPYC-9654","count":1}]}"#);
        assert!(compat_cost_of(&cpu, 1.0).is_err());
    }
}
