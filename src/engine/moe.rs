//! The feed-forward block of a layer: a dense gated MLP, or a mixture of experts — the router,
//! the one routed-expert executor (gather each expert's tokens, run it, scatter-add the weighted
//! outputs), and shared experts with Qwen's optional sigmoid gate.

use super::kernels::combine_experts;
use super::layers::{Linear, Mlp};
use super::probe::{Clock, LayerMarks, LayerRouting};
use super::router::Router;
use super::weights::WeightStore;
use crate::descriptor::{Ffn, ModelDesc};
use crate::error::Result;
use crate::naming::{Names, Proj};
use candle_core::{DType, Device, Tensor};

/// A MoE block.
#[derive(Debug, Clone)]
pub struct MoeBlock {
    gate: Linear,
    router: Router,
    experts: Vec<Mlp>,
    shared: Option<Mlp>,
    shared_gate: Option<Linear>,
}

/// A layer's feed-forward block.
#[derive(Debug, Clone)]
pub enum FeedForward {
    /// Dense MLP.
    Dense(Mlp),
    /// Mixture of experts.
    Moe(Box<MoeBlock>),
}

impl FeedForward {
    /// Loads layer `i`'s block.
    pub fn new(
        desc: &ModelDesc,
        i: usize,
        w: &WeightStore,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let d = desc.hidden_size;
        let n = Names::new(desc);
        match &desc.layers[i].ffn {
            Ffn::Dense {
                intermediate_size,
                bias,
            } => {
                let b = |p: Proj| n.dense(i, p, true);
                Ok(FeedForward::Dense(Mlp::new(
                    w,
                    |p| n.dense(i, p, false),
                    bias.then_some(&b as &dyn Fn(Proj) -> String),
                    d,
                    *intermediate_size,
                    dtype,
                    dev,
                )?))
            }
            Ffn::Moe(m) => {
                let gate = Linear::new(w, &n.router(i), m.num_experts, d, dtype, dev)?;
                let mut router = Router::for_block(desc.family, m);
                if m.router.correction_bias {
                    let b = w.get(
                        &n.correction_bias(i),
                        &[m.num_experts],
                        DType::F32,
                        &Device::Cpu,
                    )?;
                    router.bias = Some(b.to_vec1::<f32>()?);
                }
                let experts = (0..m.num_experts)
                    .map(|e| {
                        Mlp::new(
                            w,
                            |p| n.expert(i, e, p),
                            None,
                            d,
                            m.expert_intermediate_size,
                            dtype,
                            dev,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (shared, shared_gate) = match &m.shared {
                    Some(s) => (
                        Some(Mlp::new(
                            w,
                            |p| n.shared(i, p),
                            None,
                            d,
                            s.intermediate_size,
                            dtype,
                            dev,
                        )?),
                        if s.gate {
                            Some(Linear::new(w, &n.shared_gate(i), 1, d, dtype, dev)?)
                        } else {
                            None
                        },
                    ),
                    None => (None, None),
                };
                Ok(FeedForward::Moe(Box::new(MoeBlock {
                    gate,
                    router,
                    experts,
                    shared,
                    shared_gate,
                })))
            }
        }
    }

    /// Applies the block to `x` `[T, d]`. With the probe on (`routing` given) it records each
    /// token's routing, and it marks the end of its regions on `clock`.
    pub fn forward(
        &self,
        x: &Tensor,
        routing: Option<&mut LayerRouting>,
        clock: &mut Clock,
        marks: &mut LayerMarks,
    ) -> Result<Tensor> {
        let on = routing.is_some();
        match self {
            FeedForward::Dense(mlp) => {
                let y = mlp.forward(x)?;
                marks.routed = marks.ffn_in;
                marks.experts = clock.mark()?;
                marks.shared = marks.experts;
                Ok(y)
            }
            FeedForward::Moe(b) => {
                let t = x.dim(0)?;
                let logits = b.gate.forward(x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                let e = b.experts.len();
                let mut rows: Vec<Vec<u32>> = vec![Vec::new(); e];
                let mut weights: Vec<Vec<f32>> = vec![Vec::new(); e];
                let mut rec = LayerRouting::default();
                for (tok, l) in logits.iter().enumerate() {
                    let (ids, w) = b.router.route(l);
                    for (&id, &wt) in ids.iter().zip(&w) {
                        rows[id as usize].push(tok as u32);
                        weights[id as usize].push(wt);
                    }
                    if on {
                        rec.ids.push(ids);
                        rec.weights.push(w);
                    }
                }
                marks.routed = clock.mark()?;
                // f32 on the CPU: expert outputs kept, weighted and summed per token in one pass;
                // otherwise weighted and scatter-added expert by expert on the device
                let host = x.device().is_cpu() && x.dtype() == DType::F32;
                let (mut ys, mut parts) = (Vec::new(), Vec::new());
                let mut scattered: Option<Tensor> = None;
                for ex in 0..e {
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
                    let y = b.experts[ex].forward(&xs)?;
                    if host {
                        ys.push(y.flatten_all()?.to_vec1::<f32>()?);
                        parts.push(toks.into_iter().zip(wts).collect::<Vec<_>>());
                        continue;
                    }
                    let wt = Tensor::from_vec(wts, (n, 1), x.device())?.to_dtype(x.dtype())?;
                    let y = y.broadcast_mul(&wt)?;
                    let acc = match scattered.take() {
                        Some(o) => o,
                        None => x.zeros_like()?,
                    };
                    scattered = Some(acc.index_add(&idx, &y, 0)?);
                }
                let mut out = match scattered {
                    Some(o) => o,
                    None if host => {
                        let d = x.dim(1)?;
                        Tensor::from_vec(combine_experts(&ys, &parts, t, d), (t, d), x.device())?
                    }
                    None => x.zeros_like()?,
                };
                marks.experts = clock.mark()?;
                marks.shared = marks.experts;
                if let Some(s) = &b.shared {
                    let mut y = s.forward(x)?;
                    if let Some(g) = &b.shared_gate {
                        y = y.broadcast_mul(&candle_nn::ops::sigmoid(&g.forward(x)?)?)?;
                    }
                    out = (out + y)?;
                    marks.shared = clock.mark()?;
                }
                if let Some(r) = routing {
                    *r = rec;
                }
                Ok(out)
            }
        }
    }
}
