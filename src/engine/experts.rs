//! The routed-expert executor: each expert runs once on the rows of the tokens routed to it, and
//! the outputs are summed per token with the routing weights. One strategy per backend, chosen
//! once at load: on the host in f32 the expert outputs are kept and combined per token in one
//! pass (`moecap_kernels::combine_experts`); elsewhere each is weighted and scatter-added on the
//! device.

use super::layers::Mlp;
use crate::backend::host_f32;
use crate::error::Result;
use crate::records::LayerRouting;
use candle_core::{DType, Device, Tensor};
use moecap_kernels::combine_experts;

/// How the routed experts of a MoE block run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertExecutor {
    /// Host f32: outputs kept per expert, combined per token at the end.
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
        let (mut ys, mut parts) = (Vec::new(), Vec::new());
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
            match self {
                ExpertExecutor::HostCombine => {
                    ys.push(y.flatten_all()?.to_vec1::<f32>()?);
                    parts.push(toks.into_iter().zip(wts).collect::<Vec<_>>());
                }
                ExpertExecutor::DeviceScatter => {
                    let wt = Tensor::from_vec(wts, (n, 1), x.device())?.to_dtype(x.dtype())?;
                    let y = y.broadcast_mul(&wt)?;
                    let acc = match scattered.take() {
                        Some(o) => o,
                        None => x.zeros_like()?,
                    };
                    scattered = Some(acc.index_add(&idx, &y, 0)?);
                }
            }
        }
        Ok(match (self, scattered) {
            (ExpertExecutor::HostCombine, _) => {
                let d = x.dim(1)?;
                Tensor::from_vec(combine_experts(&ys, &parts, t, d), (t, d), x.device())?
            }
            (ExpertExecutor::DeviceScatter, Some(o)) => o,
            (ExpertExecutor::DeviceScatter, None) => x.zeros_like()?,
        })
    }
}
