#!/usr/bin/env python3
"""Writes tiny random checkpoints of every engine family with the outputs Hugging Face
transformers computes for them: full logits, routing decisions per MoE layer and a 12-token
greedy continuation. The outputs are the reference the Rust tests compare against.

Run through scripts/reference-fixtures.sh, which installs pinned torch and transformers.
Every checkpoint is re-seeded until its routing is non-degenerate: on every token of every
prompt and continuation, the k-th and (k+1)-th router logits differ by at least MIN_GAP (the
ranking of softmax or sigmoid scores is that of the logits), and each greedy argmax beats the
runner-up logit by at least MIN_GAP."""

import copy
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

MIN_GAP = 2e-3
NEW_TOKENS = 12
PROMPT_LENS = (7, 11)

COMMON = dict(
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=128,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# Latent attention shared by the DeepSeek-V2/V3 fixtures (every head has its own keys: kv heads
# = heads), with a value head size unlike the key's and a large rms_norm_eps.
MLA = dict(
    num_key_value_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
    intermediate_size=40, moe_intermediate_size=16, n_routed_experts=8, num_experts_per_tok=2,
    n_shared_experts=1, first_k_dense_replace=1, rope_theta=10000.0,
    # unlike the 1e-6 the latent projections' norms always use, so a wrong epsilon shows
    rms_norm_eps=1e-2,
)

FAMILIES = {
    "mixtral": (
        "MixtralConfig",
        "MixtralForCausalLM",
        dict(intermediate_size=16, num_local_experts=8, num_experts_per_tok=2, rope_theta=10000.0),
    ),
    "qwen2_moe": (
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        dict(
            intermediate_size=40,
            moe_intermediate_size=16,
            shared_expert_intermediate_size=24,
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=False,
            decoder_sparse_step=1,
            mlp_only_layers=[1],
            rope_theta=10000.0,
        ),
    ),
    "qwen3_moe": (
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        dict(
            intermediate_size=40,
            moe_intermediate_size=16,
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            head_dim=12,
            decoder_sparse_step=1,
            mlp_only_layers=[],
            rope_theta=10000.0,
        ),
    ),
    "olmoe": (
        "OlmoeConfig",
        "OlmoeForCausalLM",
        dict(intermediate_size=16, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, rope_theta=10000.0),
    ),
    "llama": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            intermediate_size=40,
            tie_word_embeddings=True,
            rope_scaling={"rope_type": "linear", "factor": 2.0},
            rope_theta=10000.0,
        ),
    ),
    "llama3_rope": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            intermediate_size=40,
            head_dim=8,
            # wavelengths 6.3, 63, 628, 6283 against 64/4 and 64/1: every band of the scaling
            rope_scaling={
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
            },
            rope_theta=10000.0,
        ),
    ),
    "qwen3_moe_yarn": (
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        dict(
            intermediate_size=40,
            moe_intermediate_size=16,
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            head_dim=12,
            rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
            rope_theta=10000.0,
        ),
    ),
    "mistral": (
        "MistralConfig",
        "MistralForCausalLM",
        dict(intermediate_size=40, sliding_window=8, rope_theta=10000.0, head_dim=8),
    ),
    # DeepSeek-V2-Lite's shape: latent attention without q-LoRA, YaRN with its attention-scale
    # correction (mscale differs from mscale_all_dim, so both paths are exercised), greedy
    # softmax routing, one dense layer first.
    "deepseek_v2_lite": (
        "DeepseekV2Config",
        "DeepseekV2ForCausalLM",
        dict(
            **MLA, q_lora_rank=None, topk_method="greedy", norm_topk_prob=False,
            routed_scaling_factor=1.0,
            rope_scaling={
                "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 0.8,
            },
        ),
    ),
    # DeepSeek-V2's: q-LoRA, group-limited greedy routing, routed scaling factor.
    "deepseek_v2": (
        "DeepseekV2Config",
        "DeepseekV2ForCausalLM",
        dict(
            **MLA, q_lora_rank=12, topk_method="group_limited_greedy", n_group=4, topk_group=2,
            norm_topk_prob=False, routed_scaling_factor=2.0,
        ),
    ),
    # DeepSeek-V3's: sigmoid scores, selection-only correction bias, groups ranked by the sum of
    # their two best scores, renormalised and scaled weights, interleaved rope pairs.
    "deepseek_v3": (
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        dict(
            **MLA, q_lora_rank=12, n_group=4, topk_group=2, norm_topk_prob=True,
            routed_scaling_factor=2.5, rope_interleave=True,
        ),
    ),
}


class DeepseekV1Gate(torch.nn.Module):
    """DeepSeek-MoE v1's router, written from its published modeling code: softmax scores,
    top-k, renormalised (with 1e-20) only when norm_topk_prob and k > 1."""

    def __init__(self, d, e, k, norm):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(e, d))
        self.top_k = k
        self.norm = norm

    def forward(self, x):
        logits = torch.nn.functional.linear(x, self.weight)
        scores = logits.float().softmax(dim=-1)
        w, idx = torch.topk(scores, self.top_k, dim=-1)
        if self.top_k > 1 and self.norm:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        return logits, w, idx


class DeepseekV1MoE(torch.nn.Module):
    """DeepSeek-MoE v1's block: routed experts weighted by the router plus always-on shared
    experts fused into one MLP, each expert transformers' Llama MLP."""

    def __init__(self, cfg, e, k, moe_ff, n_shared, norm):
        super().__init__()
        def mlp(ff):
            c = copy.deepcopy(cfg)
            c.intermediate_size = ff
            return transformers.models.llama.modeling_llama.LlamaMLP(c)
        self.gate = DeepseekV1Gate(cfg.hidden_size, e, k, norm)
        self.experts = torch.nn.ModuleList([mlp(moe_ff) for _ in range(e)])
        self.shared_experts = mlp(moe_ff * n_shared)

    def forward(self, h):
        shape = h.shape
        x = h.reshape(-1, shape[-1])
        _, w, idx = self.gate(x)
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(idx == e)
            if len(tok):
                y.index_add_(0, tok, expert(x[tok]) * w[tok, slot, None].to(x.dtype))
        return (y + self.shared_experts(x)).reshape(shape)


# DeepSeek-MoE v1 has no transformers class: Llama attention and dense MLPs from transformers,
# the MoE block above from layer `first_k_dense_replace` on.
DEEPSEEK_V1 = dict(
    intermediate_size=40, moe_intermediate_size=16, n_routed_experts=8, num_experts_per_tok=2,
    n_shared_experts=2, first_k_dense_replace=1, moe_layer_freq=1, norm_topk_prob=False,
    rope_theta=10000.0,
)


def build_deepseek_v1(seed):
    e = DEEPSEEK_V1
    cfg = transformers.LlamaConfig(**COMMON, intermediate_size=e["intermediate_size"], rope_theta=e["rope_theta"])
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg).eval()
    for i, layer in enumerate(model.model.layers):
        if i >= e["first_k_dense_replace"] and i % e["moe_layer_freq"] == 0:
            layer.mlp = DeepseekV1MoE(cfg, e["n_routed_experts"], e["num_experts_per_tok"],
                                      e["moe_intermediate_size"], e["n_shared_experts"], e["norm_topk_prob"])
    return model


def save_deepseek_v1(model, d):
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(d, "model.safetensors"))
    cfg = {**{k: v for k, v in COMMON.items()}, **DEEPSEEK_V1,
           "architectures": ["DeepseekForCausalLM"], "model_type": "deepseek",
           "scoring_func": "softmax", "hidden_act": "silu", "attention_bias": False, "torch_dtype": "float32"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def routers(model):
    """(layer index, router module) for every MoE layer."""
    out = []
    for i, layer in enumerate(model.model.layers):
        block = getattr(layer, "block_sparse_moe", None) or getattr(layer, "mlp", None)
        gate = getattr(block, "gate", None)
        if gate is not None and hasattr(gate, "top_k"):
            out.append((i, gate))
    return out


def run(model, ids):
    """Full logits and per-layer routing (probabilities, chosen ids, combine weights)."""
    captured = {}
    hooks = []
    for i, gate in routers(model):
        def hook(_m, _inp, out, i=i, gate=gate):
            logits, scores, indices = out
            captured[i] = (logits.float().clone(), indices.clone(), scores.float().clone(), gate)
        hooks.append(gate.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    for h in hooks:
        h.remove()
    return logits, captured


def margin(probs, k):
    top = torch.topk(probs, k + 1, dim=-1).values
    return (top[:, k - 1] - top[:, k]).min().item()


def selection_margin(gate, logits, k):
    """The smallest gap that decides a token's experts. For plain top-k routers that is the k-th
    vs (k+1)-th logit; DeepSeek-V2/V3 routers also choose groups (by a group's best score or the
    sum of its two best, after the correction bias), so both the group ranking and the masked
    expert ranking must be decisive."""
    kind = type(gate).__name__
    if kind == "DeepseekV3TopkRouter":
        choice = logits.sigmoid() + gate.e_score_correction_bias
        top2, fill = True, float("-inf")
    elif kind == "DeepseekV2TopkRouter" and gate.topk_method == "group_limited_greedy":
        choice = logits.softmax(dim=-1)
        top2, fill = False, 0.0
    else:
        return margin(logits, k)
    g, kg = gate.num_group, gate.topk_group
    grouped = choice.view(-1, g, choice.shape[-1] // g)
    score = grouped.topk(2, dim=-1).values.sum(-1) if top2 else grouped.max(dim=-1).values
    keep = torch.zeros_like(score, dtype=torch.bool).scatter_(1, score.topk(kg, dim=-1).indices, True)
    masked = choice.masked_fill(~keep.repeat_interleave(choice.shape[-1] // g, dim=1), fill)
    return min(margin(score, kg), margin(masked, k))


def build(family, seed):
    if family == "deepseek_v1":
        model = build_deepseek_v1(seed)
        init(model)
        return model
    cfg_name, cls_name, extra = FAMILIES[family]
    cfg = getattr(transformers, cfg_name)(**{**COMMON, **extra})
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(cfg).eval()
    init(model)
    return model


def init(model):
    """Weights large enough for non-uniform routing and decisive argmax."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.uniform_(0.8, 1.2)
        for _, gate in routers(model):
            # DeepSeek-V2's group choice compares softmax probabilities: a flatter softmax
            # keeps the group and expert gaps measurable
            gate.weight.mul_(1.5 if type(gate).__name__ == "DeepseekV2TopkRouter" else 4.0)
            bias = getattr(gate, "e_score_correction_bias", None)
            if bias is not None:
                bias.normal_(0.0, 0.3)


def check(model, prompts):
    """Greedy continuations, and the smallest routing and argmax margins over prompts and
    continuations (one forward over each full sequence covers every position causally)."""
    worst = float("inf")
    continuations = []
    for ids in prompts:
        with torch.no_grad():
            full = model.generate(
                torch.tensor([ids]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                do_sample=False, eos_token_id=None, pad_token_id=0,
            )[0].tolist()
        continuations.append(full[len(ids):])
        logits, routing = run(model, full)
        for _, (router_logits, idx, _, gate) in routing.items():
            worst = min(worst, selection_margin(gate, router_logits, idx.shape[-1]))
        top2 = torch.topk(logits[len(ids) - 1 : len(full) - 1], 2, dim=-1).values
        worst = min(worst, (top2[:, 0] - top2[:, 1]).min().item())
        # the continuation is the argmax of the full-sequence logits
        assert logits[len(ids) - 1 : len(full) - 1].argmax(-1).tolist() == full[len(ids):]
    return worst, continuations


def main(out_dir):
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(1234)
    prompts = [torch.randint(3, 128, (n,), generator=g).tolist() for n in PROMPT_LENS]
    for family in list(FAMILIES) + ["deepseek_v1"]:
        for seed in range(200):
            model = build(family, seed)
            worst, continuations = check(model, prompts)
            if worst >= MIN_GAP:
                break
        else:
            sys.exit(f"{family}: no seed gives non-degenerate routing")
        d = os.path.join(out_dir, family)
        shutil.rmtree(d, ignore_errors=True)
        if family == "deepseek_v1":
            save_deepseek_v1(model, d)
        else:
            model.save_pretrained(d, safe_serialization=True)
        tensors = {}
        for b, ids in enumerate(prompts):
            logits, routing = run(model, ids)
            tensors[f"input_ids.{b}"] = torch.tensor(ids, dtype=torch.int64)
            tensors[f"logits.{b}"] = logits.contiguous()
            tensors[f"greedy.{b}"] = torch.tensor(continuations[b], dtype=torch.int64)
            for layer, (_, idx, w, _) in routing.items():
                tensors[f"topk_ids.{b}.{layer}"] = idx.to(torch.int64).contiguous()
                tensors[f"topk_weights.{b}.{layer}"] = w.contiguous()
        save_file(tensors, os.path.join(out_dir, f"{family}.expected.safetensors"))
        with open(os.path.join(out_dir, f"{family}.expected.json"), "w") as f:
            json.dump(
                {
                    "family": family,
                    "seed": seed,
                    "min_margin": worst,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "prompts": prompts,
                    "greedy": continuations,
                },
                f,
                indent=1,
            )
        print(f"{family}: seed {seed}, min margin {worst:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/reference")
