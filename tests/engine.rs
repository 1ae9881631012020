//! Engine loading (single file, sharded, Hugging Face cache layout, synthetic), its errors, the
//! `logits`/`generate`/`synth` commands, and the loop from the probe's records to `metrics`
//! (text prompts and sampling: `tests/generate.rs`).

mod common;
use common::max_abs;

use candle_core::{DType, Device, Tensor};
use moecap::engine::loader::load_model;
use moecap::engine::{Engine, LogitsMode};
use moecap::model::source::{find_in_hub_cache, Checkpoint};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(family)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-engine-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn logits_of(dir: &Path, ids: &[u32]) -> Tensor {
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

fn moecap(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moecap"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

const IDS: [u32; 5] = [5, 17, 99, 3, 42];

#[test]
fn sharded_checkpoint_gives_the_same_logits() {
    let src = fixture("qwen2_moe");
    let all = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let dir = tmpdir("sharded");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 3);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let t: HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        candle_core::safetensors::save(&t, dir.join(file)).unwrap();
        for n in part {
            map.insert((*n).clone(), file.into());
        }
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    let err = max_abs(&logits_of(&src, &IDS), &logits_of(&dir, &IDS));
    assert_eq!(err, 0.0);
}

#[test]
fn hub_cache_layout_is_found_without_network() {
    let cache = tmpdir("hub");
    let snap = cache.join("models--tiny--mixtral/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("mixtral").join(f), snap.join(f)).unwrap();
    }
    std::fs::create_dir_all(cache.join("models--tiny--mixtral/refs")).unwrap();
    std::fs::write(cache.join("models--tiny--mixtral/refs/main"), "0123abcd").unwrap();
    assert_eq!(
        find_in_hub_cache(&cache, "tiny/mixtral"),
        Some(snap.clone())
    );
    assert_eq!(find_in_hub_cache(&cache, "tiny/other"), None);
    let c = cache.to_str().unwrap();
    let out = moecap(
        &[
            "generate",
            "--model",
            "tiny/mixtral",
            "--input-ids",
            "5,17,99",
            "--max-new-tokens",
            "3",
            "--json",
        ],
        &[("HF_HUB_CACHE", c)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = moecap(
        &["generate", "--model", "tiny/absent", "--input-ids", "5"],
        &[("HF_HUB_CACHE", c)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not in the local Hugging Face cache"),
        "{err}"
    );
}

#[test]
fn broken_checkpoints_name_the_tensor_and_file() {
    let src = fixture("mixtral");
    let all = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let load = |dir: &Path| {
        Checkpoint::resolve(dir.to_str().unwrap())
            .and_then(|ck| load_model(&ck, &Device::Cpu, DType::F32, 0))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    // missing tensor
    let dir = tmpdir("missing");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut t = all.clone();
    t.remove("model.layers.1.block_sparse_moe.experts.3.w2.weight");
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let e = load(&dir);
    assert!(
        e.contains("model.layers.1.block_sparse_moe.experts.3.w2.weight") && e.contains("missing"),
        "{e}"
    );
    // wrong shape
    let mut t = all.clone();
    t.insert(
        "model.layers.0.self_attn.k_proj.weight".into(),
        Tensor::zeros((3, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let e = load(&dir);
    assert!(
        e.contains("model.safetensors") && e.contains("k_proj") && e.contains("[3, 32]"),
        "{e}"
    );
    // truncated
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() - 10]).unwrap();
    let e = load(&dir);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
    // no weights at all
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(load(&dir).contains("no safetensors"));
    // an architecture the engine does not run yet
    let out = moecap(
        &[
            "synth",
            "--like",
            "dbrx",
            "--hidden",
            "64",
            "--heads",
            "4",
            "--layers",
            "1",
            "--vocab",
            "64",
            "--out",
            dir.join("dbrx").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(load(&dir.join("dbrx")).contains("does not run DbrxForCausalLM"));
}

#[test]
fn synthetic_models_are_seeded_and_match_their_written_copy() {
    let dir = tmpdir("synth");
    let d = dir.join("ckpt");
    let out = moecap(
        &[
            "synth",
            "--like",
            "tiny-qwen2-moe",
            "--seed",
            "7",
            "--out",
            d.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mem = |seed: u64| {
        let m = load_model(
            &Checkpoint::resolve("synthetic:tiny-qwen2-moe").unwrap(),
            &Device::Cpu,
            DType::F32,
            seed,
        )
        .unwrap();
        let mut e = Engine::new(m, false);
        let mut s = e.new_sequence();
        e.forward(&mut [&mut s], &[IDS.to_vec()], LogitsMode::All)
            .unwrap()
            .remove(0)
    };
    let a = mem(7);
    assert_eq!(max_abs(&a, &logits_of(&d, &IDS)), 0.0);
    assert!(max_abs(&a, &mem(8)) > 1e-3);
    // the written copy passes the tensor check
    let out = moecap(&["inspect", "--model", d.to_str().unwrap()], &[]);
    assert!(out.status.success());
}

#[test]
fn logits_command_writes_reference_shaped_file() {
    let dir = tmpdir("logits");
    let exp = candle_core::safetensors::load(
        fixture("mixtral").with_extension("expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let ids: Vec<Vec<i64>> = (0..2)
        .map(|b| exp[&format!("input_ids.{b}")].to_vec1::<i64>().unwrap())
        .collect();
    let arg = ids
        .iter()
        .map(|s| {
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(";");
    let f = dir.join("out.safetensors");
    let out = moecap(
        &[
            "logits",
            "--model",
            fixture("mixtral").to_str().unwrap(),
            "--input-ids",
            &arg,
            "--output",
            f.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = candle_core::safetensors::load(&f, &Device::Cpu).unwrap();
    assert_eq!(got["logits"].dims(), &[2, 11, 128]);
    assert_eq!(got["lengths"].to_vec1::<i64>().unwrap(), vec![7, 11]);
    let l0 = got["logits"].get(0).unwrap().narrow(0, 0, 7).unwrap();
    assert!(max_abs(&l0, &exp["logits.0"]) < 1e-4);
    let pad = got["logits"].get(0).unwrap().narrow(0, 7, 4).unwrap();
    assert_eq!(
        pad.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    for l in 0..3 {
        let ids = got[&format!("topk_ids.{l}")].get(1).unwrap();
        assert_eq!(
            ids.to_vec2::<i64>().unwrap(),
            exp[&format!("topk_ids.1.{l}")].to_vec2::<i64>().unwrap()
        );
        let padded = got[&format!("topk_ids.{l}")]
            .get(0)
            .unwrap()
            .to_vec2::<i64>()
            .unwrap();
        assert_eq!(padded[7], vec![-1, -1]);
        assert_eq!(got[&format!("topk_weights.{l}")].dims(), &[2, 11, 2]);
    }
}

#[test]
fn generate_records_feed_metrics() {
    let dir = tmpdir("records");
    let rec = dir.join("records.jsonl");
    let out = moecap(
        &[
            "generate",
            "--model",
            "synthetic:tiny-mixtral",
            "--input-ids",
            "1,2,3,4;5,6",
            "--max-new-tokens",
            "5",
            "--ignore-eos",
            "--records",
            rec.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["generated_ids"].as_array().unwrap().len(), 2);
    assert_eq!(v["generated_ids"][0].as_array().unwrap().len(), 5);
    assert!(v["routing"][1]["mean_activated_experts"].as_f64().unwrap() >= 2.0);
    let text = std::fs::read_to_string(&rec).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5); // one prefill, four decode steps
    assert_eq!(lines[0]["phase"], "prefill");
    assert_eq!(lines[0]["new_tokens"], serde_json::json!([4, 2]));
    assert_eq!(lines[1]["cached_tokens"], serde_json::json!([4, 2]));
    assert_eq!(lines[4]["phase"], "decode");
    assert_eq!(lines[0]["topk"]["0"]["ids"].as_array().unwrap().len(), 6);
    assert_eq!(lines[0]["timing"]["layers"].as_array().unwrap().len(), 4);
    assert!(lines[0]["latency_s"].as_f64().unwrap() > 0.0);
    // region times are non-negative and fit inside the pass
    for l in &lines {
        let t = &l["timing"];
        let mut sum = t["embed_s"].as_f64().unwrap() + t["head_s"].as_f64().unwrap();
        for layer in t["layers"].as_array().unwrap() {
            for k in [
                "attention_s",
                "router_s",
                "experts_s",
                "shared_s",
                "other_s",
            ] {
                let v = layer[k].as_f64().unwrap();
                assert!(v >= 0.0, "{k} {v}");
                sum += v;
            }
        }
        assert!(sum <= l["latency_s"].as_f64().unwrap(), "{sum} > latency");
    }
    // the records are what `metrics` reads
    let cfg = dir.join("cfg");
    let out = moecap(
        &[
            "synth",
            "--like",
            "tiny-mixtral",
            "--out",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success());
    let out = moecap(
        &[
            "metrics",
            "--records",
            rec.to_str().unwrap(),
            "--model",
            cfg.to_str().unwrap(),
            "--hardware",
            "EPYC-9654",
            "--dtype",
            "f32",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["decode"]["passes"], 4);
    assert_eq!(m["prefill"]["tokens"], 6.0);
    assert!(m["decode"]["s_mbu"].as_f64().unwrap() > 0.0);
}

#[test]
fn inspect_finds_every_tensor_of_every_reference_checkpoint() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 12, "{dirs:?}");
    for d in &dirs {
        let desc = moecap::model::config::load_config(&d.join("config.json")).unwrap();
        let check = moecap::model::tensors::check_checkpoint(&desc, d)
            .unwrap()
            .unwrap();
        assert!(check.ok(), "{}: {check:?}", d.display());
    }
}

#[test]
fn latent_attention_records_name_their_cache() {
    let dir = fixture("deepseek_v3");
    let m = load_model(
        &Checkpoint::resolve(dir.to_str().unwrap()).unwrap(),
        &Device::Cpu,
        DType::F32,
        0,
    )
    .unwrap();
    let mut e = Engine::new(m, true);
    let mut s = e.new_sequence();
    e.forward(&mut [&mut s], &[IDS.to_vec()], LogitsMode::Last)
        .unwrap();
    e.forward(&mut [&mut s], &[vec![7]], LogitsMode::Last)
        .unwrap();
    let recs = e.take_records();
    assert!(recs
        .iter()
        .all(|r| r.pass.kv_cache == Some(moecap::records::KvCacheKind::MlaLatent)));
    // metrics counts the latent cache by default: KV bytes of the decode pass read 5 cached
    // tokens and write 1, each (kv_lora_rank 16 + rope 4) × 3 layers × 4 bytes
    let out = tmpdir("mla-records").join("r.jsonl");
    moecap::records::append_records(&out, &recs).unwrap();
    let o = moecap(
        &[
            "metrics",
            "--records",
            out.to_str().unwrap(),
            "--model",
            dir.to_str().unwrap(),
            "--hardware",
            "H100-SXM",
            "--dtype",
            "f32",
            "--json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kv_cache"], "mla_latent");
    assert_eq!(
        v["decode"]["kv_bytes"].as_f64().unwrap(),
        (6 * 20 * 3 * 4) as f64
    );
}

#[test]
fn queued_generation_gives_each_prompt_the_tokens_of_a_batch_run() {
    use moecap::engine::generate::{generate, generate_queued, GenerateParams};
    use moecap::engine::sampling::Sampler;
    let m = load_model(
        &Checkpoint::resolve(fixture("mixtral").to_str().unwrap()).unwrap(),
        &Device::Cpu,
        DType::F32,
        0,
    )
    .unwrap();
    let mut e = Engine::new(m, true);
    let prompts: Vec<Vec<u32>> = vec![
        vec![1, 2, 3],
        vec![7],
        vec![4, 9, 9, 2, 5, 6],
        vec![11, 3],
        vec![8, 8],
    ];
    // these tokens end a sequence, so answers finish at different steps and slots are refilled
    let params = || GenerateParams {
        max_new_tokens: 6,
        sampler: Sampler::Greedy,
        eos: vec![54, 94, 3, 28],
        stop: Vec::new(),
    };
    let whole = generate(&mut e, &prompts, &mut params(), None).unwrap();
    let lens: Vec<usize> = whole.iter().map(|w| w.generated_ids.len()).collect();
    assert_eq!(lens, vec![1, 3, 6, 3, 1], "{whole:?}");
    for slots in [1, 2, 3, 5, 9] {
        let mut got = vec![None; prompts.len()];
        let mut order = Vec::new();
        generate_queued(
            &mut e,
            &prompts,
            slots,
            &mut params(),
            None,
            &mut |_, i, o| {
                order.push(i);
                got[i] = Some(o.generated_ids);
                Ok(())
            },
        )
        .unwrap();
        for (i, w) in whole.iter().enumerate() {
            assert_eq!(
                got[i].as_ref(),
                Some(&w.generated_ids),
                "slots {slots}, prompt {i}"
            );
        }
        order.sort_unstable();
        assert_eq!(order, (0..prompts.len()).collect::<Vec<_>>(), "each once");
    }
    // no pass holds more sequences than the slots
    e.take_records();
    generate_queued(&mut e, &prompts, 2, &mut params(), None, &mut |_, _, _| {
        Ok(())
    })
    .unwrap();
    let recs = e.take_records();
    assert!(recs.iter().all(|r| r.pass.new_tokens.len() <= 2));
    assert!(recs.len() > 2);
}
