//! The `moecap` command line: parses options, calls the library, prints text tables or JSON.

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use moecap::accounting::{Accountant, KvCacheKind, Precision};
use moecap::compat::{compat_pass, compat_peaks, compat_phase, CompatModel, CompatPass};
use moecap::descriptor::{Attention, Ffn, ModelDesc};
use moecap::detect::{detect_host, match_cpu};
use moecap::dtype::DType;
use moecap::engine::device::parse_engine_dtype;
use moecap::engine::generate::{generate, GenerateParams};
use moecap::engine::io::{append_records, parse_input_ids, write_checkpoint, write_logits_file};
use moecap::engine::loader::{checkpoint_dir, load_model};
use moecap::engine::sampling::{Sampler, SplitMix64};
use moecap::engine::synthetic::{random_tensors, shrunk_config, synthetic_desc, Shrink, SYNTHETIC};
use moecap::engine::text::{check_tokenizer_file, synthetic_tokenizer_json, TextCodec};
use moecap::engine::{parse_device, Engine, LogitsMode};
use moecap::hardware::{Hardware, HardwareTable};
use moecap::metrics::{exact_metrics, MetricsReport, Peaks, PhaseMetrics};
use moecap::params::model_params;
use moecap::presets::{preset_desc, resolve_model, PRESETS};
use moecap::records::{read_records, Records};
use moecap::roofline::roofline;
use moecap::table::{pct, secs, si, Table};
use moecap::tensors::check_checkpoint;
use serde_json::json;
use std::path::PathBuf;

/// moecap: benchmark Mixture-of-Experts models with exact byte/FLOP accounting.
#[derive(Parser)]
#[command(name = "moecap", version, about, long_about = None)]
struct Cli {
    /// A hardware table in moecap's CSV layout, replacing the built-in one.
    #[arg(long, global = true, value_name = "FILE")]
    hardware_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the built-in model presets with their sizes.
    Models {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Describe a model: layers, parameter counts, bytes; cross-check safetensors headers.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Roofline bounds on TPOT and TTFT for a model on a device.
    Roofline {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        device: DeviceArgs,
        /// Batch sizes (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        batch: Vec<u64>,
        /// Context lengths per sequence (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "512,4096")]
        context: Vec<u64>,
        /// A TPOT target in seconds: report the bandwidth needed to meet it.
        #[arg(long, value_name = "SECONDS")]
        tpot_slo: Option<f64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Utilisation (S-MBU, S-MFU, MBU, MFU) from per-pass records.
    Metrics {
        /// Per-pass records (moecap JSONL or MoE-CAP harness JSONL).
        #[arg(long, value_name = "FILE")]
        records: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        device: DeviceArgs,
        /// Which arithmetic: the exact formulas, or the published MoE-CAP code's.
        #[arg(long, value_enum, default_value_t = Formula::Exact)]
        formula: Formula,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the engine on token ids and write full logits and routing to a safetensors file.
    Logits {
        #[command(flatten)]
        engine: EngineArgs,
        /// Token ids: sequences separated by `;`, ids by `,` (e.g. "1,2,3;4,5").
        #[arg(long, value_name = "IDS")]
        input_ids: String,
        /// The output file.
        #[arg(long, value_name = "FILE.safetensors")]
        output: PathBuf,
    },
    /// Generate tokens with the engine and report times and routing.
    Generate {
        #[command(flatten)]
        engine: EngineArgs,
        /// Prompt token ids: sequences separated by `;`, ids by `,`.
        #[arg(
            long,
            value_name = "IDS",
            required_unless_present = "prompt",
            conflicts_with = "prompt"
        )]
        input_ids: Option<String>,
        /// A text prompt (repeat for a batch); needs the checkpoint's tokenizer.json.
        #[arg(long, value_name = "TEXT")]
        prompt: Vec<String>,
        /// Stop a sequence when its text contains this string (repeatable; needs a tokenizer).
        #[arg(long, value_name = "STRING")]
        stop: Vec<String>,
        /// Tokens to generate per sequence at most.
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
        /// Greedy decoding (the default unless --temperature is given).
        #[arg(long, conflicts_with = "temperature")]
        greedy: bool,
        /// Sampling temperature (> 0).
        #[arg(long)]
        temperature: Option<f64>,
        /// Nucleus sampling mass, with --temperature.
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Do not stop at end-of-sequence tokens.
        #[arg(long)]
        ignore_eos: bool,
        /// Write the probe's per-pass records (JSON lines) here.
        #[arg(long, value_name = "FILE")]
        records: Option<PathBuf>,
        /// Switch the probe off (no routing summary, no records).
        #[arg(long, conflicts_with = "records")]
        no_probe: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic checkpoint (seeded random weights) in Hugging Face layout.
    Synth {
        /// A synthetic model (tiny-mixtral, mixtral-mid, ...) or a preset to copy the shape of.
        #[arg(long, value_name = "NAME")]
        like: Option<String>,
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// New hidden size (intermediate sizes scale with it).
        #[arg(long)]
        hidden: Option<usize>,
        /// New number of layers.
        #[arg(long)]
        layers: Option<usize>,
        /// New number of routed experts.
        #[arg(long)]
        experts: Option<usize>,
        /// New vocabulary size.
        #[arg(long)]
        vocab: Option<usize>,
        /// New number of attention heads.
        #[arg(long)]
        heads: Option<usize>,
        /// A tokenizer.json to copy into the checkpoint [default: a word-level tokenizer whose
        /// id i is the word `t{i}`].
        #[arg(long, value_name = "FILE")]
        tokenizer: Option<PathBuf>,
        /// Weight seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// List the synthetic models.
        #[arg(long)]
        list: bool,
    },
    /// The hardware table and this machine.
    Hw {
        #[command(subcommand)]
        command: HwCommand,
    },
}

#[derive(Subcommand)]
enum HwCommand {
    /// Print the hardware table.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Detect this machine's CPU and memory and match them to the table.
    Detect {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ModelArgs {
    /// A preset name (see `moecap models`), a checkpoint directory or a config.json.
    #[arg(long, value_name = "DIR|PRESET")]
    model: String,
}

#[derive(Args)]
struct EngineArgs {
    /// A checkpoint directory, a hub id in the local Hugging Face cache, or synthetic:NAME.
    #[arg(long, value_name = "DIR|ID|synthetic:NAME")]
    model: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, f16 or bf16 [default: f32 on CPU, bf16 on CUDA].
    #[arg(long)]
    dtype: Option<String>,
    /// Seed of synthetic weights.
    #[arg(long, default_value_t = 0)]
    weights_seed: u64,
}

impl EngineArgs {
    fn load(&self, probe: bool) -> Result<Engine> {
        let device = parse_device(&self.device)?;
        let dtype = parse_engine_dtype(self.dtype.as_deref(), &device)?;
        let model = load_model(&self.model, &device, dtype, self.weights_seed)?;
        Ok(Engine::new(model, probe))
    }
}

#[derive(Args)]
struct DeviceArgs {
    /// Device name from the hardware table (see `moecap hw list`).
    #[arg(long, value_name = "NAME")]
    hardware: String,
    /// Devices holding the weights.
    #[arg(long, default_value_t = 1)]
    devices: u32,
    /// Weight dtype [default: the checkpoint's: fp8 when quantised so, else torch_dtype, else bf16].
    #[arg(long)]
    dtype: Option<String>,
    /// KV-cache dtype [default: --dtype; the compat formula always uses --dtype].
    #[arg(long)]
    kv_dtype: Option<String>,
    /// For MLA models: `latent` (default) or `decompressed` cache.
    #[arg(long)]
    kv_cache: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Formula {
    /// The exact formulas of docs/metrics.md §2-3.
    Exact,
    /// The published MoE-CAP code's arithmetic (docs/metrics.md §5).
    MoecapCompat,
}

/// Resolved device options.
struct Device {
    hw: Hardware,
    devices: u32,
    dtype: DType,
    kv_dtype: DType,
    kv_cache: KvCacheKind,
}

impl DeviceArgs {
    fn resolve(&self, table: &HardwareTable, desc: &ModelDesc) -> Result<Device> {
        if self.devices == 0 {
            bail!("--devices must be at least 1");
        }
        let hw = table.find(&self.hardware)?.clone();
        let dtype = match &self.dtype {
            Some(s) => DType::parse_flag("--dtype", s)?,
            None => checkpoint_dtype(desc),
        };
        let kv_dtype = match &self.kv_dtype {
            Some(s) => DType::parse_flag("--kv-dtype", s)?,
            None => dtype,
        };
        let kv_cache = match &self.kv_cache {
            Some(s) => KvCacheKind::parse_for(desc, s)?,
            None => KvCacheKind::default_for(desc),
        };
        Ok(Device {
            hw,
            devices: self.devices,
            dtype,
            kv_dtype,
            kv_cache,
        })
    }

    fn peaks(d: &Device) -> Result<Peaks> {
        let n = d.devices as f64;
        Ok(Peaks {
            bandwidth_bytes_per_s: n * d.hw.bandwidth_bytes_per_s(),
            flops_per_s: n * d.hw.peak_flops(d.dtype)?,
        })
    }
}

/// The dtype a checkpoint stores its weights in.
fn checkpoint_dtype(desc: &ModelDesc) -> DType {
    if let Some(q) = &desc.quantization {
        match (q.method.as_str(), q.bits) {
            ("fp8", _) => return DType::Fp8,
            (_, Some(8)) => return DType::Int8,
            (_, Some(4)) => return DType::Int4,
            _ => {}
        }
    }
    desc.torch_dtype
        .as_deref()
        .and_then(DType::parse)
        .unwrap_or(DType::Bf16)
}

fn kv_cache_name(k: KvCacheKind) -> &'static str {
    match k {
        KvCacheKind::Gqa => "gqa",
        KvCacheKind::MlaLatent => "mla_latent",
        KvCacheKind::MlaDecompressed => "mla_decompressed",
    }
}

/// Piping into `head` closes standard output early: end quietly, as other command-line tools
/// do, instead of reporting a failed write.
#[cfg(unix)]
fn quiet_on_closed_pipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

fn main() {
    #[cfg(unix)]
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let table = || HardwareTable::from_option(cli.hardware_file.as_deref());
    match &cli.command {
        Command::Models { json } => cmd_models(*json),
        Command::Inspect { model, json } => cmd_inspect(&model.model, *json),
        Command::Roofline {
            model,
            device,
            batch,
            context,
            tpot_slo,
            json,
        } => cmd_roofline(
            &model.model,
            device,
            &table()?,
            batch,
            context,
            *tpot_slo,
            *json,
        ),
        Command::Metrics {
            records,
            model,
            device,
            formula,
            json,
        } => cmd_metrics(records, &model.model, device, &table()?, *formula, *json),
        Command::Logits {
            engine,
            input_ids,
            output,
        } => cmd_logits(engine, input_ids, output),
        Command::Generate {
            engine,
            input_ids,
            prompt,
            stop,
            max_new_tokens,
            greedy: _,
            temperature,
            top_p,
            seed,
            ignore_eos,
            records,
            no_probe,
            json,
        } => {
            let sampler = match temperature {
                None => Sampler::Greedy,
                Some(t) if *t > 0.0 && t.is_finite() => {
                    if !(*top_p > 0.0 && *top_p <= 1.0) {
                        bail!("--top-p must be in (0, 1]");
                    }
                    Sampler::Random {
                        temperature: *t,
                        top_p: *top_p,
                        rng: SplitMix64::new(*seed),
                    }
                }
                Some(_) => bail!("--temperature must be positive (use --greedy for argmax)"),
            };
            cmd_generate(
                engine,
                input_ids.as_deref(),
                prompt,
                stop,
                *max_new_tokens,
                sampler,
                *ignore_eos,
                records.as_deref(),
                !*no_probe,
                *json,
            )
        }
        Command::Synth {
            like,
            out,
            hidden,
            layers,
            experts,
            vocab,
            heads,
            tokenizer,
            seed,
            list,
        } => {
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
            let cfg = shrunk_config(like, &shrink)?;
            let desc = moecap::config::parse_config(&cfg.to_string(), "synth")?;
            let tok = match tokenizer {
                Some(p) => {
                    check_tokenizer_file(p, desc.vocab_size)?;
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
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
        Command::Hw { command } => match command {
            HwCommand::List { json } => cmd_hw_list(&table()?, *json),
            HwCommand::Detect { json } => cmd_hw_detect(&table()?, *json),
        },
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn cmd_models(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for p in PRESETS {
        let d = preset_desc(p)?;
        let params = model_params(&d);
        let moe = d.first_moe();
        rows.push(json!({
            "name": p.name,
            "hub_id": p.hub_id,
            "family": d.family.short(),
            "architecture": d.architecture,
            "layers": d.num_layers(),
            "moe_layers": d.num_moe_layers(),
            "experts": moe.map_or(0, |m| m.num_experts),
            "top_k": moe.map_or(0, |m| m.top_k),
            "shared_experts": moe.and_then(|m| m.shared.as_ref()).map_or(0, |s| s.count),
            "total_params": params.total(),
            "active_params_per_token": params.active_per_token(&d),
        }));
    }
    if json {
        return print_json(&rows);
    }
    let mut t = Table::new(&[
        "preset", "family", "layers", "moe", "experts", "top-k", "shared", "total", "active",
    ]);
    for r in &rows {
        t.row(vec![
            r["name"].as_str().unwrap_or_default().to_string(),
            r["family"].as_str().unwrap_or_default().to_string(),
            r["layers"].to_string(),
            r["moe_layers"].to_string(),
            r["experts"].to_string(),
            r["top_k"].to_string(),
            r["shared_experts"].to_string(),
            si(r["total_params"].as_f64().unwrap_or(0.0)),
            si(r["active_params_per_token"].as_f64().unwrap_or(0.0)),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn layer_kind(desc: &ModelDesc, i: usize) -> String {
    let l = &desc.layers[i];
    let att = match l.attention {
        Attention::Gqa {
            heads, kv_heads, ..
        } if heads == kv_heads => "MHA",
        Attention::Gqa { .. } => "GQA",
        Attention::Mla { .. } => "MLA",
    };
    match &l.ffn {
        Ffn::Dense {
            intermediate_size, ..
        } => format!("{att} + dense FFN {intermediate_size}"),
        Ffn::Moe(m) => format!(
            "{att} + MoE {}x{} top-{}{}",
            m.num_experts,
            m.expert_intermediate_size,
            m.top_k,
            m.shared.as_ref().map_or(String::new(), |s| format!(
                " + shared {}",
                s.intermediate_size
            ))
        ),
    }
}

fn cmd_inspect(model: &str, json: bool) -> Result<()> {
    let resolved = resolve_model(model)?;
    let d = &resolved.desc;
    let params = model_params(d);
    let check = match &resolved.dir {
        Some(dir) => check_checkpoint(d, dir)?,
        None => None,
    };
    let total = params.total();
    let active = params.active_per_token(d);
    let kv_kind = KvCacheKind::default_for(d);
    let kv_elems =
        Accountant::new(d, Precision::uniform(DType::Bf16), kv_kind).kv_elements_per_token;
    let mut kv_json = json!({
        "kind": kv_cache_name(kv_kind),
        "elements_per_token": kv_elems,
        "bytes_per_token_bf16": kv_elems * 2,
    });
    if matches!(d.attention(), Attention::Mla { .. }) {
        let dec = Accountant::new(
            d,
            Precision::uniform(DType::Bf16),
            KvCacheKind::MlaDecompressed,
        )
        .kv_elements_per_token;
        kv_json["decompressed_elements_per_token"] = json!(dec);
    }
    if json {
        let per_layer: Vec<_> = params
            .layers
            .iter()
            .zip(&d.layers)
            .map(|(p, l)| {
                json!({
                    "layer": l.index,
                    "kind": if l.moe().is_some() { "moe" } else { "dense" },
                    "params": p,
                    "total": p.total(),
                })
            })
            .collect();
        let bytes: serde_json::Map<String, serde_json::Value> =
            [DType::F32, DType::Bf16, DType::Fp8, DType::Int4]
                .iter()
                .map(|dt| (dt.name().to_string(), json!(total as f64 * dt.bytes())))
                .collect();
        return print_json(&json!({
            "model": d.display_name(),
            "source": d.source,
            "family": d.family.short(),
            "architecture": d.architecture,
            "hidden_size": d.hidden_size,
            "vocab_size": d.vocab_size,
            "num_layers": d.num_layers(),
            "moe_layers": d.num_moe_layers(),
            "dense_layers": d.num_layers() - d.num_moe_layers(),
            "tie_word_embeddings": d.tie_word_embeddings,
            "total_params": total,
            "active_params_per_token": active,
            "routed_expert_params": params.routed_expert_params(),
            "components": params.components(),
            "bytes": bytes,
            "kv_cache": kv_json,
            "per_layer": per_layer,
            "descriptor": d,
            "tensor_check": check,
        }));
    }
    println!("model        {} ({})", d.display_name(), d.architecture);
    println!(
        "layers       {} ({} MoE, {} dense), hidden {}, vocab {}{}",
        d.num_layers(),
        d.num_moe_layers(),
        d.num_layers() - d.num_moe_layers(),
        d.hidden_size,
        d.vocab_size,
        if d.tie_word_embeddings {
            ", tied embeddings"
        } else {
            ""
        }
    );
    if let Some(m) = d.first_moe() {
        let r = &m.router;
        println!(
            "router       {:?} scores, top-{} of {}, renormalise {}, scale {}, groups {}/{} ({}){}",
            r.scoring,
            m.top_k,
            m.num_experts,
            r.norm_topk_prob,
            r.routed_scaling_factor,
            r.topk_group,
            r.n_group,
            r.topk_method,
            if r.correction_bias {
                ", correction bias"
            } else {
                ""
            }
        );
    }
    println!(
        "parameters   {} total ({}), {} active per token ({}), {} in routed experts",
        total,
        si(total as f64),
        active,
        si(active as f64),
        si(params.routed_expert_params() as f64)
    );
    println!(
        "weights      f32 {}B, bf16 {}B, fp8 {}B, int4 {}B",
        si(total as f64 * 4.0),
        si(total as f64 * 2.0),
        si(total as f64),
        si(total as f64 * 0.5)
    );
    println!(
        "kv cache     {} elements per token ({}), {} bytes per token in bf16",
        kv_elems,
        kv_cache_name(kv_kind),
        kv_elems * 2
    );
    let c = params.components();
    let mut t = Table::new(&["component", "params", "share"]);
    for (name, v) in [
        ("attention", c.attention),
        ("router", c.router),
        ("routed experts", c.routed_experts),
        ("shared experts", c.shared_experts),
        ("dense FFN", c.dense_ffn),
        ("norms", c.norms),
        ("embedding", c.embedding),
        ("LM head", c.lm_head),
    ] {
        t.row(vec![
            name.into(),
            v.to_string(),
            pct(v as f64 / total as f64),
        ]);
    }
    println!();
    print!("{}", t.render());
    // Layers grouped into runs of the same kind and size.
    let mut t = Table::new(&["layers", "kind", "params/layer"]);
    let mut start = 0;
    for i in 1..=d.num_layers() {
        let same = i < d.num_layers()
            && layer_kind(d, i) == layer_kind(d, start)
            && params.layers[i] == params.layers[start];
        if !same {
            let range = if i - 1 == start {
                start.to_string()
            } else {
                format!("{}-{}", start, i - 1)
            };
            t.row(vec![
                range,
                layer_kind(d, start),
                params.layers[start].total().to_string(),
            ]);
            start = i;
        }
    }
    println!();
    print!("{}", t.render());
    if let Some(check) = &check {
        println!();
        println!(
            "tensors      {} found in {} file(s), {} expected, {} set aside (scales, MTP){}",
            check.tensors_found,
            check.files.len(),
            check.tensors_expected,
            check.ignored,
            if check.shapes_checked {
                ""
            } else {
                "; shapes not compared (packed quantisation)"
            }
        );
        for (what, list) in [
            ("missing", &check.missing),
            ("unexpected", &check.unexpected),
            ("wrong shape", &check.mismatched),
        ] {
            for item in list.iter().take(20) {
                println!("  {what}: {item}");
            }
            if list.len() > 20 {
                println!("  ... and {} more {what}", list.len() - 20);
            }
        }
        if check.ok() {
            println!("  every tensor matches the descriptor");
        }
    } else if resolved.dir.is_some() {
        println!();
        println!("tensors      no safetensors files beside the config: nothing to cross-check");
    }
    if let Some(check) = check {
        if !check.ok() {
            bail!(
                "tensor check failed: {} missing, {} unexpected, {} with another shape",
                check.missing.len(),
                check.unexpected.len(),
                check.mismatched.len()
            );
        }
    }
    Ok(())
}

fn cmd_roofline(
    model: &str,
    device: &DeviceArgs,
    table: &HardwareTable,
    batch: &[u64],
    context: &[u64],
    tpot_slo: Option<f64>,
    json: bool,
) -> Result<()> {
    let resolved = resolve_model(model)?;
    let d = &resolved.desc;
    let dev = device.resolve(table, d)?;
    if batch.is_empty() || batch.contains(&0) {
        bail!("--batch: every batch size must be at least 1");
    }
    if context.is_empty() || context.contains(&0) {
        bail!("--context: every context length must be at least 1");
    }
    if let Some(s) = tpot_slo {
        if !(s.is_finite() && s > 0.0) {
            bail!("--tpot-slo must be a positive number of seconds");
        }
    }
    let peaks = DeviceArgs::peaks(&dev)?;
    let acct = Accountant::new(
        d,
        Precision {
            weight: dev.dtype.bytes(),
            kv: dev.kv_dtype.bytes(),
        },
        dev.kv_cache,
    );
    let memory = dev.hw.memory_gb.map(|m| m * 1e9 * dev.devices as f64);
    let points = roofline(&acct, peaks, batch, context, tpot_slo, memory);
    if json {
        return print_json(&json!({
            "model": d.display_name(),
            "hardware": dev.hw.name,
            "devices": dev.devices,
            "dtype": dev.dtype,
            "kv_dtype": dev.kv_dtype,
            "kv_cache": kv_cache_name(dev.kv_cache),
            "peaks": peaks,
            "tpot_slo_s": tpot_slo,
            "points": points,
        }));
    }
    println!(
        "{} on {}x {} ({} weights, {} KV {}): {}B/s, {}FLOP/s",
        d.display_name(),
        dev.devices,
        dev.hw.name,
        dev.dtype,
        dev.kv_dtype,
        kv_cache_name(dev.kv_cache),
        si(peaks.bandwidth_bytes_per_s),
        si(peaks.flops_per_s)
    );
    let mut header = vec![
        "batch",
        "context",
        "E[experts]",
        "decode B",
        "dense B",
        "TPOT >=",
        "bound",
        "tok/s <=",
        "TTFT >=",
        "memory",
        "fits",
    ];
    if tpot_slo.is_some() {
        header.push("BW for SLO");
    }
    let mut t = Table::new(&header);
    for p in &points {
        let mut row = vec![
            p.batch.to_string(),
            p.context.to_string(),
            format!("{:.2}", p.decode_expected_experts),
            si(p.decode_bytes),
            si(p.decode_dense_bytes),
            secs(p.tpot_lower_bound_s),
            p.decode_bound.to_string(),
            format!("{:.1}", p.decode_tokens_per_s_upper),
            secs(p.ttft_lower_bound_s),
            format!("{}B", si(p.memory_footprint_bytes)),
            p.fits
                .map_or("?".into(), |f| if f { "yes".into() } else { "no".into() }),
        ];
        if let Some(bw) = p.bandwidth_for_slo_bytes_per_s {
            row.push(format!("{}B/s", si(bw)));
        }
        t.row(row);
    }
    print!("{}", t.render());
    Ok(())
}

fn cmd_metrics(
    records_path: &std::path::Path,
    model: &str,
    device: &DeviceArgs,
    table: &HardwareTable,
    formula: Formula,
    json: bool,
) -> Result<()> {
    let resolved = resolve_model(model)?;
    let d = &resolved.desc;
    let dev = device.resolve(table, d)?;
    let records = read_records(records_path)?;
    let file = records_path.display().to_string();
    let (peaks, prefill, decode, formula_name) = match formula {
        Formula::Exact => {
            let Records::Native(recs) = &records else {
                bail!(
                    "{file}: these are MoE-CAP harness records, which carry no per-layer experts or per-sequence contexts; use --formula moecap-compat"
                );
            };
            let peaks = DeviceArgs::peaks(&dev)?;
            let acct = Accountant::new(
                d,
                Precision {
                    weight: dev.dtype.bytes(),
                    kv: dev.kv_dtype.bytes(),
                },
                dev.kv_cache,
            );
            let (p, dcd) = exact_metrics(&acct, recs, peaks, &file)?;
            (peaks, p, dcd, "exact")
        }
        Formula::MoecapCompat => {
            let peaks = compat_peaks(&dev.hw, dev.dtype, dev.devices)?;
            let passes: Vec<CompatPass> = match &records {
                Records::Native(recs) => recs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        compat_pass(r, d).map_err(|m| moecap::Error::Record {
                            file: file.clone(),
                            line: i + 1,
                            msg: m,
                        })
                    })
                    .collect::<std::result::Result<_, _>>()?,
                Records::Harness { passes, .. } => passes.iter().map(CompatPass::from).collect(),
            };
            let cm = CompatModel::new(d);
            let split = |ph: moecap::accounting::Phase| -> Vec<CompatPass> {
                passes.iter().filter(|p| p.phase == ph).copied().collect()
            };
            let bw = dev.dtype.bytes();
            (
                peaks,
                compat_phase(&cm, &split(moecap::accounting::Phase::Prefill), bw, peaks),
                compat_phase(&cm, &split(moecap::accounting::Phase::Decode), bw, peaks),
                "moecap-compat",
            )
        }
    };
    let report = MetricsReport {
        formula: formula_name.into(),
        model: d.display_name(),
        hardware: dev.hw.name.clone(),
        devices: dev.devices,
        dtype: dev.dtype.name().into(),
        kv_dtype: if formula == Formula::MoecapCompat {
            dev.dtype.name().into()
        } else {
            dev.kv_dtype.name().into()
        },
        kv_cache: kv_cache_name(dev.kv_cache).into(),
        peaks,
        prefill,
        decode,
    };
    if json {
        return print_json(&report);
    }
    println!(
        "{} on {}x {} ({}), formula {}: {} passes from {}",
        report.model,
        report.devices,
        report.hardware,
        report.dtype,
        report.formula,
        records.len(),
        file
    );
    if let Records::Harness { skipped, .. } = &records {
        if *skipped > 0 {
            println!("({skipped} harness records without expert_activation skipped, as that harness does)");
        }
    }
    let mut t = Table::new(&[
        "phase",
        "passes",
        "tokens",
        "mean latency",
        "tokens/s",
        "S-MBU",
        "S-MFU",
        "MBU",
        "MFU",
        "experts/layer",
    ]);
    let row = |name: &str, m: &PhaseMetrics| {
        vec![
            name.to_string(),
            m.passes.to_string(),
            format!("{}", m.tokens),
            secs(m.mean_latency_s),
            format!("{:.1}", m.tokens_per_s),
            pct(m.s_mbu),
            format!("{:.4}%", m.s_mfu * 100.0),
            pct(m.mbu),
            format!("{:.4}%", m.mfu * 100.0),
            match (m.mean_activated_experts, m.uniform_expected_experts) {
                (Some(a), Some(u)) => format!("{a:.2} (uniform {u:.2})"),
                (Some(a), None) => format!("{a:.2}"),
                _ => "-".into(),
            },
        ]
    };
    if let Some(m) = &report.prefill {
        t.row(row("prefill", m));
    }
    if let Some(m) = &report.decode {
        t.row(row("decode", m));
    }
    print!("{}", t.render());
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x}"))
}

fn cmd_hw_list(table: &HardwareTable, json: bool) -> Result<()> {
    if json {
        return print_json(table);
    }
    let mut t = Table::new(&[
        "name",
        "kind",
        "mem GB",
        "BW GB/s",
        "fp32",
        "tf32",
        "bf16",
        "fp16",
        "fp8",
        "int8",
        "TDP W",
        "price $",
        "host link",
        "source",
    ])
    .left(1)
    .left(12)
    .left(13);
    for h in &table.rows {
        let p = |dt: DType| {
            h.peak_tflops
                .get(&dt)
                .map_or("-".into(), |v| format!("{v}"))
        };
        t.row(vec![
            h.name.clone(),
            format!("{:?}", h.kind).to_lowercase(),
            opt(h.memory_gb),
            format!("{}", h.bandwidth_gbs),
            p(DType::F32),
            p(DType::Tf32),
            p(DType::Bf16),
            p(DType::F16),
            p(DType::Fp8),
            p(DType::Int8),
            opt(h.tdp_w),
            opt(h.price_usd),
            h.host_link.clone().unwrap_or_else(|| "-".into()),
            h.source.clone(),
        ]);
    }
    println!("{} (peaks: dense TFLOP/s)", table.origin);
    print!("{}", t.render());
    Ok(())
}

fn cmd_hw_detect(table: &HardwareTable, json: bool) -> Result<()> {
    let host = detect_host();
    let matched = host
        .cpu_model
        .as_deref()
        .and_then(|m| match_cpu(table, m))
        .map(|h| h.name.clone());
    if json {
        return print_json(&json!({ "host": host, "table_match": matched }));
    }
    println!(
        "cpu          {}",
        host.cpu_model.as_deref().unwrap_or("unknown")
    );
    println!(
        "cores        {} usable logical CPUs{}",
        host.logical_cpus,
        host.physical_cores
            .map_or(String::new(), |c| format!(", {c} physical cores"))
    );
    println!(
        "memory       {}",
        host.memory_bytes
            .map_or("unknown".into(), |b| format!("{}B", si(b as f64)))
    );
    println!("os           {}", host.os);
    match matched {
        Some(n) => println!("table match  {n}"),
        None => println!(
            "table match  none: this CPU is not in {}; name a row with --hardware or add one with --hardware-file",
            table.origin
        ),
    }
    Ok(())
}

fn cmd_logits(args: &EngineArgs, input_ids: &str, output: &std::path::Path) -> Result<()> {
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
fn cmd_generate(
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
fn routing_summary(
    desc: &ModelDesc,
    recs: &[moecap::engine::probe::EngineRecord],
) -> serde_json::Value {
    let mut out = Vec::new();
    for phase in [
        moecap::accounting::Phase::Prefill,
        moecap::accounting::Phase::Decode,
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
