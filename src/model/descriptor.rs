//! The model descriptor: what a checkpoint is, layer by layer (attention kind and sizes, dense or
//! MoE feed-forward, experts, shared experts, router scoring), independent of how its
//! `config.json` spells it. Built by [`crate::config`]; read by the accounting, the tensor check and
//! (later) the engine.

use serde::Serialize;

/// Model families moecap models. One per supported `architectures` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Family {
    /// `MixtralForCausalLM`.
    Mixtral,
    /// `Qwen2MoeForCausalLM` (Qwen1.5-MoE, Qwen2-MoE).
    Qwen2Moe,
    /// `Qwen3MoeForCausalLM`.
    Qwen3Moe,
    /// `DeepseekForCausalLM` (deepseek-moe-16b).
    Deepseek,
    /// `DeepseekV2ForCausalLM`.
    DeepseekV2,
    /// `DeepseekV3ForCausalLM`.
    DeepseekV3,
    /// `OlmoeForCausalLM`.
    Olmoe,
    /// `DbrxForCausalLM`.
    Dbrx,
    /// `LlamaForCausalLM` (dense).
    Llama,
    /// `MistralForCausalLM` (dense).
    Mistral,
}

impl Family {
    /// Every supported architecture string with its family.
    pub const ARCHITECTURES: [(&'static str, Family); 10] = [
        ("MixtralForCausalLM", Family::Mixtral),
        ("Qwen2MoeForCausalLM", Family::Qwen2Moe),
        ("Qwen3MoeForCausalLM", Family::Qwen3Moe),
        ("DeepseekForCausalLM", Family::Deepseek),
        ("DeepseekV2ForCausalLM", Family::DeepseekV2),
        ("DeepseekV3ForCausalLM", Family::DeepseekV3),
        ("OlmoeForCausalLM", Family::Olmoe),
        ("DbrxForCausalLM", Family::Dbrx),
        ("LlamaForCausalLM", Family::Llama),
        ("MistralForCausalLM", Family::Mistral),
    ];

    /// The family of an `architectures` entry.
    pub fn from_architecture(arch: &str) -> Option<Family> {
        Self::ARCHITECTURES
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, f)| *f)
    }

    /// The architecture string of the family.
    pub fn architecture(self) -> &'static str {
        Self::ARCHITECTURES
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(a, _)| *a)
            .unwrap_or("?")
    }

    /// A short lowercase name (`mixtral`, `deepseek_v2`, ...).
    pub fn short(self) -> &'static str {
        match self {
            Family::Mixtral => "mixtral",
            Family::Qwen2Moe => "qwen2_moe",
            Family::Qwen3Moe => "qwen3_moe",
            Family::Deepseek => "deepseek",
            Family::DeepseekV2 => "deepseek_v2",
            Family::DeepseekV3 => "deepseek_v3",
            Family::Olmoe => "olmoe",
            Family::Dbrx => "dbrx",
            Family::Llama => "llama",
            Family::Mistral => "mistral",
        }
    }

    /// Whether the published MoE-CAP code treats this model as "DeepSeek" (always two shared
    /// experts, MLA sizes where the config has them).
    pub fn is_deepseek(self) -> bool {
        matches!(
            self,
            Family::Deepseek | Family::DeepseekV2 | Family::DeepseekV3
        )
    }
}

/// Where q/k normalisation is applied, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QkNorm {
    /// No q/k norm.
    None,
    /// RMSNorm over each head (weights of size `head_dim`, shared by all heads): Qwen3.
    PerHead,
    /// RMSNorm over the whole projection (weights `H·d_h` and `H_kv·d_h`): OLMoE.
    Full,
}

/// The attention block of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Attention {
    /// Multi-head or grouped-query attention (MHA when `kv_heads == heads`).
    Gqa {
        /// Query heads `H`.
        heads: usize,
        /// Key/value heads `H_kv`.
        kv_heads: usize,
        /// Head size `d_h`.
        head_dim: usize,
        /// Biases on q, k and v projections.
        qkv_bias: bool,
        /// Bias on the output projection.
        o_bias: bool,
        /// q/k normalisation.
        qk_norm: QkNorm,
    },
    /// DeepSeek multi-head latent attention.
    Mla {
        /// Query heads `H`.
        heads: usize,
        /// `q_lora_rank` (`None`: a plain q projection).
        q_lora_rank: Option<usize>,
        /// `kv_lora_rank` `r_kv`.
        kv_lora_rank: usize,
        /// `qk_nope_head_dim`.
        qk_nope_head_dim: usize,
        /// `qk_rope_head_dim`.
        qk_rope_head_dim: usize,
        /// `v_head_dim`.
        v_head_dim: usize,
        /// Biases on `q_a_proj`/`kv_a_proj_with_mqa`/`o_proj` (`attention_bias`).
        bias: bool,
        /// The rotary dimensions are stored as interleaved pairs `(x0, x1), (x2, x3), …`
        /// (DeepSeek-V2 always; V3 per `rope_interleave`, default true) rather than as halves.
        rope_interleave: bool,
    },
}

impl Attention {
    /// Query heads.
    pub fn heads(&self) -> usize {
        match self {
            Attention::Gqa { heads, .. } | Attention::Mla { heads, .. } => *heads,
        }
    }

    /// Per-head query/key size `d_qk` used by the score product.
    pub fn qk_head_dim(&self) -> usize {
        match self {
            Attention::Gqa { head_dim, .. } => *head_dim,
            Attention::Mla {
                qk_nope_head_dim,
                qk_rope_head_dim,
                ..
            } => qk_nope_head_dim + qk_rope_head_dim,
        }
    }

    /// Per-head value size `d_v`.
    pub fn v_head_dim(&self) -> usize {
        match self {
            Attention::Gqa { head_dim, .. } => *head_dim,
            Attention::Mla { v_head_dim, .. } => *v_head_dim,
        }
    }
}

/// How router scores are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// Softmax over all routed experts.
    Softmax,
    /// Independent sigmoid per expert (DeepSeek-V3).
    Sigmoid,
}

/// The router of one MoE layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Router {
    /// Score function.
    pub scoring: Scoring,
    /// Renormalise the chosen top-k weights to sum to one.
    pub norm_topk_prob: bool,
    /// Factor applied to the combine weights (`routed_scaling_factor`).
    pub routed_scaling_factor: f64,
    /// Expert groups (`n_group`; 1 = no grouping).
    pub n_group: usize,
    /// Groups a token may choose from (`topk_group`).
    pub topk_group: usize,
    /// Selection method as the config names it (`greedy`, `group_limited_greedy`, `noaux_tc`,
    /// or `topk` where the config is silent).
    pub topk_method: String,
    /// A per-expert score-correction bias used for selection only (`e_score_correction_bias`).
    pub correction_bias: bool,
    /// The family's rules the engine routes by (decided with the config; not a config field, so
    /// not printed with the descriptor).
    #[serde(skip)]
    pub rules: RouterRules,
}

impl Router {
    /// A softmax top-k router without groups, bias or scaling, renormalising as `norm_topk_prob`
    /// says (Mixtral, OLMoE, Qwen, DBRX).
    pub fn plain(norm_topk_prob: bool) -> Self {
        Router {
            scoring: Scoring::Softmax,
            norm_topk_prob,
            routed_scaling_factor: 1.0,
            n_group: 1,
            topk_group: 1,
            topk_method: "topk".into(),
            correction_bias: false,
            rules: RouterRules::plain(norm_topk_prob),
        }
    }
}

/// How a group of experts is scored for group-limited selection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupScore {
    /// The group's best expert score; dropped groups are masked with 0 (DeepSeek-V2).
    #[default]
    Best,
    /// The sum of its two best scores; dropped groups are masked with −∞ (`noaux_tc`, V3).
    TopTwoSum,
}

/// The routing rules that differ by family beyond the config's fields: all the engine's router
/// needs to know about the family.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouterRules {
    /// Renormalise the chosen top-k weights (DeepSeek never renormalises a single expert).
    pub renormalise: bool,
    /// Added to the sum before renormalising (DeepSeek adds 1e-20).
    pub renorm_eps: f32,
    /// Apply the scaling factor only to weights that were not renormalised (DeepSeek v1, V2).
    pub scale_only_unnormalised: bool,
    /// How groups are scored.
    pub group_score: GroupScore,
}

impl RouterRules {
    /// The rules of every family but DeepSeek's: renormalise as the config says.
    pub fn plain(norm_topk_prob: bool) -> Self {
        RouterRules {
            renormalise: norm_topk_prob,
            ..Default::default()
        }
    }
}

/// Shared experts of a MoE layer (always active for every token).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shared {
    /// Number of shared experts as the config states it (DeepSeek `n_shared_experts`; 1 for Qwen).
    pub count: usize,
    /// Total intermediate size of the fused shared MLP (`count · moe_intermediate_size` for
    /// DeepSeek, `shared_expert_intermediate_size` for Qwen).
    pub intermediate_size: usize,
    /// Qwen's sigmoid gate on the shared expert output (a `d × 1` projection).
    pub gate: bool,
}

/// A MoE feed-forward block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moe {
    /// Routed experts `E`.
    pub num_experts: usize,
    /// Experts per token `k`.
    pub top_k: usize,
    /// Intermediate size of one routed expert.
    pub expert_intermediate_size: usize,
    /// Shared experts, if any.
    pub shared: Option<Shared>,
    /// The router.
    pub router: Router,
}

/// The feed-forward block of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ffn {
    /// A plain gated MLP.
    Dense {
        /// Its intermediate size.
        intermediate_size: usize,
        /// Biases on its projections (`mlp_bias`).
        bias: bool,
    },
    /// A mixture of experts.
    Moe(Moe),
}

/// One decoder layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// Checkpoint layer index.
    pub index: usize,
    /// Its attention.
    pub attention: Attention,
    /// Its feed-forward block.
    pub ffn: Ffn,
}

impl Layer {
    /// The MoE block, if this is a MoE layer.
    pub fn moe(&self) -> Option<&Moe> {
        match &self.ffn {
            Ffn::Moe(m) => Some(m),
            Ffn::Dense { .. } => None,
        }
    }
}

/// Rotary position embedding settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rope {
    /// Base frequency θ.
    pub theta: f64,
    /// Scaling type (`yarn`, `linear`, `dynamic`, `llama3`, ...), if any.
    pub scaling: Option<String>,
    /// Scaling factor, if any.
    pub factor: Option<f64>,
    /// Further scaling parameters as the config names them (`original_max_position_embeddings`,
    /// `low_freq_factor`, `high_freq_factor`, `beta_fast`, `beta_slow`, `mscale`,
    /// `mscale_all_dim`, `attention_factor`, `truncate` as 0/1).
    pub params: std::collections::BTreeMap<String, f64>,
}

/// Weight quantisation declared by `quantization_config`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantization {
    /// `quant_method` (`fp8`, `gptq`, `awq`, ...).
    pub method: String,
    /// Bits per weight where stated (`bits`), or 8 for fp8.
    pub bits: Option<u32>,
}

/// A whole model: everything the accounting needs and nothing about where the weights live.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDesc {
    /// Where the descriptor came from (a config path or `preset:NAME`).
    pub source: String,
    /// The family.
    pub family: Family,
    /// The `architectures` entry.
    pub architecture: String,
    /// Hidden size `d`.
    pub hidden_size: usize,
    /// Vocabulary size `V`.
    pub vocab_size: usize,
    /// Whether the LM head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Maximum positions the model was configured for.
    pub max_position_embeddings: Option<usize>,
    /// Rotary embedding settings.
    pub rope: Rope,
    /// `torch_dtype` / `dtype` of the checkpoint.
    pub torch_dtype: Option<String>,
    /// `quantization_config`, if present.
    pub quantization: Option<Quantization>,
    /// Multi-token-prediction layers stored beside the model (DeepSeek-V3 `num_nextn_predict_layers`);
    /// not part of a normal forward pass.
    pub mtp_layers: usize,
    /// Epsilon of the RMS/layer norms (`rms_norm_eps`).
    pub norm_eps: f64,
    /// Sliding attention window, where the config enables one.
    pub sliding_window: Option<usize>,
    /// MLP activation (`hidden_act`); every supported family uses `silu`.
    pub hidden_act: String,
    /// End-of-sequence token ids named by the config.
    pub eos_token_ids: Vec<u32>,
    /// The decoder layers, in order.
    pub layers: Vec<Layer>,
}

impl ModelDesc {
    /// Number of decoder layers `L`.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The MoE layers.
    pub fn moe_layers(&self) -> impl Iterator<Item = (&Layer, &Moe)> {
        self.layers.iter().filter_map(|l| l.moe().map(|m| (l, m)))
    }

    /// Number of MoE layers.
    pub fn num_moe_layers(&self) -> usize {
        self.moe_layers().count()
    }

    /// Whether any layer is MoE.
    pub fn is_moe(&self) -> bool {
        self.num_moe_layers() > 0
    }

    /// The first MoE block (experts and top-k of the model, for summaries).
    pub fn first_moe(&self) -> Option<&Moe> {
        self.moe_layers().next().map(|(_, m)| m)
    }

    /// The attention of the first layer (all supported models use one attention shape).
    pub fn attention(&self) -> &Attention {
        &self.layers[0].attention
    }

    /// A display name: the preset name or the config's folder.
    pub fn display_name(&self) -> String {
        if let Some(p) = self.source.strip_prefix("preset:") {
            return p.to_string();
        }
        let path = std::path::Path::new(&self.source);
        let dir = if path.file_name().is_some_and(|f| f == "config.json") {
            path.parent()
        } else {
            Some(path)
        };
        dir.and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.source.clone())
    }
}

/// Expected number of distinct experts chosen by `tokens` tokens when each picks `k` of `E`
/// uniformly at random: `E·(1 − (1 − k/E)^tokens)`.
pub fn uniform_expected_experts(experts: usize, k: usize, tokens: u64) -> f64 {
    if experts == 0 {
        return 0.0;
    }
    let e = experts as f64;
    let miss = 1.0 - k as f64 / e;
    e * (1.0 - miss.powf(tokens as f64))
}
