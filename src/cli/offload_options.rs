//! The flags of the offloading commands: `routing` (analytics of a trace) and `offload simulate`
//! (cache policies replayed on it).

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct RoutingArgs {
    /// A bench run folder, a routing file (`routing/POINT.jsonl`), engine records with routing
    /// (`generate --records`, eval's `records.jsonl`) or an import-format trace.
    #[arg(value_name = "RUN_DIR|TRACE")]
    pub(crate) trace: PathBuf,
    /// The model (expert counts; default: the bench run's model, else inferred from the trace).
    #[arg(long, value_name = "DIR|PRESET|synthetic:NAME")]
    pub(crate) model: Option<String>,
    /// Which passes: prefill, decode or all.
    #[arg(long, default_value = "all")]
    pub(crate) phase: String,
    /// The MoE layer of the co-activation heatmap [default: the first].
    #[arg(long)]
    pub(crate) layer: Option<usize>,
    /// Write routing.md/csv/json and the heatmaps here.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum OffloadCommand {
    /// Replay cache policies × capacities on a routing trace: hits, misses, bytes moved,
    /// predicted TTFT/TPOT and device memory.
    Simulate(SimulateArgs),
}

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// A bench run folder or a trace file (as `moecap routing` reads them).
    #[arg(long, value_name = "RUN_DIR|TRACE")]
    pub(crate) trace: PathBuf,
    /// The model [default: the bench run's model].
    #[arg(long, value_name = "DIR|PRESET|synthetic:NAME")]
    pub(crate) model: Option<String>,
    /// A hardware-table row: the device whose roofline gives pass times, whose host link carries
    /// the misses and whose bandwidth S-MBU is measured against [default: the trace's measured
    /// pass times].
    #[arg(long, value_name = "NAME")]
    pub(crate) hardware: Option<String>,
    /// Weight format [default: the bench run's engine dtype, else the checkpoint's].
    #[arg(long)]
    pub(crate) dtype: Option<String>,
    /// Policies (comma-separated): lru, lfu, lfru, static, belady, and lru+prefetch,
    /// lfu+prefetch, lfru+prefetch.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lru,lfu,lfru,static,belady"
    )]
    pub(crate) policy: Vec<String>,
    /// layer (a pool of capacity experts per MoE layer) or global (one pool).
    #[arg(long, default_value = "layer")]
    pub(crate) scope: String,
    /// Capacities to sweep (comma-separated) [default: 0, 1, 2, 4, … up to every expert].
    #[arg(long, value_delimiter = ',', conflicts_with = "device_memory")]
    pub(crate) capacity: Vec<usize>,
    /// Device memory for the weights (bytes; k, M, G, Ki, Mi, Gi suffixes): the capacity it
    /// leaves after everything but the routed experts.
    #[arg(long, value_name = "BYTES")]
    pub(crate) device_memory: Option<String>,
    /// How a miss is served: fetch (weights over the link), cpu (computed on the host), lowbit
    /// (a low-precision copy over the link).
    #[arg(long, default_value = "fetch")]
    pub(crate) on_miss: String,
    /// The low-precision copy of --on-miss lowbit: int8 or int4.
    #[arg(long, default_value = "int8")]
    pub(crate) lowbit: String,
    /// Experts a +prefetch policy loads per layer step [default: the model's top-k].
    #[arg(long)]
    pub(crate) prefetch: Option<usize>,
    /// Uploads a prefetch may start per layer step [default: --prefetch].
    #[arg(long)]
    pub(crate) max_uploads: Option<usize>,
    /// Host link bandwidth per direction, GB/s [default: the hardware row's host link].
    #[arg(long, value_name = "GB/S")]
    pub(crate) link_gbs: Option<f64>,
    /// Latency of one transfer over the host link, microseconds.
    #[arg(long, default_value_t = 10.0, value_name = "US")]
    pub(crate) link_latency_us: f64,
    /// Host memory bandwidth for --on-miss cpu, GB/s [default: this machine's measured ceilings,
    /// when cached].
    #[arg(long, value_name = "GB/S")]
    pub(crate) cpu_gbs: Option<f64>,
    /// Host matmul throughput for --on-miss cpu, GFLOP/s [default: this machine's measured
    /// ceilings, when cached].
    #[arg(long, value_name = "GFLOP/S")]
    pub(crate) cpu_gflops: Option<f64>,
    /// LFRU's half-life of an access's weight, in passes.
    #[arg(long, default_value_t = 8.0)]
    pub(crate) lfru_half_life: f64,
    /// `static`: start every policy full with the static policy's set.
    #[arg(long, value_name = "static")]
    pub(crate) warm: Option<String>,
    /// The trace the static sets and prefetch predictions are counted over [default: the
    /// replayed trace, i.e. the best static placement].
    #[arg(long, value_name = "RUN_DIR|TRACE")]
    pub(crate) profile: Option<PathBuf>,
    /// Write results.json/csv/md and the plots here.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Price every configuration: `default` (the default host) or a deployment file whose
    /// non-GPU, non-DRAM parts are the host; each gets the smallest GPU holding it.
    #[arg(long, value_name = "FILE|default")]
    pub(crate) deployment: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
