//! The safetensors cross-check on checkpoints written here: single file, sharded with an index,
//! missing / unexpected / wrong-shape tensors, truncated files, fp8 scales and MTP layers.

use moecap::model::config::parse_config;
use moecap::model::tensors::{check_checkpoint, expected_tensors, TensorSpec};
use std::path::{Path, PathBuf};

const TINY: &str = r#"{"architectures":["MixtralForCausalLM"],"hidden_size":16,"num_hidden_layers":2,
  "num_attention_heads":2,"num_key_value_heads":1,"vocab_size":10,"intermediate_size":4,
  "num_local_experts":4,"num_experts_per_tok":2}"#;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a safetensors file of zero-filled F32 tensors; `truncate` drops bytes from the end.
fn write_safetensors(path: &Path, tensors: &[TensorSpec], truncate: usize) {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend(std::iter::repeat_n(0u8, offset - truncate));
    std::fs::write(path, out).unwrap();
}

#[test]
fn single_file_matches() {
    let d = parse_config(TINY, "tiny").unwrap();
    let dir = tmpdir("single");
    write_safetensors(&dir.join("model.safetensors"), &expected_tensors(&d), 0);
    let c = check_checkpoint(&d, &dir).unwrap().unwrap();
    assert!(c.ok(), "{c:?}");
    assert_eq!(c.tensors_found, c.tensors_expected);
    assert_eq!(c.dtypes["F32"], c.tensors_found);
}

#[test]
fn reports_missing_unexpected_and_wrong_shapes() {
    let d = parse_config(TINY, "tiny").unwrap();
    let mut t = expected_tensors(&d);
    let removed = t.remove(3).0;
    t.push(("model.layers.0.mlp.extra.weight".into(), vec![2, 2]));
    let i = t
        .iter()
        .position(|(n, _)| n == "model.layers.1.block_sparse_moe.experts.2.w2.weight")
        .unwrap();
    t[i].1 = vec![4, 16];
    let dir = tmpdir("bad");
    write_safetensors(&dir.join("model.safetensors"), &t, 0);
    let c = check_checkpoint(&d, &dir).unwrap().unwrap();
    assert!(!c.ok());
    assert_eq!(c.missing.len(), 1);
    assert!(c.missing[0].starts_with(&removed));
    assert_eq!(c.unexpected.len(), 1);
    assert!(c.unexpected[0].contains("mlp.extra"));
    assert_eq!(c.mismatched.len(), 1);
    assert!(
        c.mismatched[0].contains("expected [16, 4], found [4, 16]"),
        "{:?}",
        c.mismatched
    );
}

#[test]
fn sharded_checkpoint_with_index() {
    let d = parse_config(TINY, "tiny").unwrap();
    let t = expected_tensors(&d);
    let (a, b) = t.split_at(t.len() / 2);
    let dir = tmpdir("sharded");
    write_safetensors(&dir.join("model-00001-of-00002.safetensors"), a, 0);
    write_safetensors(&dir.join("model-00002-of-00002.safetensors"), b, 0);
    let mut map = serde_json::Map::new();
    for (n, _) in a {
        map.insert(n.clone(), "model-00001-of-00002.safetensors".into());
    }
    for (n, _) in b {
        map.insert(n.clone(), "model-00002-of-00002.safetensors".into());
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string(&index).unwrap(),
    )
    .unwrap();
    let c = check_checkpoint(&d, &dir).unwrap().unwrap();
    assert!(c.ok(), "{c:?}");
    assert_eq!(c.files.len(), 2);
    // an index naming a shard that is not there
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let e = check_checkpoint(&d, &dir).unwrap_err().to_string();
    assert!(
        e.contains("model-00002-of-00002.safetensors") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn truncated_and_malformed_files_are_errors() {
    let d = parse_config(TINY, "tiny").unwrap();
    let dir = tmpdir("trunc");
    write_safetensors(&dir.join("model.safetensors"), &expected_tensors(&d), 100);
    let e = check_checkpoint(&d, &dir).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
    std::fs::write(dir.join("model.safetensors"), b"abc").unwrap();
    let e = check_checkpoint(&d, &dir).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    let empty = tmpdir("empty");
    assert!(check_checkpoint(&d, &empty).unwrap().is_none());
}

#[test]
fn fp8_scales_and_mtp_layers_are_set_aside() {
    let cfg = r#"{"architectures":["DeepseekV3ForCausalLM"],"hidden_size":16,"num_hidden_layers":2,
      "num_attention_heads":2,"vocab_size":10,"intermediate_size":8,"moe_intermediate_size":4,
      "n_routed_experts":4,"num_experts_per_tok":2,"n_shared_experts":1,"first_k_dense_replace":1,
      "kv_lora_rank":4,"q_lora_rank":6,"qk_nope_head_dim":4,"qk_rope_head_dim":2,"v_head_dim":4,
      "n_group":2,"topk_group":1,"num_nextn_predict_layers":1,
      "quantization_config":{"quant_method":"fp8","weight_block_size":[128,128]}}"#;
    let d = parse_config(cfg, "v3").unwrap();
    let mut t = expected_tensors(&d);
    assert!(t
        .iter()
        .any(|(n, _)| n == "model.layers.1.mlp.gate.e_score_correction_bias"));
    assert!(t
        .iter()
        .any(|(n, _)| n == "model.layers.0.self_attn.q_a_layernorm.weight"));
    t.push((
        "model.layers.1.mlp.experts.0.up_proj.weight_scale_inv".into(),
        vec![1, 1],
    ));
    t.push(("model.layers.2.eh_proj.weight".into(), vec![16, 32]));
    let dir = tmpdir("v3");
    write_safetensors(&dir.join("model.safetensors"), &t, 0);
    let c = check_checkpoint(&d, &dir).unwrap().unwrap();
    assert!(c.ok(), "{c:?}");
    assert_eq!(c.ignored, 2);
}
