//! The engine's commands: `logits`, `generate`, `synth`.

use super::options::*;
use super::print_json;
use anyhow::{bail, Result};
use moecap::model::descriptor::ModelDesc;
use moecap::engine::generate::{generate, GenerateParams};
use moecap::engine::io::write_checkpoint;
use moecap::engine::io::{append_records, parse_input_ids, write_logits_file};
use moecap::engine::loader::checkpoint_dir;
use moecap::engine::sampling::Sampler;
use moecap::engine::synthetic::random_tensors;
use moecap::model::synthetic::{shrunk_config, synthetic_desc, Shrink, SYNTHETIC};
use moecap::model::tokenizer::TextCodec;
use moecap::model::tokenizer::{check_tokenizer_file, synthetic_tokenizer_json};
use moecap::engine::LogitsMode;
use moecap::model::params::model_params;
use moecap::export::table::secs;
use moecap::export::table::{si, Table};
use serde_json::json;
use std::path::PathBuf;

pub(crate) fn cmd_logits(
    args: &EngineArgs,
    input_ids: &str,
    output: &std::path::Path,
) -> Result<()> {
    let prompts = parse_input_ids(input_ids)?;
    let mut engine = args.load(true)?;
    let mut seqs: Vec<_> = prompts.iter().map(|_| engine.new_sequence()).collect();
    let mut refs: Vec<_> = seqs.iter_mut().collect();
    let logits = engine.forward(&mut refs, &prompts, LogitsMode::All)?;
    let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
    write_logits_file(output, &logits, &lengths, engine.last_record())?;
    let moe = engine.last_record().map_or(0, |r| r.topk.len());
    println!(
        "wrote {}: logits [{}, {}, {}] and routing of {moe} MoE layers",
        output.display(),
        prompts.len(),
        lengths.iter().max().unwrap_or(&0),
        engine.model.desc.vocab_size
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_generate(
    args: &EngineArgs,
    input_ids: Option<&str>,
    prompt: &[String],
    stop: &[String],
    max_new_tokens: usize,
    sampler: Sampler,
    ignore_eos: bool,
    records: Option<&std::path::Path>,
    probe: bool,
    json: bool,
) -> Result<()> {
    let codec = match checkpoint_dir(&args.model)? {
        Some(d) => TextCodec::from_dir(&d)?,
        None => None,
    };
    let prompts = match input_ids {
        Some(ids) => parse_input_ids(ids)?,
        None => {
            let Some(c) = &codec else {
                bail!("--prompt needs a tokenizer.json beside the model's config.json; give --input-ids instead");
            };
            prompt
                .iter()
                .map(|p| c.encode(p))
                .collect::<moecap::Result<Vec<_>>>()?
        }
    };
    if !stop.is_empty() && codec.is_none() {
        bail!("--stop needs a tokenizer.json beside the model's config.json");
    }
    let mut engine = args.load(probe)?;
    let mut params = GenerateParams {
        stop: stop.to_vec(),
        max_new_tokens,
        sampler,
        eos: if ignore_eos {
            Vec::new()
        } else {
            engine.model.desc.eos_token_ids.clone()
        },
    };
    if let Some(r) = records {
        // start a fresh file
        std::fs::write(r, b"").map_err(|e| anyhow::anyhow!("{}: {e}", r.display()))?;
    }
    let outputs = generate(&mut engine, &prompts, &mut params, codec.as_ref())?;
    let recs = engine.take_records();
    if let Some(r) = records {
        append_records(r, &recs)?;
    }
    let routing = routing_summary(&engine.model.desc, &recs);
    let tpots: Vec<f64> = outputs
        .iter()
        .flat_map(|o| o.token_times_s.clone())
        .collect();
    let mean_tpot = if tpots.is_empty() {
        None
    } else {
        Some(tpots.iter().sum::<f64>() / tpots.len() as f64)
    };
    if json {
        return print_json(&json!({
            "model": engine.model.desc.display_name(),
            "generated_ids": outputs.iter().map(|o| o.generated_ids.clone()).collect::<Vec<_>>(),
            "sequences": outputs,
            "ttft_s": outputs.first().map(|o| o.ttft_s),
            "mean_tpot_s": mean_tpot,
            "routing": routing,
        }));
    }
    for (i, o) in outputs.iter().enumerate() {
        println!(
            "sequence {i}: {} prompt tokens, {} generated ({:?}): {:?}",
            o.prompt_tokens,
            o.generated_ids.len(),
            o.finish,
            o.generated_ids
        );
        if let Some(t) = &o.text {
            println!("  text: {t:?}");
        }
    }
    if let Some(o) = outputs.first() {
        println!(
            "time to first token {}, mean time per output token {}",
            secs(o.ttft_s),
            mean_tpot.map_or("-".into(), secs)
        );
    }
    if let Some(r) = routing.as_array() {
        let mut t = Table::new(&["phase", "passes", "experts/layer", "uniform"]);
        for p in r {
            t.row(vec![
                p["phase"].as_str().unwrap_or("").to_string(),
                p["passes"].to_string(),
                format!("{:.2}", p["mean_activated_experts"].as_f64().unwrap_or(0.0)),
                format!(
                    "{:.2}",
                    p["uniform_expected_experts"].as_f64().unwrap_or(0.0)
                ),
            ]);
        }
        if !r.is_empty() {
            print!("{}", t.render());
        }
    }
    Ok(())
}

/// Mean distinct experts per MoE layer per phase, beside the uniform-routing expectation.
pub(crate) fn routing_summary(
    desc: &ModelDesc,
    recs: &[moecap::records::EngineRecord],
) -> serde_json::Value {
    let mut out = Vec::new();
    for phase in [
        moecap::records::Phase::Prefill,
        moecap::records::Phase::Decode,
    ] {
        let mut passes = 0usize;
        let mut act = 0.0;
        let mut uni = 0.0;
        let mut n = 0.0;
        for r in recs.iter().filter(|r| r.pass.phase == phase) {
            passes += 1;
            let tokens = r.pass.total_new_tokens();
            for (l, m) in desc.moe_layers() {
                if let Some(moecap::records::LayerExperts::Ids(ids)) =
                    r.pass.experts.get(&l.index.to_string())
                {
                    act += ids.len() as f64;
                    uni += moecap::accounting::uniform_expected_experts(
                        m.num_experts,
                        m.top_k,
                        tokens,
                    );
                    n += 1.0;
                }
            }
        }
        if passes > 0 && n > 0.0 {
            out.push(json!({
                "phase": phase.name(),
                "passes": passes,
                "mean_activated_experts": act / n,
                "uniform_expected_experts": uni / n,
            }));
        }
    }
    serde_json::Value::Array(out)
}

/// `moecap synth`: writes a seeded random-weight checkpoint (or lists the synthetic models).
#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_synth(
    like: &Option<String>,
    out: &Option<PathBuf>,
    hidden: &Option<usize>,
    layers: &Option<usize>,
    experts: &Option<usize>,
    vocab: &Option<usize>,
    heads: &Option<usize>,
    tokenizer: &Option<PathBuf>,
    seed: &u64,
    list: &bool,
) -> Result<()> {
    if *list {
        let mut t = Table::new(&["name", "parameters", "about"]).left(2);
        for m in SYNTHETIC {
            let d = synthetic_desc(m.name)?;
            t.row(vec![
                format!("synthetic:{}", m.name),
                si(model_params(&d).total() as f64),
                m.about.to_string(),
            ]);
        }
        print!("{}", t.render());
        return Ok(());
    }
    let (Some(like), Some(out)) = (like, out) else {
        bail!("synth needs --like NAME and --out DIR (or --list)");
    };
    let shrink = Shrink {
        hidden: *hidden,
        layers: *layers,
        experts: *experts,
        vocab: *vocab,
        heads: *heads,
    };
    let mut cfg = shrunk_config(like, &shrink)?;
    // marks the checkpoint as random weights (reports say so); other readers ignore the key
    if let Some(o) = cfg.as_object_mut() {
        o.insert(
            "moecap_synthetic".into(),
            json!({"like": like, "seed": seed}),
        );
    }
    let desc = moecap::model::config::parse_config(&cfg.to_string(), "synth")?;
    let tok = match tokenizer {
        Some(p) => {
            check_tokenizer_file(p, desc.vocab_size)?;
            let text =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => synthetic_tokenizer_json(desc.vocab_size),
    };
    let tensors = random_tensors(&desc, *seed)?;
    write_checkpoint(out, &cfg, &tensors, &tok)?;
    println!(
        "wrote {} ({} {}, {} parameters, seed {seed}; random weights: outputs are meaningless)",
        out.display(),
        desc.architecture,
        like,
        si(model_params(&desc).total() as f64)
    );
    Ok(())
}

/// `moecap upcycle`.
pub(crate) fn cmd_upcycle(
    from: &std::path::Path,
    experts: usize,
    top_k: usize,
    mode: UpcycleMode,
    out: &std::path::Path,
) -> Result<()> {
    use moecap::upcycle::{read_gguf, upcycle, Mode};
    let mode = match mode {
        UpcycleMode::Copy => Mode::Copy,
        UpcycleMode::Split => Mode::Split,
        UpcycleMode::Dense => Mode::Dense,
    };
    let dense = read_gguf(from)?;
    let tok = dense.tokenizer.clone();
    let tok_cfg = dense.tokenizer_config.clone();
    let (cfg, tensors) = upcycle(dense, experts, top_k, mode)?;
    write_checkpoint(out, &cfg, &tensors, &tok)?;
    moecap::bench::output::write_json(&out.join("tokenizer_config.json"), &tok_cfg)?;
    let desc = moecap::model::config::parse_config(&cfg.to_string(), "upcycle")?;
    let p = model_params(&desc);
    println!(
        "wrote {} ({}, {} parameters, {} active per token) from {}",
        out.display(),
        desc.architecture,
        si(p.total() as f64),
        si(p.active_per_token(&desc) as f64),
        from.display()
    );
    Ok(())
}
