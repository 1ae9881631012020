//! The routed-expert executor: each expert runs once on the rows of the tokens routed to it, and
//! the outputs are summed per token with the routing weights. One strategy per backend, chosen
//! once at load: on the host in f32 the experts run together over the thread pool and their
//! outputs are combined per token in one pass (`moecap_kernels::combine_experts`); elsewhere
//! each is weighted and scatter-added on the device, expert after expert.

use super::layers::Mlp;
use crate::backend::host_f32;
use crate::error::Result;
use crate::records::LayerRouting;
use candle_core::{DType, Device, Tensor};
use moecap_kernels::combine_experts;
use rayon::prelude::*;

/// How the routed experts of a MoE block run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertExecutor {
    /// Host f32: experts run together over the thread pool, outputs combined per token at the
    /// end.
    HostCombine,
    /// Any device: weighted outputs scatter-added expert by expert.
    DeviceScatter,
}

impl ExpertExecutor {
    /// The strategy of a backend.
    pub fn for_backend(dev: &Device, dtype: DType) -> Self {
        if host_f32(dev, dtype) {
            ExpertExecutor::HostCombine
        } else {
            ExpertExecutor::DeviceScatter
        }
    }

    /// The routed experts' output `[T, d]` for `x` `[T, d]` routed as `routing` says (token `t`
    /// to `routing.ids[t]` with weights `routing.weights[t]`).
    pub fn run(&self, experts: &[Mlp], x: &Tensor, routing: &LayerRouting) -> Result<Tensor> {
        let t = x.dim(0)?;
        let e = experts.len();
        // per expert: its tokens and their weights, in token order
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); e];
        let mut weights: Vec<Vec<f32>> = vec![Vec::new(); e];
        for (tok, (ids, w)) in routing.ids.iter().zip(&routing.weights).enumerate() {
            for (&id, &wt) in ids.iter().zip(w) {
                rows[id as usize].push(tok as u32);
                weights[id as usize].push(wt);
            }
        }
        if *self == ExpertExecutor::HostCombine {
            return host_combine(experts, x, rows, weights);
        }
        let mut scattered: Option<Tensor> = None;
        for (ex, mlp) in experts.iter().enumerate() {
            if rows[ex].is_empty() {
                continue;
            }
            let n = rows[ex].len();
            let toks = std::mem::take(&mut rows[ex]);
            let wts = std::mem::take(&mut weights[ex]);
            let idx = Tensor::from_vec(toks.clone(), n, x.device())?;
            let xs = if n == t {
                x.clone()
            } else {
                x.index_select(&idx, 0)?
            };
            let y = mlp.forward(&xs)?;
            let wt = Tensor::from_vec(wts, (n, 1), x.device())?.to_dtype(x.dtype())?;
            let y = y.broadcast_mul(&wt)?;
            let acc = match scattered.take() {
                Some(o) => o,
                None => x.zeros_like()?,
            };
            scattered = Some(acc.index_add(&idx, &y, 0)?);
        }
        match scattered {
            Some(o) => Ok(o),
            None => Ok(x.zeros_like()?),
        }
    }
}

/// The host f32 strategy: every expert that received tokens runs on its rows, the experts
/// spread over the thread pool together (each expert's products split further where they are
/// large), and the outputs are combined per token in expert order in one pass. An expert's
/// output does not depend on which thread computes it, so the result equals running them in
/// turn.
fn host_combine(
    experts: &[Mlp],
    x: &Tensor,
    rows: Vec<Vec<u32>>,
    weights: Vec<Vec<f32>>,
) -> Result<Tensor> {
    let (t, d) = x.dims2()?;
    let active: Vec<(&Mlp, Vec<u32>, Vec<f32>)> = experts
        .iter()
        .zip(rows)
        .zip(weights)
        .filter(|((_, r), _)| !r.is_empty())
        .map(|((m, r), w)| (m, r, w))
        .collect();
    let ys = active
        .par_iter()
        .map(|(mlp, toks, _)| -> Result<Vec<f32>> {
            let xs = if toks.len() == t {
                x.clone()
            } else {
                x.index_select(&Tensor::from_slice(toks, toks.len(), x.device())?, 0)?
            };
            Ok(mlp.forward(&xs)?.flatten_all()?.to_vec1::<f32>()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let parts: Vec<Vec<(u32, f32)>> = active
        .into_iter()
        .map(|(_, toks, wts)| toks.into_iter().zip(wts).collect())
        .collect();
    Ok(Tensor::from_vec(
        combine_experts(&ys, &parts, t, d),
        (t, d),
        x.device(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layers::Linear;

    fn tensor(rows: usize, cols: usize, seed: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 0.3)
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    #[test]
    fn experts_run_together_equal_experts_run_in_turn() {
        // 6 experts of 24 over d 16; 40 tokens routed top-2, expert 5 receiving none and
        // expert 0 every token
        let (d, inter, t) = (16, 24, 40);
        let experts: Vec<Mlp> = (0..6)
            .map(|e| {
                let gate_up = Linear::from_weight(tensor(2 * inter, d, 3 * e)).unwrap();
                let down = Linear::from_weight(tensor(d, inter, 3 * e + 1)).unwrap();
                Mlp::new(gate_up, down, inter)
            })
            .collect();
        let routing = LayerRouting {
            ids: (0..t).map(|i| vec![0, 1 + (i % 4) as u32]).collect(),
            weights: (0..t)
                .map(|i| vec![0.6 + i as f32 * 0.005, 0.4 - i as f32 * 0.005])
                .collect(),
        };
        let x = tensor(t, d, 99);
        let together = ExpertExecutor::HostCombine
            .run(&experts, &x, &routing)
            .unwrap();
        let in_turn = ExpertExecutor::DeviceScatter
            .run(&experts, &x, &routing)
            .unwrap();
        let diff = (together - in_turn)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "largest difference {diff}");
    }
}
