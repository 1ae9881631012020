//! `moecap upcycle` on a tiny LLaMA written as GGUF the way llama.cpp writes one (q/k rows
//! permuted, byte-level BPE vocabulary in the metadata): the dense conversion reproduces the
//! original model's logits, `copy` reproduces the dense model exactly, `split` with k = E
//! closely and with k < E not, and the tokenizer round-trips text.

mod common;
use common::max_abs;

use candle_core::quantized::gguf_file::{self, Value as G};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use moecap::engine::loader::load_model;
use moecap::engine::{Engine, LogitsMode};
use moecap::model::source::Checkpoint;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const D: usize = 32;
const FF: usize = 48;
const HEADS: usize = 4;
const KV: usize = 2;
const LAYERS: usize = 2;

/// GPT-2's byte → printable character map.
fn byte_chars() -> Vec<char> {
    let mut keep: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = keep.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !keep.contains(&b) {
            keep.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut map = vec![' '; 256];
    for (b, c) in keep.iter().zip(chars) {
        map[*b as usize] = char::from_u32(c).unwrap();
    }
    map
}

/// llama.cpp's permutation of q/k rows (convert_hf_to_gguf `permute`).
fn llama_cpp_permute(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    w.reshape((heads, 2, out / heads / 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((out, inp))
        .unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-upcycle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the reference model (Hugging Face layout) and its GGUF; returns the vocabulary size.
fn write_models(hf: &Path, gguf: &Path) -> usize {
    let bc = byte_chars();
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    tokens.extend(bc.iter().map(|c| c.to_string()));
    let g = bc[b' ' as usize];
    let merges = [format!("{g} t"), "h e".to_string(), format!("{g}t he")];
    tokens.extend([format!("{g}t"), "he".into(), format!("{g}the")]);
    let vocab = tokens.len();
    let dev = Device::Cpu;
    let r = |shape: (usize, usize)| Tensor::randn(0f32, 0.3, shape, &dev).unwrap();
    let ones = |n: usize| Tensor::rand(0.8f32, 1.2, n, &dev).unwrap();
    let mut hf_t: HashMap<String, Tensor> = HashMap::new();
    let mut gg: Vec<(String, Tensor)> = Vec::new();
    let embed = r((vocab, D));
    hf_t.insert("model.embed_tokens.weight".into(), embed.clone());
    gg.push(("token_embd.weight".into(), embed));
    let norm = ones(D);
    hf_t.insert("model.norm.weight".into(), norm.clone());
    gg.push(("output_norm.weight".into(), norm));
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        let hd = D / HEADS;
        let parts: Vec<(&str, &str, Tensor, Option<usize>)> = vec![
            ("input_layernorm", "attn_norm", ones(D), None),
            ("post_attention_layernorm", "ffn_norm", ones(D), None),
            (
                "self_attn.q_proj",
                "attn_q",
                r((HEADS * hd, D)),
                Some(HEADS),
            ),
            ("self_attn.k_proj", "attn_k", r((KV * hd, D)), Some(KV)),
            ("self_attn.v_proj", "attn_v", r((KV * hd, D)), None),
            ("self_attn.o_proj", "attn_output", r((D, HEADS * hd)), None),
            ("mlp.gate_proj", "ffn_gate", r((FF, D)), None),
            ("mlp.up_proj", "ffn_up", r((FF, D)), None),
            ("mlp.down_proj", "ffn_down", r((D, FF)), None),
        ];
        for (h, gname, t, perm) in parts {
            hf_t.insert(format!("{p}.{h}.weight"), t.clone());
            let t = match perm {
                Some(h) => llama_cpp_permute(&t, h),
                None => t,
            };
            gg.push((format!("blk.{i}.{gname}.weight"), t));
        }
    }
    let cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": D, "intermediate_size": FF,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV,
        "vocab_size": vocab, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
        "max_position_embeddings": 256, "eos_token_id": 2
    });
    let tok = moecap::model::tokenizer::synthetic_tokenizer_json(vocab);
    moecap::engine::io::write_checkpoint(hf, &cfg, &hf_t, &tok, &[], true).unwrap();
    let q: Vec<(String, QTensor)> = gg
        .iter()
        .map(|(n, t)| (n.clone(), QTensor::quantize(t, GgmlDType::F32).unwrap()))
        .collect();
    let s = |x: &str| G::String(x.into());
    let meta: Vec<(&str, G)> = vec![
        ("general.architecture", s("llama")),
        ("llama.block_count", G::U32(LAYERS as u32)),
        ("llama.embedding_length", G::U32(D as u32)),
        ("llama.feed_forward_length", G::U32(FF as u32)),
        ("llama.attention.head_count", G::U32(HEADS as u32)),
        ("llama.attention.head_count_kv", G::U32(KV as u32)),
        ("llama.rope.freq_base", G::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", G::F32(1e-5)),
        ("llama.context_length", G::U32(256)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("smollm")),
        (
            "tokenizer.ggml.tokens",
            G::Array(tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            G::Array(merges.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            G::Array(
                (0..vocab)
                    .map(|i| G::I32(if i < 3 { 3 } else { 1 }))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id", G::U32(1)),
        ("tokenizer.ggml.eos_token_id", G::U32(2)),
        ("tokenizer.ggml.add_bos_token", G::Bool(false)),
    ];
    let mut f = std::fs::File::create(gguf).unwrap();
    let meta_refs: Vec<(&str, &G)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (n.as_str(), t)).collect();
    gguf_file::write(&mut f, &meta_refs, &t_refs).unwrap();
    vocab
}

fn upcycle(gguf: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moecap"))
        .arg("upcycle")
        .arg("--from")
        .arg(gguf)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

fn logits(dir: &Path, ids: &[u32]) -> Tensor {
    let m = load_model(
        &Checkpoint::resolve(dir.to_str().unwrap()).unwrap(),
        &Device::Cpu,
        DType::F32,
        0,
    )
    .unwrap();
    let mut e = Engine::new(m, false);
    let mut s = e.new_sequence();
    e.forward(&mut [&mut s], &[ids.to_vec()], LogitsMode::All)
        .unwrap()
        .remove(0)
}

#[test]
fn upcycled_models_against_the_dense_original() {
    let dir = tmpdir("models");
    let gguf = dir.join("tiny.gguf");
    let vocab = write_models(&dir.join("original"), &gguf);
    let ids: Vec<u32> = (0..9).map(|i| (5 + 7 * i) as u32 % vocab as u32).collect();
    let want = logits(&dir.join("original"), &ids);
    let run = |name: &str, args: &[&str]| {
        let o = upcycle(&gguf, &dir.join(name), args);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        logits(&dir.join(name), &ids)
    };
    let dense = run("dense", &["--mode", "dense"]);
    assert!(
        max_abs(&dense, &want) < 1e-4,
        "GGUF q/k rows are un-permuted"
    );
    let copy = run(
        "copy",
        &["--mode", "copy", "--experts", "4", "--top-k", "2"],
    );
    assert!(
        max_abs(&copy, &want) < 1e-4,
        "identical experts, renormalised weights"
    );
    let all = run(
        "split-all",
        &["--mode", "split", "--experts", "4", "--top-k", "4"],
    );
    let half = run(
        "split-half",
        &["--mode", "split", "--experts", "4", "--top-k", "2"],
    );
    let scale = want
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let e_all = max_abs(&all, &want);
    let e_half = max_abs(&half, &want);
    assert!(
        e_all < 0.01 * scale,
        "k = E is the dense model up to the router's spread: {e_all} of {scale}"
    );
    assert!(
        e_half > 2.0 * e_all,
        "k < E drops neurons: {e_half} vs {e_all}"
    );
    // the experts are the dense FFN's slices
    let st = candle_core::safetensors::load(dir.join("split-half/model.safetensors"), &Device::Cpu)
        .unwrap();
    let orig = candle_core::safetensors::load(dir.join("original/model.safetensors"), &Device::Cpu)
        .unwrap();
    let w1 = &st["model.layers.1.block_sparse_moe.experts.3.w1.weight"];
    let gate = orig["model.layers.1.mlp.gate_proj.weight"]
        .narrow(0, 36, 12)
        .unwrap();
    assert_eq!(max_abs(w1, &gate), 0.0);
    // the tokenizer: special tokens named, specials whole, merges applied, text round-trips
    let tc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("copy/tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (tc["bos_token"].as_str(), tc["eos_token"].as_str()),
        (Some("<|im_start|>"), Some("<|im_end|>"))
    );
    let codec = moecap::model::tokenizer::TextCodec::from_dir(&dir.join("copy"))
        .unwrap()
        .unwrap();
    let ids = codec.encode("<|im_start|>the the12").unwrap();
    assert_eq!(ids[0], 1, "special tokens are not split");
    assert!(
        ids.contains(&(vocab as u32 - 1)),
        "` the` is merged into one token: {ids:?}"
    );
    assert_eq!(
        codec.decode(&codec.encode("a b  c 42!").unwrap()).unwrap(),
        "a b  c 42!"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_upcycle_arguments() {
    let dir = tmpdir("bad");
    let gguf = dir.join("tiny.gguf");
    write_models(&dir.join("original"), &gguf);
    for (args, needle) in [
        (
            vec!["--experts", "5", "--mode", "split"],
            "does not split evenly",
        ),
        (vec!["--experts", "4", "--top-k", "5"], "1 ≤ k ≤ experts"),
    ] {
        let o = upcycle(&gguf, &dir.join("x"), &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    std::fs::write(dir.join("junk.gguf"), b"not a gguf").unwrap();
    let o = upcycle(&dir.join("junk.gguf"), &dir.join("x"), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("junk.gguf") && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
