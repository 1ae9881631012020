//! The decoder shared by every family: embedding, layers (attention of the layer's kind, then a
//! dense or MoE feed-forward block, each with a pre-norm and a residual), final norm and LM head.
//! Only the attention kind and the feed-forward kind differ between families. The layer loop
//! marks region boundaries on the pass's probe between calls into the blocks.

use super::attention::{Attention, PassContext};
use super::cache::KvCache;
use super::layers::{Linear, RmsNorm};
use super::load::Loader;
use super::mla::MlaAttention;
use super::moe::FeedForward;
use super::probe::{LayerMarks, PassProbe};
use super::rope::Rope;
use super::weights::WeightStore;
use crate::backend::all_finite;
use crate::error::{Error, Result};
use crate::model::descriptor::{Attention as AttnDesc, Family, ModelDesc};
use candle_core::{DType, Device, Tensor};

/// Families the engine runs.
pub const ENGINE_FAMILIES: [Family; 9] = [
    Family::Mixtral,
    Family::Qwen2Moe,
    Family::Qwen3Moe,
    Family::Olmoe,
    Family::Deepseek,
    Family::DeepseekV2,
    Family::DeepseekV3,
    Family::Llama,
    Family::Mistral,
];

/// A layer's attention: one implementation per kind, shared by every family.
enum LayerAttention {
    /// Grouped-query attention.
    Gqa(Attention),
    /// DeepSeek latent attention.
    Mla(MlaAttention),
}

impl LayerAttention {
    fn new(ld: &Loader, i: usize) -> Result<Self> {
        Ok(match ld.desc.layers[i].attention {
            AttnDesc::Gqa { .. } => LayerAttention::Gqa(Attention::new(ld, i)?),
            AttnDesc::Mla { .. } => LayerAttention::Mla(MlaAttention::new(ld, i)?),
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        pass: &PassContext,
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        match self {
            LayerAttention::Gqa(a) => a.forward(x, pass, caches, layer),
            LayerAttention::Mla(a) => a.forward(x, pass, caches, layer),
        }
    }
}

/// One decoder layer.
struct DecoderLayer {
    input_norm: RmsNorm,
    post_norm: RmsNorm,
    attn: LayerAttention,
    ffn: FeedForward,
}

impl DecoderLayer {
    fn new(ld: &Loader, i: usize) -> Result<Self> {
        let (n, eps) = (&ld.names, ld.desc.norm_eps);
        Ok(DecoderLayer {
            input_norm: ld.norm(&n.input_norm(i), eps)?,
            post_norm: ld.norm(&n.post_attention_norm(i), eps)?,
            attn: LayerAttention::new(ld, i)?,
            ffn: FeedForward::new(ld, i)?,
        })
    }

    /// Layer `i` on the pass's tokens `x` `[T, d]`, marking its regions on `probe`.
    fn forward(
        &self,
        x: Tensor,
        pass: &PassContext,
        caches: &mut [&mut KvCache],
        i: usize,
        probe: &mut PassProbe,
    ) -> Result<Tensor> {
        let mut mk = LayerMarks {
            start: probe.mark()?,
            ..Default::default()
        };
        let h = self.input_norm.forward(&x)?;
        mk.normed = probe.mark()?;
        let a = self.attn.forward(&h, pass, caches, i)?;
        mk.attended = probe.mark()?;
        let (x, h) = self.post_norm.add_forward(&x, &a)?;
        mk.ffn_in = probe.mark()?;
        let f = match &self.ffn {
            FeedForward::Dense(mlp) => {
                let y = mlp.forward(&h)?;
                mk.routed = mk.ffn_in;
                mk.experts = probe.mark()?;
                mk.shared = mk.experts;
                y
            }
            FeedForward::Moe(b) => {
                let routing = b.route(&h)?;
                mk.routed = probe.mark()?;
                let mut y = b.experts(&h, &routing)?;
                mk.experts = probe.mark()?;
                mk.shared = mk.experts;
                if let Some(s) = b.shared(&h)? {
                    y = (y + s)?;
                    mk.shared = probe.mark()?;
                }
                probe.routing(i, routing);
                y
            }
        };
        let x = (x + f)?;
        mk.end = probe.mark()?;
        probe.layer_done(mk);
        Ok(x)
    }
}

/// A loaded model.
pub struct Model {
    /// Its descriptor.
    pub desc: ModelDesc,
    embed: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    /// Weights' dtype.
    pub dtype: DType,
    /// Where it runs.
    pub device: Device,
}

impl Model {
    /// Builds the model from its weights, converting them to `dtype` on `device`.
    pub fn load(desc: ModelDesc, w: &WeightStore, dtype: DType, device: &Device) -> Result<Self> {
        if !ENGINE_FAMILIES.contains(&desc.family) {
            return Err(Error::Unsupported(format!(
                "{}: the engine does not run {} yet (it runs {})",
                desc.source,
                desc.architecture,
                ENGINE_FAMILIES
                    .iter()
                    .map(|f| f.architecture())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if desc.hidden_act != "silu" {
            return Err(Error::field(
                &desc.source,
                "hidden_act",
                format!("`{}` is not supported (silu only)", desc.hidden_act),
            ));
        }
        let ld = Loader::new(&desc, w, dtype, device);
        let n = &ld.names;
        let embed = ld.tensor(&n.embed())?;
        let lm_head = if desc.tie_word_embeddings {
            embed.clone()
        } else {
            ld.tensor(&n.lm_head())?
        };
        let layers = (0..desc.num_layers())
            .map(|i| DecoderLayer::new(&ld, i))
            .collect::<Result<Vec<_>>>()?;
        // the rotated dimensions: the whole head, or latent attention's decoupled rope part
        let head_dim = match desc.attention() {
            AttnDesc::Mla {
                qk_rope_head_dim, ..
            } => *qk_rope_head_dim,
            a => a.qk_head_dim(),
        };
        let norm = ld.norm(&n.final_norm(), desc.norm_eps)?;
        let rope = Rope::new(&desc.rope, head_dim, desc.max_position_embeddings)?;
        Ok(Model {
            norm,
            lm_head: Linear::from_weight(lm_head)?,
            rope,
            embed,
            layers,
            desc,
            dtype,
            device: device.clone(),
        })
    }

    /// The embedding rows of `ids`.
    pub(super) fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.embed.index_select(ids, 0)?)
    }

    /// The rotary embedding.
    pub(super) fn rope(&self) -> &Rope {
        &self.rope
    }

    /// Every layer on `x`, in order.
    pub(super) fn layers(
        &self,
        mut x: Tensor,
        pass: &PassContext,
        caches: &mut [&mut KvCache],
        probe: &mut PassProbe,
    ) -> Result<Tensor> {
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, pass, caches, i, probe)?;
        }
        Ok(x)
    }

    /// Where a pass's output first stops being finite: the embedding, the output of layer `i`
    /// (0-based, as in the checkpoint's tensor names) or the head (the final norm and LM head
    /// of finite hidden states). Runs the layers again on `x`, the embedded tokens, without
    /// the probe.
    pub(super) fn first_nonfinite(
        &self,
        mut x: Tensor,
        pass: &PassContext,
        caches: &mut [&mut KvCache],
    ) -> Result<String> {
        if !all_finite(&x)? {
            return Ok("the embedding of the input tokens".into());
        }
        let mut probe = PassProbe::start(false, &self.device)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, pass, caches, i, &mut probe)?;
            if !all_finite(&x)? {
                return Ok(format!("the output of layer {i}"));
            }
        }
        Ok("the final norm and LM head (every layer's output is finite)".into())
    }

    /// The logits in f32 of the rows of `x` (final norm, then the LM head).
    pub(super) fn head(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self
            .lm_head
            .forward(&self.norm.forward(x)?)?
            .to_dtype(DType::F32)?)
    }
}
