//! The engine against Hugging Face transformers on tiny random checkpoints of every family it
//! runs (DeepSeek-V2-Lite, V2 and V3 with latent attention among them), and of the rope scaling
//! types linear, llama3 and yarn (tests/fixtures/reference, written
//! by scripts/reference-fixtures.sh): full logits within
//! 1e-4, identical routing ids, combine weights, identical 12-token greedy continuations (which
//! exercise the KV cache), and batch invariance.

mod common;
use common::max_abs;

use candle_core::{DType, Device, Tensor};
use moecap::engine::generate::{generate, GenerateParams};
use moecap::engine::loader::load_model;
use moecap::engine::sampling::Sampler;
use moecap::engine::{Engine, LogitsMode};
use moecap::model::source::Checkpoint;
use std::collections::HashMap;
use std::path::PathBuf;

const FAMILIES: [&str; 12] = [
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "olmoe",
    "deepseek_v1",
    "deepseek_v2_lite",
    "deepseek_v2",
    "deepseek_v3",
    "llama",
    "llama3_rope",
    "qwen3_moe_yarn",
    "mistral",
];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn expected(family: &str) -> HashMap<String, Tensor> {
    let p = fixture_dir().join(format!("{family}.expected.safetensors"));
    candle_core::safetensors::load(p, &Device::Cpu).expect("fixture loads")
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|x| x as u32)
        .collect()
}

fn engine(family: &str) -> Engine {
    let dir = fixture_dir().join(family);
    let m = load_model(
        &Checkpoint::resolve(dir.to_str().unwrap()).unwrap(),
        &Device::Cpu,
        DType::F32,
        0,
    )
    .expect("model loads");
    Engine::new(m, true)
}

#[test]
fn logits_and_routing_match_transformers() {
    for family in FAMILIES {
        let exp = expected(family);
        let mut eng = engine(family);
        for b in 0..2 {
            let prompt = ids(&exp[&format!("input_ids.{b}")]);
            let mut seq = eng.new_sequence();
            let out = eng
                .forward(
                    &mut [&mut seq],
                    std::slice::from_ref(&prompt),
                    LogitsMode::All,
                )
                .unwrap();
            let want = &exp[&format!("logits.{b}")];
            let err = max_abs(&out[0], want);
            assert!(err < 1e-4, "{family} prompt {b}: max abs logit error {err}");
            let rec = eng.last_record().unwrap();
            let moe_layers: Vec<_> = exp
                .keys()
                .filter_map(|k| k.strip_prefix(&format!("topk_ids.{b}.")))
                .map(str::to_string)
                .collect();
            assert_eq!(
                rec.topk.len(),
                moe_layers.len(),
                "{family}: MoE layer count"
            );
            for l in moe_layers {
                let want_ids = exp[&format!("topk_ids.{b}.{l}")].to_vec2::<i64>().unwrap();
                let want_w = exp[&format!("topk_weights.{b}.{l}")]
                    .to_vec2::<f32>()
                    .unwrap();
                let got = &rec.topk[&l];
                for (t, (wi, ww)) in want_ids.iter().zip(&want_w).enumerate() {
                    let gi: Vec<i64> = got.ids[t].iter().map(|&x| x as i64).collect();
                    assert_eq!(
                        &gi, wi,
                        "{family} prompt {b} layer {l} token {t}: expert ids"
                    );
                    for (g, w) in got.weights[t].iter().zip(ww) {
                        assert!(
                            (g - w).abs() < 1e-5,
                            "{family} layer {l} token {t}: weight {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn greedy_continuations_match_transformers() {
    for family in FAMILIES {
        let exp = expected(family);
        let mut eng = engine(family);
        let prompts: Vec<Vec<u32>> = (0..2)
            .map(|b| ids(&exp[&format!("input_ids.{b}")]))
            .collect();
        let want: Vec<Vec<u32>> = (0..2).map(|b| ids(&exp[&format!("greedy.{b}")])).collect();
        // one at a time
        for b in 0..2 {
            let mut p = GenerateParams {
                max_new_tokens: 12,
                sampler: Sampler::Greedy,
                eos: Vec::new(),
                stop: Vec::new(),
            };
            let out = generate(&mut eng, &prompts[b..b + 1], &mut p, None).unwrap();
            assert_eq!(out[0].generated_ids, want[b], "{family} prompt {b}");
        }
        // both prompts batched: prefill of different lengths, then batched decode steps
        let mut p = GenerateParams {
            max_new_tokens: 12,
            sampler: Sampler::Greedy,
            eos: Vec::new(),
            stop: Vec::new(),
        };
        let out = generate(&mut eng, &prompts, &mut p, None).unwrap();
        for b in 0..2 {
            assert_eq!(out[b].generated_ids, want[b], "{family} batched prompt {b}");
        }
    }
}

#[test]
fn batch_invariance_of_logits() {
    for family in ["mixtral", "qwen2_moe", "deepseek_v2_lite"] {
        let exp = expected(family);
        let mut eng = engine(family);
        let prompts: Vec<Vec<u32>> = (0..2)
            .map(|b| ids(&exp[&format!("input_ids.{b}")]))
            .collect();
        let mut s0 = eng.new_sequence();
        let mut s1 = eng.new_sequence();
        let both = eng
            .forward(&mut [&mut s0, &mut s1], &prompts, LogitsMode::All)
            .unwrap();
        for b in 0..2 {
            let mut s = eng.new_sequence();
            let alone = eng
                .forward(&mut [&mut s], &prompts[b..b + 1], LogitsMode::All)
                .unwrap();
            let err = max_abs(&both[b], &alone[0]);
            assert!(err < 1e-4, "{family} prompt {b}: batched vs alone {err}");
        }
        // decode steps with the two sequences at different lengths
        let next = vec![vec![5u32], vec![9u32]];
        let both = eng
            .forward(&mut [&mut s0, &mut s1], &next, LogitsMode::Last)
            .unwrap();
        let rec = eng.last_record().unwrap();
        assert_eq!(rec.pass.cached_tokens, vec![7, 11]);
        assert_eq!(rec.pass.phase, moecap::records::Phase::Decode);
        let mut a = eng.new_sequence();
        let mut full = prompts[0].clone();
        full.push(5);
        let alone = eng
            .forward(&mut [&mut a], &[full], LogitsMode::Last)
            .unwrap();
        assert!(max_abs(&both[0], &alone[0]) < 1e-4);
    }
}

#[test]
fn forked_caches_continue_like_the_whole_sequence_and_stay_apart() {
    // a prefix prefilled once, two forks continued with different tokens in one pass: each
    // fork's logits equal those of its whole sequence from scratch, and neither disturbs the
    // other or the original (every family, latent-attention caches included)
    for family in FAMILIES {
        let exp = expected(family);
        let mut eng = engine(family);
        let prompt = ids(&exp["input_ids.0"]);
        let (head, _) = prompt.split_at(4);
        let tails = [prompt[4..].to_vec(), vec![3u32, 1, 4]];
        let mut root = eng.new_sequence();
        eng.forward(&mut [&mut root], &[head.to_vec()], LogitsMode::Last)
            .unwrap();
        let mut a = root.fork(8).unwrap();
        let mut b = root.fork(0).unwrap();
        let forked = eng
            .forward(&mut [&mut a, &mut b], &tails, LogitsMode::All)
            .unwrap();
        for (k, tail) in tails.iter().enumerate() {
            let mut whole = head.to_vec();
            whole.extend(tail);
            let mut s = eng.new_sequence();
            let fresh = eng
                .forward(&mut [&mut s], &[whole], LogitsMode::All)
                .unwrap();
            let n = tail.len();
            let want = fresh[0].narrow(0, head.len(), n).unwrap();
            let err = max_abs(&forked[k], &want);
            assert!(err < 1e-4, "{family} fork {k}: {err}");
        }
        // the original still holds only the prefix, and continues like a fresh one
        assert_eq!(root.len(), head.len());
        let again = eng
            .forward(&mut [&mut root], &[tails[1].clone()], LogitsMode::All)
            .unwrap();
        assert!(max_abs(&again[0], &forked[1]) < 1e-4, "{family} original");
    }
}
