//! Config parsing for every architecture, parameter counts against checked facts, layer kinds,
//! accepted spellings, and every config error path.

use moecap::model::config::parse_config;
use moecap::model::descriptor::{Attention, Family, Ffn, Layer, QkNorm, Scoring};
use moecap::model::params::{model_params, LayerParams};
use moecap::model::presets::{find_preset, preset_desc, PRESETS};
use moecap::model::tensors::expected_tensors;

fn preset(name: &str) -> moecap::model::descriptor::ModelDesc {
    preset_desc(find_preset(name).expect("preset exists")).expect("preset parses")
}

#[test]
fn checked_parameter_facts() {
    let m = preset("mixtral-8x7b");
    let p = model_params(&m);
    assert_eq!(p.total(), 46_702_792_704);
    assert_eq!(p.active_per_token(&m), 12_879_925_248);
    assert_eq!(
        model_params(&preset("qwen1.5-moe-a2.7b")).total(),
        14_315_784_192
    );
    assert_eq!(
        model_params(&preset("deepseek-v2-lite")).total(),
        15_706_484_224
    );
}

#[test]
fn hand_computed_totals_of_the_other_presets() {
    // Each computed by hand from the config (see docs/metrics.md, "parameter counts").
    for (name, total) in [
        ("mixtral-8x22b", 140_620_634_112u64),
        ("qwen2-57b-a14b", 57_408_658_944),
        ("qwen3-30b-a3b", 30_532_122_624),
        ("qwen3-235b-a22b", 235_093_634_560),
        ("deepseek-moe-16b", 16_375_728_128),
        ("deepseek-v2", 235_741_434_880),
        ("deepseek-v3", 671_026_419_200),
        ("olmoe-1b-7b", 6_919_161_856),
        ("dbrx", 131_596_523_520),
    ] {
        assert_eq!(model_params(&preset(name)).total(), total, "{name}");
    }
}

/// `P_att,l` by the closed-form formulas of docs/metrics.md (independent of the tensor plan).
fn closed_form_attention(att: &Attention, d: u64) -> u64 {
    match *att {
        Attention::Gqa {
            heads,
            kv_heads,
            head_dim,
            qkv_bias,
            o_bias,
            qk_norm,
        } => {
            let q = (heads * head_dim) as u64;
            let kv = (kv_heads * head_dim) as u64;
            let mut p = d * q + 2 * d * kv + q * d;
            if qkv_bias {
                p += q + 2 * kv;
            }
            if o_bias {
                p += d;
            }
            p += match qk_norm {
                QkNorm::None => 0,
                QkNorm::PerHead => 2 * head_dim as u64,
                QkNorm::Full => q + kv,
            };
            p
        }
        Attention::Mla {
            heads,
            q_lora_rank,
            kv_lora_rank,
            qk_nope_head_dim,
            qk_rope_head_dim,
            v_head_dim,
            bias,
            ..
        } => {
            let h = heads as u64;
            let qk = (qk_nope_head_dim + qk_rope_head_dim) as u64;
            let r_kv = kv_lora_rank as u64;
            let rope = qk_rope_head_dim as u64;
            let v = v_head_dim as u64;
            let q = match q_lora_rank {
                Some(r) => {
                    let r = r as u64;
                    // q_a_proj, q_a_layernorm, q_b_proj
                    d * r + r + r * h * qk + if bias { r } else { 0 }
                }
                None => d * h * qk,
            };
            // kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj
            let kv_a = d * (r_kv + rope) + if bias { r_kv + rope } else { 0 };
            let kv_b = r_kv * h * (qk_nope_head_dim as u64 + v);
            let o = h * v * d + if bias { d } else { 0 };
            q + kv_a + r_kv + kv_b + o
        }
    }
}

/// One layer's parameters by the closed-form formulas.
fn closed_form_layer(layer: &Layer, d: u64) -> LayerParams {
    let mut p = LayerParams {
        attention: closed_form_attention(&layer.attention, d),
        norms: 2 * d,
        ..Default::default()
    };
    match &layer.ffn {
        Ffn::Dense {
            intermediate_size,
            bias,
        } => {
            let f = *intermediate_size as u64;
            p.dense_ffn = 3 * d * f + if *bias { 2 * f + d } else { 0 };
        }
        Ffn::Moe(m) => {
            let e = m.num_experts as u64;
            p.router = e * d + if m.router.correction_bias { e } else { 0 };
            p.expert = 3 * d * m.expert_intermediate_size as u64;
            p.routed_experts = e * p.expert;
            if let Some(s) = &m.shared {
                p.shared_experts = 3 * d * s.intermediate_size as u64 + if s.gate { d } else { 0 };
            }
        }
    }
    p
}

#[test]
fn tensor_list_and_parameter_counts_agree_for_every_preset() {
    assert_eq!(PRESETS.len(), 12);
    for p in PRESETS {
        let d = preset_desc(p).unwrap();
        let from_tensors: u64 = expected_tensors(&d)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum();
        assert_eq!(from_tensors, model_params(&d).total(), "{}", p.name);
        // the counts derived from the plan, component by component, against the closed forms
        let h = d.hidden_size as u64;
        for (l, got) in d.layers.iter().zip(&model_params(&d).layers) {
            assert_eq!(
                *got,
                closed_form_layer(l, h),
                "{} layer {}",
                p.name,
                l.index
            );
        }
        let names: std::collections::HashSet<_> =
            expected_tensors(&d).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names.len(),
            expected_tensors(&d).len(),
            "duplicate names in {}",
            p.name
        );
    }
}

#[test]
fn active_parameters_count_k_experts_plus_shared() {
    let d = preset("qwen1.5-moe-a2.7b");
    let p = model_params(&d);
    let l = &p.layers[0];
    // attention 4·2048² + qkv biases, router 60·2048, 4 experts of 3·2048·1408, shared MLP 3·2048·5632
    // plus its 2048×1 gate, two norms.
    let layer_active = 16_777_216 + 6_144 + 122_880 + 4 * 8_650_752 + 34_603_008 + 2_048 + 4_096;
    assert_eq!(l.active(4), layer_active);
    assert_eq!(
        p.active_per_token(&d),
        24 * layer_active + 2 * 151_936 * 2_048 + 2_048
    );
}

#[test]
fn per_layer_kinds_follow_the_checkpoint() {
    let v2l = preset("deepseek-v2-lite");
    assert!(matches!(
        v2l.layers[0].ffn,
        Ffn::Dense {
            intermediate_size: 10944,
            ..
        }
    ));
    assert!(v2l.layers[1..].iter().all(|l| l.moe().is_some()));
    let v3 = preset("deepseek-v3");
    assert_eq!(v3.num_moe_layers(), 58);
    assert!(v3.layers[..3].iter().all(|l| l.moe().is_none()));
    let r = &v3.first_moe().unwrap().router;
    assert_eq!(r.scoring, Scoring::Sigmoid);
    assert!(r.correction_bias && r.norm_topk_prob);
    assert_eq!((r.n_group, r.topk_group), (8, 4));
    assert_eq!(r.routed_scaling_factor, 2.5);
    assert_eq!(v3.mtp_layers, 1);
    assert!(matches!(
        v3.attention(),
        Attention::Mla {
            q_lora_rank: Some(1536),
            kv_lora_rank: 512,
            ..
        }
    ));
    assert!(matches!(
        v2l.attention(),
        Attention::Mla {
            q_lora_rank: None,
            ..
        }
    ));
    let v2 = preset("deepseek-v2");
    assert_eq!(
        v2.first_moe().unwrap().router.topk_method,
        "group_limited_greedy"
    );
    let q3 = preset("qwen3-30b-a3b");
    assert!(matches!(
        q3.attention(),
        Attention::Gqa {
            head_dim: 128,
            qk_norm: QkNorm::PerHead,
            qkv_bias: false,
            ..
        }
    ));
    let olmoe = preset("olmoe-1b-7b");
    assert!(matches!(
        olmoe.attention(),
        Attention::Gqa {
            qk_norm: QkNorm::Full,
            ..
        }
    ));
    let qwen = preset("qwen1.5-moe-a2.7b");
    let s = qwen.first_moe().unwrap().shared.clone().unwrap();
    assert!(s.gate && s.intermediate_size == 5632);
    assert!(matches!(
        qwen.attention(),
        Attention::Gqa {
            qkv_bias: true,
            o_bias: false,
            ..
        }
    ));
    let dbrx = preset("dbrx");
    assert_eq!(dbrx.family, Family::Dbrx);
    assert_eq!(dbrx.first_moe().unwrap().top_k, 4);
    assert_eq!(dbrx.rope.theta, 500000.0);
    let ds = preset("deepseek-moe-16b");
    assert!(matches!(ds.attention(), Attention::Gqa { .. }));
    assert_eq!(ds.first_moe().unwrap().shared.as_ref().unwrap().count, 2);
}

const TINY_QWEN: &str = r#"{
  "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 16, "num_hidden_layers": 6,
  "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": null, "vocab_size": 10,
  "intermediate_size": 12, "moe_intermediate_size": 4, "num_experts": 4, "num_experts_per_tok": 2,
  "decoder_sparse_step": 2, "mlp_only_layers": [3], "rope_parameters": {"rope_theta": 5000.0, "rope_type": "default"},
  "dtype": "bfloat16", "tie_word_embeddings": true
}"#;

#[test]
fn qwen_sparse_step_mlp_only_and_new_spellings() {
    let d = parse_config(TINY_QWEN, "tiny.json").unwrap();
    let kinds: Vec<bool> = d.layers.iter().map(|l| l.moe().is_some()).collect();
    // MoE where (i+1) % 2 == 0 and i not in mlp_only_layers
    assert_eq!(kinds, vec![false, true, false, false, false, true]);
    assert_eq!(d.rope.theta, 5000.0);
    assert_eq!(d.rope.scaling, None);
    assert_eq!(d.torch_dtype.as_deref(), Some("bfloat16"));
    assert!(d.tie_word_embeddings);
    assert!(matches!(d.attention(), Attention::Gqa { head_dim: 8, .. }));
    let p = model_params(&d);
    assert_eq!(p.lm_head, 0);
    // Tied: the tensor list has no lm_head and still sums to the total.
    let t = expected_tensors(&d);
    assert!(!t.iter().any(|(n, _)| n == "lm_head.weight"));
}

#[test]
fn deepseek_moe_layer_freq_and_old_rope_spelling() {
    let cfg = r#"{"architectures":["DeepseekForCausalLM"],"hidden_size":16,"num_hidden_layers":6,
      "num_attention_heads":2,"vocab_size":10,"intermediate_size":12,"moe_intermediate_size":4,
      "n_routed_experts":4,"num_experts_per_tok":2,"n_shared_experts":1,"first_k_dense_replace":1,
      "moe_layer_freq":2,"rope_theta":100.0,"rope_scaling":{"type":"linear","factor":2.0},
      "torch_dtype":"float32","attention_bias":true}"#;
    let d = parse_config(cfg, "ds.json").unwrap();
    let kinds: Vec<bool> = d.layers.iter().map(|l| l.moe().is_some()).collect();
    assert_eq!(kinds, vec![false, false, true, false, true, false]);
    assert_eq!(d.rope.scaling.as_deref(), Some("linear"));
    assert_eq!(d.rope.factor, Some(2.0));
    assert!(matches!(
        d.attention(),
        Attention::Gqa {
            qkv_bias: true,
            o_bias: true,
            ..
        }
    ));
}

#[test]
fn mixtral_accepts_num_experts_and_dense_llama_is_one_expert_case() {
    let cfg = r#"{"architectures":["MixtralForCausalLM"],"hidden_size":16,"num_hidden_layers":2,
      "num_attention_heads":2,"num_key_value_heads":2,"vocab_size":10,"intermediate_size":8,
      "num_experts":4,"num_experts_per_tok":1}"#;
    let d = parse_config(cfg, "m.json").unwrap();
    assert_eq!(d.first_moe().unwrap().num_experts, 4);
    let llama = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":16,"num_hidden_layers":2,
      "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10,"intermediate_size":8,
      "tie_word_embeddings":true,"mlp_bias":true}"#;
    let d = parse_config(llama, "l.json").unwrap();
    assert!(!d.is_moe());
    let p = model_params(&d);
    // attention 16·16 + 2·16·8 + 16·16 = 768; FFN 3·16·8 + biases 2·8 + 16 = 416; norms 32
    assert_eq!(p.layers[0].total(), 768 + 416 + 32);
    assert_eq!(p.total(), 2 * (768 + 416 + 32) + 160 + 16);
}

#[test]
fn quantization_config_is_read() {
    let d = preset("deepseek-v3");
    let q = d.quantization.as_ref().unwrap();
    assert_eq!((q.method.as_str(), q.bits), ("fp8", Some(8)));
}

fn err(cfg: &str) -> String {
    parse_config(cfg, "bad/config.json")
        .unwrap_err()
        .to_string()
}

#[test]
fn config_errors_name_file_and_field() {
    let e = err(r#"{"architectures":["GPT2LMHeadModel"]}"#);
    assert!(
        e.starts_with("bad/config.json:") && e.contains("GPT2LMHeadModel"),
        "{e}"
    );
    assert!(
        e.contains("MixtralForCausalLM") && e.contains("DbrxForCausalLM"),
        "{e}"
    );
    let e = err(r#"{"hidden_size": 4}"#);
    assert!(
        e.contains("`architectures`") && e.contains("supported"),
        "{e}"
    );
    let e = err("{not json");
    assert!(
        e.contains("bad/config.json") && e.contains("invalid JSON"),
        "{e}"
    );
    let e = err("[1,2]");
    assert!(e.contains("not a JSON object"), "{e}");
    let base = r#""architectures":["MixtralForCausalLM"],"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"intermediate_size":8,"num_local_experts":4,"num_experts_per_tok":2"#;
    let e = err(&format!("{{{base}}}"));
    assert!(e.contains("`hidden_size`") && e.contains("missing"), "{e}");
    let e = err(&format!("{{{base},\"hidden_size\":\"big\"}}"));
    assert!(e.contains("`hidden_size`") && e.contains("integer"), "{e}");
    let e = err(&format!("{{{base},\"hidden_size\":18}}"));
    assert!(e.contains("`head_dim`") && e.contains("divisible"), "{e}");
    let e = err(&format!(
        "{{{base},\"hidden_size\":16,\"num_key_value_heads\":3}}"
    ));
    assert!(e.contains("`num_key_value_heads`"), "{e}");
    let e = err(
        r#"{"architectures":["MixtralForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"intermediate_size":8,"num_local_experts":4,"num_experts_per_tok":5}"#,
    );
    assert!(
        e.contains("`num_experts_per_tok`") && e.contains("only 4 experts"),
        "{e}"
    );
    let e = err(
        r#"{"architectures":["Qwen2MoeForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"intermediate_size":8,"moe_intermediate_size":4,"num_experts":4,"num_experts_per_tok":2,"mlp_only_layers":[7]}"#,
    );
    assert!(
        e.contains("`mlp_only_layers`") && e.contains("layer 7"),
        "{e}"
    );
    let e = err(
        r#"{"architectures":["Qwen2MoeForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"moe_intermediate_size":4,"num_experts":4,"num_experts_per_tok":2,"decoder_sparse_step":2}"#,
    );
    assert!(
        e.contains("`intermediate_size`") && e.contains("dense layer"),
        "{e}"
    );
    let ds = r#""architectures":["DeepseekV3ForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"intermediate_size":8,"moe_intermediate_size":4,"n_routed_experts":8,"num_experts_per_tok":2,"kv_lora_rank":4,"qk_nope_head_dim":4,"qk_rope_head_dim":2,"v_head_dim":4"#;
    assert!(parse_config(&format!("{{{ds},\"n_group\":2,\"topk_group\":1}}"), "x").is_ok());
    let e = err(&format!("{{{ds},\"n_group\":2,\"topk_group\":3}}"));
    assert!(e.contains("`topk_group`"), "{e}");
    let e = err(&format!("{{{ds},\"n_group\":3,\"topk_group\":1}}"));
    assert!(e.contains("`n_group`"), "{e}");
    let e = err(&format!("{{{ds},\"scoring_func\":\"relu\"}}"));
    assert!(e.contains("`scoring_func`") && e.contains("relu"), "{e}");
    let e = err(&format!("{{{ds},\"first_k_dense_replace\":9}}"));
    assert!(e.contains("`first_k_dense_replace`"), "{e}");
    let e = err(
        r#"{"architectures":["DeepseekV2ForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"intermediate_size":8}"#,
    );
    assert!(e.contains("`kv_lora_rank`") && e.contains("missing"), "{e}");
    let e = err(
        r#"{"architectures":["DbrxForCausalLM"],"d_model":16,"n_layers":2,"n_heads":4,"vocab_size":10,"attn_config":{"kv_n_heads":2},"ffn_config":{"moe_num_experts":4,"moe_top_k":2}}"#,
    );
    assert!(e.contains("`ffn_config.ffn_hidden_size`"), "{e}");
    let e = err(
        r#"{"architectures":["LlamaForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"intermediate_size":8,"rope_theta":"fast"}"#,
    );
    assert!(e.contains("`rope_theta`"), "{e}");
    let e = err(
        r#"{"architectures":["LlamaForCausalLM"],"hidden_size":16,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10,"intermediate_size":8,"quantization_config":{"bits":4}}"#,
    );
    assert!(e.contains("`quantization_config.quant_method`"), "{e}");
}
