//! The engine's commands: `logits`, `generate`, `synth`, `upcycle`.

use super::options::*;
use super::print_json;
use anyhow::{anyhow, bail, Context, Result};
use moecap::accounting::metrics::routing_summary;
use moecap::engine::generate::{generate, GenerateParams};
use moecap::engine::io::{parse_input_ids, write_checkpoint, write_logits_file};
use moecap::engine::sampling::Sampler;
use moecap::engine::synthetic::random_tensors;
use moecap::engine::LogitsMode;
use moecap::export::table::{secs, si, Table};
use moecap::model::config::limits::MAX_POSITIONS;
use moecap::model::params::model_params;
use moecap::model::synthetic::{shrunk_config, synthetic_desc, Shrink, SYNTHETIC};
use moecap::model::tokenizer::{check_tokenizer_file, synthetic_tokenizer_json};
use moecap::records::append_records;
use moecap::rng::SplitMix64;
use serde_json::json;

pub(crate) fn cmd_logits(a: &LogitsArgs) -> Result<()> {
    let (input_ids, output) = (&a.input_ids, &a.output);
    let prompts = parse_input_ids(input_ids).context("--input-ids")?;
    let ck = a.engine.checkpoint()?;
    let mut engine = a.engine.load(&ck, true)?;
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

impl GenerateArgs {
    /// Greedy, or seeded sampling with `--temperature` and `--top-p`.
    fn sampler(&self) -> Result<Sampler> {
        Ok(match self.temperature {
            None => Sampler::Greedy,
            Some(t) if t > 0.0 && t.is_finite() => {
                if !(self.top_p > 0.0 && self.top_p <= 1.0) {
                    bail!("--top-p must be in (0, 1]");
                }
                Sampler::Random {
                    temperature: t,
                    top_p: self.top_p,
                    rng: SplitMix64::new(self.seed),
                }
            }
            Some(_) => bail!("--temperature must be positive (use --greedy for argmax)"),
        })
    }
}

pub(crate) fn cmd_generate(a: &GenerateArgs) -> Result<()> {
    let sampler = a.sampler()?;
    if a.max_new_tokens == 0 || a.max_new_tokens > MAX_POSITIONS {
        bail!("--max-new-tokens must be between 1 and {MAX_POSITIONS}");
    }
    let (input_ids, prompt, stop) = (a.input_ids.as_deref(), &a.prompt, &a.stop);
    let (max_new_tokens, ignore_eos, records, probe, json) = (
        a.max_new_tokens,
        a.ignore_eos,
        a.records.as_deref(),
        !a.no_probe,
        a.json,
    );
    let ck = a.engine.checkpoint()?;
    let codec = ck.tokenizer()?;
    let prompts = match input_ids {
        Some(ids) => parse_input_ids(ids).context("--input-ids")?,
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
    if let Some(max) = ck.desc.max_position_embeddings {
        for (i, p) in prompts.iter().enumerate() {
            if p.len() + max_new_tokens > max {
                eprintln!(
                    "warning: sequence {}: {} prompt tokens + up to {max_new_tokens} new ones go beyond the model's max_position_embeddings ({max}); positions past it were never trained",
                    i + 1,
                    p.len()
                );
            }
        }
    }
    let mut engine = a.engine.load(&ck, probe)?;
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
        std::fs::write(r, b"").map_err(|e| anyhow!("{}: {e}", r.display()))?;
    }
    let outputs = generate(&mut engine, &prompts, &mut params, codec.as_ref())?;
    let recs = engine.take_records();
    if let Some(r) = records {
        append_records(r, &recs)?;
    }
    let passes: Vec<_> = recs.iter().map(|r| r.pass.clone()).collect();
    let routing = routing_summary(&engine.model.desc, &passes);
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
            "sequence {}: {} prompt tokens, {} generated ({:?}): {:?}",
            i + 1,
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
    if !routing.is_empty() {
        let mut t = Table::new(&["phase", "passes", "experts/layer", "uniform"]);
        for p in &routing {
            t.row(vec![
                p.phase.to_string(),
                p.passes.to_string(),
                format!("{:.2}", p.mean_activated_experts),
                format!("{:.2}", p.uniform_expected_experts),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(())
}

/// `moecap synth`: writes a seeded random-weight checkpoint (or lists the synthetic models).
pub(crate) fn cmd_synth(a: &SynthArgs) -> Result<()> {
    if a.list {
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
    let (Some(like), Some(out)) = (&a.like, &a.out) else {
        bail!("synth needs --like NAME and --out DIR (or --list)");
    };
    let seed = a.seed;
    let shrink = Shrink {
        hidden: a.hidden,
        layers: a.layers,
        experts: a.experts,
        vocab: a.vocab,
        heads: a.heads,
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
    let tok = match &a.tokenizer {
        Some(p) => {
            check_tokenizer_file(p, desc.vocab_size)?;
            let text = std::fs::read_to_string(p).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", p.display()))?
        }
        None => synthetic_tokenizer_json(desc.vocab_size),
    };
    let tensors = random_tensors(&desc, seed)?;
    write_checkpoint(out, &cfg, &tensors, &tok, &[], a.force)?;
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
pub(crate) fn cmd_upcycle(a: &UpcycleArgs) -> Result<()> {
    let (from, experts, top_k, mode, out) = (&a.from, a.experts, a.top_k, a.mode, &a.out);
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
    write_checkpoint(
        out,
        &cfg,
        &tensors,
        &tok,
        &[("tokenizer_config.json", &tok_cfg)],
        a.force,
    )?;
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
