//! Upcycling a dense LLaMA-architecture GGUF model into a Mixtral-layout MoE checkpoint with real
//! weights: `copy` puts E identical copies of each FFN behind a router (with top-k weights
//! renormalised to 1, the output equals the dense model's whatever the router picks); `split`
//! gives expert e the e-th slice of each FFN's neurons, its down-projection scaled by k, and a
//! router derived from the weights, so k < E drops neurons (a real accuracy/sparsity trade-off)
//! and k = E is the dense model up to the spread of the router's weights. `dense` writes the
//! model itself as `LlamaForCausalLM`. The tokenizer (GPT-2 byte-level BPE in the GGUF metadata)
//! becomes a `tokenizer.json`.

mod bounds;

pub use bounds::check_header as check_gguf_header;

use crate::error::{candle_message, Error, Result};
use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// How experts are made from a dense FFN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Identical copies.
    Copy,
    /// Disjoint slices of the neurons.
    Split,
    /// No experts: the dense model in Hugging Face layout.
    Dense,
}

/// The router's logit spread: router rows are scaled so that, for an input whose
/// RMS-normalised entries have unit variance, the logits have this standard deviation. The
/// choice of experts depends only on the ranking of the logits; a small spread keeps the
/// renormalised top-k weights within a fraction of a percent of 1/k, so that in `split` mode
/// (down-projections scaled by k) the chosen slices add up as in the dense FFN.
pub const SPLIT_ROUTER_STD: f64 = 1e-3;

/// A dense LLaMA model read from GGUF.
pub struct Dense {
    /// Hugging Face config fields of the dense model.
    pub config: Value,
    /// Tensors in Hugging Face names, f32.
    pub tensors: HashMap<String, Tensor>,
    /// `tokenizer.json`.
    pub tokenizer: Value,
    /// `tokenizer_config.json`: special tokens and the chat template of the GGUF metadata.
    pub tokenizer_config: Value,
    /// Layers.
    pub layers: usize,
    /// FFN size.
    pub intermediate: usize,
}

fn meta<'a>(c: &'a Content, file: &str, key: &str) -> Result<&'a GgufValue> {
    c.metadata
        .get(key)
        .ok_or_else(|| Error::Invalid(format!("{file}: GGUF metadata has no `{key}`")))
}

fn num(c: &Content, file: &str, key: &str) -> Result<f64> {
    let v = meta(c, file, key)?;
    v.to_u32()
        .map(f64::from)
        .or_else(|_| v.to_f32().map(f64::from))
        .or_else(|_| v.to_u64().map(|x| x as f64))
        .or_else(|_| v.to_i32().map(f64::from))
        .map_err(|_| Error::Invalid(format!("{file}: GGUF `{key}` is not a number")))
}

/// Undoes llama.cpp's reordering of q/k rows (it interleaves each head's rotary halves).
fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    Ok(w.reshape((heads, out / heads / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))?)
}

/// The `tokenizer.json` of a GGUF `gpt2` tokenizer with llama.cpp's `smollm`/`gpt2`
/// pre-tokenisation (digits split one by one for `smollm`).
fn tokenizer_json(c: &Content, file: &str) -> Result<Value> {
    let model = meta(c, file, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|_| Error::Invalid(format!("{file}: tokenizer.ggml.model is not a string")))?;
    if model != "gpt2" {
        return Err(Error::Unsupported(format!(
            "{file}: tokenizer `{model}`: upcycle reads GPT-2-style byte-level BPE tokenizers only"
        )));
    }
    let pre = c
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| "default".into());
    let strings = |key: &str| -> Result<Vec<String>> {
        meta(c, file, key)?
            .to_vec()
            .map_err(|_| Error::Invalid(format!("{file}: `{key}` is not a list")))?
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|_| Error::Invalid(format!("{file}: `{key}` holds a non-string")))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i32> = match c.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|_| Error::Invalid(format!("{file}: token_type is not a list")))?
            .iter()
            .map(|t| t.to_i32().unwrap_or(1))
            .collect(),
        None => vec![1; tokens.len()],
    };
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i.into()))
        .collect();
    // control tokens (type 3) are special: never split, skipped when decoding
    let added: Vec<Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == 3)
        .map(|(i, (t, _))| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre_tokenizer = match pre.as_str() {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level]}),
        "gpt2" | "default" => byte_level,
        other => {
            return Err(Error::Unsupported(format!(
                "{file}: pre-tokenizer `{other}` (upcycle knows smollm and gpt2)"
            )))
        }
    };
    let add_bos = c
        .metadata
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let post = if add_bos {
        let bos = num(c, file, "tokenizer.ggml.bos_token_id")? as usize;
        let t = tokens.get(bos).cloned().unwrap_or_default();
        json!({"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
               "pair": [{"SpecialToken": {"id": t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
               "special_tokens": {t.clone(): {"id": t, "ids": [bos], "tokens": [t]}}})
    } else {
        Value::Null
    };
    Ok(json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": pre_tokenizer, "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    }))
}

/// Reads a dense LLaMA GGUF model, dequantised to f32.
pub fn read_gguf(path: &Path) -> Result<Dense> {
    let file = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    bounds::check_header(std::io::BufReader::new(&mut f), len)
        .map_err(|e| Error::Invalid(format!("{file}: not a readable GGUF file: {e}")))?;
    use std::io::Seek;
    f.rewind().map_err(|e| Error::io(path, e))?;
    let c = Content::read(&mut f).map_err(|e| {
        Error::Invalid(format!(
            "{file}: not a readable GGUF file: {}",
            candle_message(&e)
        ))
    })?;
    let arch = meta(&c, &file, "general.architecture")?
        .to_string()
        .map_err(|_| Error::Invalid(format!("{file}: general.architecture is not a string")))?
        .clone();
    if arch != "llama" {
        return Err(Error::Unsupported(format!(
            "{file}: architecture `{arch}`: upcycle reads llama models"
        )));
    }
    let n = |k: &str| num(&c, &file, &format!("llama.{k}"));
    let layers = n("block_count")? as usize;
    let d = n("embedding_length")? as usize;
    let ff = n("feed_forward_length")? as usize;
    let heads = n("attention.head_count")? as usize;
    let kv_heads = n("attention.head_count_kv").map_or(heads, |x| x as usize);
    let mut get = |name: &str| -> Result<Tensor> {
        c.tensor(&mut f, name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| Error::Invalid(format!("{file}: tensor `{name}`: {}", candle_message(&e))))
    };
    let mut t = HashMap::new();
    let embed = get("token_embd.weight")?;
    let vocab = embed.dim(0)?;
    t.insert("model.embed_tokens.weight".to_string(), embed);
    t.insert("model.norm.weight".to_string(), get("output_norm.weight")?);
    let tied = !c.tensor_infos.contains_key("output.weight");
    if !tied {
        t.insert("lm_head.weight".to_string(), get("output.weight")?);
    }
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        let b = |s: &str| format!("blk.{i}.{s}.weight");
        t.insert(format!("{p}.input_layernorm.weight"), get(&b("attn_norm"))?);
        t.insert(
            format!("{p}.post_attention_layernorm.weight"),
            get(&b("ffn_norm"))?,
        );
        t.insert(
            format!("{p}.self_attn.q_proj.weight"),
            unpermute(&get(&b("attn_q"))?, heads)?,
        );
        t.insert(
            format!("{p}.self_attn.k_proj.weight"),
            unpermute(&get(&b("attn_k"))?, kv_heads)?,
        );
        t.insert(format!("{p}.self_attn.v_proj.weight"), get(&b("attn_v"))?);
        t.insert(
            format!("{p}.self_attn.o_proj.weight"),
            get(&b("attn_output"))?,
        );
        t.insert(format!("{p}.mlp.gate_proj.weight"), get(&b("ffn_gate"))?);
        t.insert(format!("{p}.mlp.up_proj.weight"), get(&b("ffn_up"))?);
        t.insert(format!("{p}.mlp.down_proj.weight"), get(&b("ffn_down"))?);
    }
    let id = |k: &str| c.metadata.get(k).and_then(|v| v.to_u32().ok());
    let tokens = meta(&c, &file, "tokenizer.ggml.tokens")?.to_vec().ok();
    let token = |k: &str| -> Value {
        match (id(k), tokens) {
            (Some(i), Some(t)) => t
                .get(i as usize)
                .and_then(|v| v.to_string().ok())
                .map_or(Value::Null, |s| Value::String(s.clone())),
            _ => Value::Null,
        }
    };
    let tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token("tokenizer.ggml.bos_token_id"),
        "eos_token": token("tokenizer.ggml.eos_token_id"),
        "unk_token": token("tokenizer.ggml.unknown_token_id"),
        "pad_token": token("tokenizer.ggml.padding_token_id"),
        "add_bos_token": c.metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false),
        "chat_template": c.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned(),
    });
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": d, "intermediate_size": ff, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": d / heads,
        "vocab_size": vocab, "rms_norm_eps": n("attention.layer_norm_rms_epsilon")?,
        "rope_theta": n("rope.freq_base").unwrap_or(10000.0),
        "max_position_embeddings": n("context_length").map_or(2048, |x| x as usize),
        "tie_word_embeddings": tied, "hidden_act": "silu", "torch_dtype": "float32",
        "bos_token_id": id("tokenizer.ggml.bos_token_id"), "eos_token_id": id("tokenizer.ggml.eos_token_id"),
    });
    Ok(Dense {
        config,
        tokenizer: tokenizer_json(&c, &file)?,
        tokenizer_config,
        tensors: t,
        layers,
        intermediate: ff,
    })
}

/// Turns a dense model into a Mixtral-layout MoE (or returns it as is for [`Mode::Dense`]):
/// `(config.json, tensors)`.
pub fn upcycle(
    dense: Dense,
    experts: usize,
    top_k: usize,
    mode: Mode,
) -> Result<(Value, HashMap<String, Tensor>)> {
    if mode == Mode::Dense {
        return Ok((dense.config, dense.tensors));
    }
    if experts < 2 || top_k == 0 || top_k > experts {
        return Err(Error::Invalid(format!(
            "--experts {experts} --top-k {top_k}: need at least 2 experts and 1 ≤ k ≤ experts"
        )));
    }
    let ff = dense.intermediate;
    if !ff.is_multiple_of(experts) {
        return Err(Error::Invalid(format!(
            "--experts {experts}: the FFN size {ff} does not split evenly"
        )));
    }
    let slice = ff / experts;
    let mut t = dense.tensors;
    for i in 0..dense.layers {
        let p = format!("model.layers.{i}");
        let take = |t: &mut HashMap<String, Tensor>, k: &str| {
            t.remove(&format!("{p}.mlp.{k}.weight"))
                .ok_or_else(|| Error::Invalid(format!("layer {i}: no {k}")))
        };
        let gate = take(&mut t, "gate_proj")?;
        let up = take(&mut t, "up_proj")?;
        let down = take(&mut t, "down_proj")?;
        let norm = t
            .get(&format!("{p}.post_attention_layernorm.weight"))
            .ok_or_else(|| Error::Invalid(format!("layer {i}: no post-attention norm")))?
            .clone();
        // router row e: the mean gate row of neuron slice e, scaled to the logit spread
        let mut rows = Vec::with_capacity(experts);
        for e in 0..experts {
            let r = gate.narrow(0, e * slice, slice)?.mean(0)?;
            let spread = r.mul(&norm)?.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64;
            rows.push((r * (SPLIT_ROUTER_STD / spread.max(1e-12)))?);
        }
        let router = Tensor::stack(&rows, 0)?;
        let m = format!("{p}.block_sparse_moe");
        t.insert(format!("{m}.gate.weight"), router);
        for e in 0..experts {
            let (w1, w3, w2) = match mode {
                Mode::Copy => (gate.clone(), up.clone(), down.clone()),
                _ => (
                    gate.narrow(0, e * slice, slice)?.contiguous()?,
                    up.narrow(0, e * slice, slice)?.contiguous()?,
                    (down.narrow(1, e * slice, slice)?.contiguous()? * top_k as f64)?,
                ),
            };
            t.insert(format!("{m}.experts.{e}.w1.weight"), w1);
            t.insert(format!("{m}.experts.{e}.w3.weight"), w3);
            t.insert(format!("{m}.experts.{e}.w2.weight"), w2);
        }
    }
    let mut cfg = dense.config;
    if let Some(o) = cfg.as_object_mut() {
        o.insert("architectures".into(), json!(["MixtralForCausalLM"]));
        o.insert("model_type".into(), json!("mixtral"));
        o.insert("num_local_experts".into(), json!(experts));
        o.insert("num_experts_per_tok".into(), json!(top_k));
        o.insert(
            "intermediate_size".into(),
            json!(if mode == Mode::Copy { ff } else { slice }),
        );
        o.insert("router_aux_loss_coef".into(), json!(0.0));
        o.insert("moecap_upcycle".into(), json!({"mode": if mode == Mode::Copy { "copy" } else { "split" }, "experts": experts, "top_k": top_k}));
    }
    Ok((cfg, t))
}
