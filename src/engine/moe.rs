//! The feed-forward block of a layer: a dense gated MLP, or a mixture of experts — the router
//! ([`MoeBlock::route`]), the routed experts run by the backend's executor
//! ([`MoeBlock::experts`]) and shared experts with Qwen's optional sigmoid gate
//! ([`MoeBlock::shared`]). The three steps are separate calls so that the layer around them can
//! time each without the block knowing it is observed.

use super::experts::ExpertExecutor;
use super::layers::{Linear, Mlp};
use super::load::Loader;
use super::router::Router;
use crate::error::Result;
use crate::model::descriptor::Ffn;
use crate::model::naming::Proj;
use crate::records::LayerRouting;
use candle_core::{DType, Tensor};

/// A MoE block.
#[derive(Debug, Clone)]
pub struct MoeBlock {
    gate: Linear,
    router: Router,
    experts: Vec<Mlp>,
    executor: ExpertExecutor,
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
    pub fn new(ld: &Loader, i: usize) -> Result<Self> {
        let n = &ld.names;
        match &ld.desc.layers[i].ffn {
            Ffn::Dense { bias, .. } => {
                let b = |p: Proj| n.dense(i, p, true);
                Ok(FeedForward::Dense(ld.mlp(
                    |p| n.dense(i, p, false),
                    bias.then_some(&b as &dyn Fn(Proj) -> String),
                )?))
            }
            Ffn::Moe(m) => {
                let gate = ld.linear(&n.router(i))?;
                let bias = if m.router.correction_bias {
                    Some(ld.host_f32(&n.correction_bias(i))?)
                } else {
                    None
                };
                let experts = (0..m.num_experts)
                    .map(|e| ld.mlp(|p| n.expert(i, e, p), None))
                    .collect::<Result<Vec<_>>>()?;
                let (shared, shared_gate) = match &m.shared {
                    Some(s) => (
                        Some(ld.mlp(|p| n.shared(i, p), None)?),
                        if s.gate {
                            Some(ld.linear(&n.shared_gate(i))?)
                        } else {
                            None
                        },
                    ),
                    None => (None, None),
                };
                Ok(FeedForward::Moe(Box::new(MoeBlock {
                    gate,
                    router: Router::for_block(m, bias),
                    experts,
                    executor: ExpertExecutor::for_backend(ld.device, ld.dtype),
                    shared,
                    shared_gate,
                })))
            }
        }
    }
}

impl MoeBlock {
    /// Each token's experts and combine weights for `x` `[T, d]`.
    pub fn route(&self, x: &Tensor) -> Result<LayerRouting> {
        let logits = self
            .gate
            .forward(x)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let mut r = LayerRouting::default();
        for l in &logits {
            let (ids, w) = self.router.route(l);
            r.ids.push(ids);
            r.weights.push(w);
        }
        Ok(r)
    }

    /// The routed experts' output for `x` routed as `routing` says.
    pub fn experts(&self, x: &Tensor, routing: &LayerRouting) -> Result<Tensor> {
        self.executor.run(&self.experts, x, routing)
    }

    /// The shared experts' output (gated where the block has a gate), if it has any.
    pub fn shared(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let Some(s) = &self.shared else {
            return Ok(None);
        };
        let mut y = s.forward(x)?;
        if let Some(g) = &self.shared_gate {
            y = y.broadcast_mul(&candle_nn::ops::sigmoid(&g.forward(x)?)?)?;
        }
        Ok(Some(y))
    }
}
