//! `moecap bench`: aggregation of hand-made records against hand calculation (time-weighted
//! utilisation, TTFT/TPOT/ITL, time shares, probe overhead), and the command end to end: report
//! files that agree with each other, resume after an interruption, clear errors.

use moecap::accounting::{Accountant, Precision};
use moecap::bench::run::Repetition;
use moecap::bench::summary::{summarise_point, PointSpec};
use moecap::machine::hardware::Peaks;
use moecap::machine::targets::Ceiling;
use moecap::model::dtype::DType;
use moecap::model::synthetic::synthetic_desc;
use moecap::records::{EngineRecord, LayerRouting, LayerTiming, PassTiming};
use moecap::records::{KvCacheKind, Phase, SeqSlice};
use moecap::records::{LayerExperts, PassRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A pass of tiny-mixtral (4 MoE layers, 8 experts, top-2) with `experts[l]` activated in layer
/// l and every region of every layer taking `region_s`.
fn record(
    phase: Phase,
    latency: f64,
    cached: &[u64],
    new: &[u64],
    experts: &[&[u32]],
    region_s: f64,
) -> EngineRecord {
    let mut ex = BTreeMap::new();
    let mut topk = BTreeMap::new();
    for (l, ids) in experts.iter().enumerate() {
        ex.insert(l.to_string(), LayerExperts::Ids(ids.to_vec()));
        topk.insert(l.to_string(), LayerRouting::default());
    }
    EngineRecord {
        pass: PassRecord {
            pass: None,
            phase,
            latency_s: latency,
            cached_tokens: cached.to_vec(),
            new_tokens: new.to_vec(),
            logits_positions: Some(new.len() as u64),
            experts: ex,
            kv_cache: None,
        },
        topk,
        timing: PassTiming {
            embed_s: 0.0,
            head_s: 0.0,
            layers: (0..4)
                .map(|layer| LayerTiming {
                    layer,
                    attention_s: region_s,
                    router_s: region_s / 2.0,
                    experts_s: 2.0 * region_s,
                    shared_s: 0.0,
                    other_s: region_s / 4.0,
                })
                .collect(),
        },
    }
}

fn rep(scale: f64) -> Repetition {
    let all: &[u32] = &[0, 1, 2, 3, 4, 5, 6, 7];
    Repetition {
        records: vec![
            record(
                Phase::Prefill,
                0.010 * scale,
                &[0, 0],
                &[4, 4],
                &[all, all, all, &[0, 1, 2, 3, 4, 5]],
                1e-4,
            ),
            record(
                Phase::Decode,
                0.002 * scale,
                &[4, 4],
                &[1, 1],
                &[&[0, 1, 2], &[3, 4], &[0, 1, 2, 3], &[5, 6, 7]],
                1e-4,
            ),
            record(
                Phase::Decode,
                0.004 * scale,
                &[5, 5],
                &[1, 1],
                &[&[1, 2], &[3, 4, 5], &[6, 7], &[0, 1, 2, 3]],
                2e-4,
            ),
        ],
        unprobed_latency_s: None,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-30)
}

#[test]
fn point_figures_by_hand() {
    let desc = synthetic_desc("tiny-mixtral").unwrap();
    let acct = Accountant::new(&desc, Precision::uniform(DType::F32), KvCacheKind::Gqa);
    let peaks = Peaks {
        bandwidth_bytes_per_s: 1e9,
        flops_per_s: 1e11,
    };
    let ceiling = Ceiling {
        spec: None,
        measured: Some(peaks),
    };
    let point = PointSpec {
        batch: 2,
        prompt_len: 4,
    };
    // repetition 2 is twice as slow
    let s = summarise_point(&acct, point, 3, &[rep(1.0), rep(2.0)], ceiling).unwrap();
    assert_eq!(s.repetitions, 2);
    // TTFT: 10 ms and 20 ms; TPOT: (2 + 4) / 2 = 3 ms and 6 ms
    let ttft = s.ttft_s.unwrap();
    assert!(close(ttft.median, 0.015) && close(ttft.min, 0.010) && close(ttft.max, 0.020));
    let tpot = s.tpot_s.unwrap();
    assert!(close(tpot.median, 0.0045));
    // sample std of {3, 6} ms = 2.1213 ms; 95% interval t(1) = 12.706 · std / √2
    assert!(close(tpot.std, 0.003 / 2f64.sqrt()));
    assert!(close(tpot.ci95, 12.706 * tpot.std / 2f64.sqrt()));
    // ITL over all decode passes {2, 4, 4, 8} ms: p50 4, p90 6.8, p99 7.88
    let itl = s.itl_s.unwrap();
    assert!(
        close(itl[0], 0.004) && close(itl[1], 0.0068) && close(itl[2], 0.00788),
        "{itl:?}"
    );
    // throughput: 8 prompt tokens in 10 ms; 4 generated tokens in 6 ms (first repetition)
    let pre = s.prefill.tokens_per_s.unwrap();
    assert!(close(pre.max, 800.0) && close(pre.min, 400.0));
    let dec = s.decode.tokens_per_s.unwrap();
    assert!(close(dec.max, 4.0 / 0.006));
    // decode S-MBU of repetition 1: both passes' bytes over both passes' time (time-weighted)
    let seq = |c| {
        vec![
            SeqSlice { cached: c, new: 1 },
            SeqSlice { cached: c, new: 1 },
        ]
    };
    let c1 = acct.pass_cost(&seq(4), &[3.0, 2.0, 4.0, 3.0], 2);
    let c2 = acct.pass_cost(&seq(5), &[2.0, 3.0, 2.0, 4.0], 2);
    let bytes = c1.weight_bytes + c1.kv_bytes + c2.weight_bytes + c2.kv_bytes;
    let want = bytes / 0.006 / 1e9;
    let got = s.decode.utilisation.measured_s_mbu.unwrap();
    assert!(close(got.max, want), "{} vs {want}", got.max);
    assert!(close(got.min, want / 2.0));
    let mean_of_ratios = ((c1.weight_bytes + c1.kv_bytes) / 0.002
        + (c2.weight_bytes + c2.kv_bytes) / 0.004)
        / 2.0
        / 1e9;
    assert!(
        !close(got.max, mean_of_ratios),
        "utilisation is time-weighted, not a mean of ratios"
    );
    let flops = (c1.flops + c2.flops) / 0.006 / 1e11;
    assert!(close(
        s.decode.utilisation.measured_s_mfu.unwrap().max,
        flops
    ));
    let dense =
        (c1.dense_weight_bytes + c1.kv_bytes + c2.dense_weight_bytes + c2.kv_bytes) / 0.006 / 1e9;
    assert!(close(s.decode.utilisation.measured_mbu.unwrap().max, dense));
    assert!(
        s.decode.utilisation.spec_s_mbu.is_none(),
        "no spec peaks given"
    );
    // activated experts: layer 0 decode passes 3 and 2 -> mean 2.5, min 2, max 3
    let l0 = &s.decode.experts[0];
    assert_eq!((l0.mean, l0.min, l0.max), (2.5, 2.0, 3.0));
    assert!(close(
        s.decode.mean_activated_experts.unwrap(),
        (2.5 + 2.5 + 3.0 + 3.5) / 4.0
    ));
    // uniform: 2 tokens, top-2 of 8: 8 (1 - (6/8)^2) = 3.5
    assert!(close(l0.uniform, 3.5));
    // time shares of decode: per pass 4 layers × (attention r, router r/2, experts 2r);
    // r = 0.1 ms and 0.2 ms over 6 ms (rep 1), 0.1/0.2 ms over 12 ms (rep 2)
    let sh = s.decode.time_share.as_ref().unwrap();
    let r_sum = 2.0 * (4.0 * 1e-4 + 4.0 * 2e-4);
    assert!(close(sh.attention, r_sum / 0.018), "{}", sh.attention);
    assert!(close(sh.router, r_sum / 2.0 / 0.018));
    assert!(close(sh.experts, 2.0 * r_sum / 0.018));
    assert!(close(
        sh.attention + sh.router + sh.experts + sh.shared + sh.rest,
        1.0
    ));
    // per-layer mean seconds per decode pass: attention (1e-4 + 2e-4) / 2
    assert!(close(s.decode.layer_times[0].attention_s, 1.5e-4));
    assert!(s.decode.probe_overhead.is_none());
}

#[test]
fn no_probe_mode_counts_unprobed_time() {
    let desc = synthetic_desc("tiny-mixtral").unwrap();
    let acct = Accountant::new(&desc, Precision::uniform(DType::F32), KvCacheKind::Gqa);
    let mut r = rep(1.0);
    // unprobed passes: 9, 1.5, 3 ms
    r.unprobed_latency_s = Some(vec![0.009, 0.0015, 0.003]);
    let ceiling = Ceiling {
        spec: Some(Peaks {
            bandwidth_bytes_per_s: 2e9,
            flops_per_s: 1e12,
        }),
        measured: None,
    };
    let s = summarise_point(
        &acct,
        PointSpec {
            batch: 2,
            prompt_len: 4,
        },
        3,
        &[r],
        ceiling,
    )
    .unwrap();
    assert!(close(s.ttft_s.unwrap().median, 0.009));
    assert!(close(s.tpot_s.unwrap().median, 0.00225));
    assert!(close(s.decode.tokens_per_s.unwrap().median, 4.0 / 0.0045));
    // probe overhead: probed 6 ms over unprobed 4.5 ms
    assert!(close(s.decode.probe_overhead.unwrap(), 0.006 / 0.0045));
    assert!(close(s.prefill.probe_overhead.unwrap(), 0.010 / 0.009));
    assert!(
        s.decode.utilisation.spec_s_mbu.is_some() && s.decode.utilisation.measured_s_mbu.is_none()
    );
}

// ---- the command end to end ----

fn moecap(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args(args)
        .env("MOECAP_CACHE_DIR", cache)
        .env("MOECAP_DATA", cache.join("no-data"))
        .output()
        .expect("the binary runs")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A ceilings file with round numbers, so tests need no measurement.
fn ceilings_file(dir: &Path) -> String {
    let p = dir.join("ceilings.json");
    std::fs::write(
        &p,
        r#"{"key":"test","copy_bytes_per_s":1e10,"triad_bytes_per_s":8e9,"buffer_bytes":1,
            "matmul_flops_per_s":{"f32":1e11},"matmul_size":{"f32":64},"threads":1,"measured_at":0}"#,
    )
    .unwrap();
    p.display().to_string()
}

/// A bench run of the tiny synthetic model; a fresh run takes its ceilings from a test file, a
/// resumed one keeps those it started with.
fn bench(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let ceil = ceilings_file(dir);
    let mut args = vec![
        "bench",
        "--model",
        "synthetic:tiny-mixtral",
        "--prompt-len",
        "8",
        "--gen-len",
        "3",
        "--warmup",
        "0",
        "--repetitions",
        "2",
    ];
    if !extra.contains(&"--resume") {
        args.extend(["--ceilings", &ceil]);
    }
    args.push("--out");
    let o = out.display().to_string();
    args.push(&o);
    args.extend_from_slice(extra);
    moecap(&args, dir)
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn report_files_agree_with_each_other() {
    let dir = tmpdir("files");
    let out = dir.join("run");
    let text = ok(&bench(&dir, &out, &["--batch", "1,3"]));
    assert!(text.contains("SYNTHETIC"), "{text}");
    assert!(text.contains("summary.md"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let points = summary["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(summary["settings"]["synthetic"], true);
    assert_eq!(summary["ceilings"]["copy_bytes_per_s"], 1e10);
    // provenance: sequence i of a point starts at paragraph i of the built-in sample text
    assert_eq!(summary["settings"]["prompts"], "sample");
    let items = &points[1]["prompt_items"];
    assert_eq!(items.as_array().unwrap().len(), 3);
    assert_eq!(items[2][0], 2);
    // CSV rows = JSON points, same medians
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let head = &rows[0];
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    assert_eq!(rows.len(), 3);
    for (row, p) in rows[1..].iter().zip(points) {
        assert_eq!(row[col("batch")], p["point"]["batch"].to_string());
        let tps: f64 = row[col("decode_tokens_per_s_median")].parse().unwrap();
        // serde_json's float parser may differ in the last bit
        assert!(close(
            tps,
            p["decode"]["tokens_per_s"]["median"].as_f64().unwrap()
        ));
        let mbu: f64 = row[col("decode_s_mbu_measured")].parse().unwrap();
        let bps = p["decode"]["utilisation"]["bytes_per_s"]["median"]
            .as_f64()
            .unwrap();
        assert!(
            close(mbu, bps / 1e10),
            "measured S-MBU uses the larger of copy and triad"
        );
    }
    // records: every pass of every repetition; each line is a moecap pass record
    let recs = lines(&out.join("records.jsonl"));
    assert_eq!(recs.len(), 2 * 2 * 3, "2 points × 2 repetitions × 3 passes");
    let prefill: Vec<_> = recs.iter().filter(|r| r["phase"] == "prefill").collect();
    assert_eq!(prefill.len(), 4);
    let text = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert!(
        matches!(moecap::records::parse_records(&text, "r").unwrap(), moecap::records::Records::Native(v) if v.len() == 12)
    );
    // TTFT median in the summary = median of the two prefill latencies of the point
    let b3: Vec<f64> = prefill
        .iter()
        .filter(|r| r["point"] == "b3-p8")
        .map(|r| r["latency_s"].as_f64().unwrap())
        .collect();
    let ttft = points[1]["ttft_s"]["median"].as_f64().unwrap();
    assert!(close(ttft, (b3[0] + b3[1]) / 2.0));
    // routing: the distinct ids of each layer are the record's experts
    let routing = lines(&out.join("routing").join("b3-p8.jsonl"));
    assert_eq!(routing.len(), 6);
    let b3_recs: Vec<_> = recs.iter().filter(|r| r["point"] == "b3-p8").collect();
    for (rt, rec) in routing.iter().zip(&b3_recs) {
        let tokens: u64 = rt["new_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        for (l, layer) in rt["layers"].as_object().unwrap() {
            let k = layer["k"].as_u64().unwrap();
            let ids: Vec<u64> = layer["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(ids.len() as u64, tokens * k);
            let mut d = ids.clone();
            d.sort_unstable();
            d.dedup();
            let want: Vec<u64> = rec["experts"][l]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(d, want, "layer {l}");
        }
    }
    for f in [
        "summary.md",
        "throughput.svg",
        "prefill_throughput.svg",
        "latency.svg",
        "s_mbu.svg",
        "experts.svg",
        "breakdown.svg",
    ] {
        let t = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!t.is_empty(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| 1 |") || l.starts_with("| 3 |"))
            .count(),
        2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_continues_an_interrupted_run() {
    let dir = tmpdir("resume");
    let out = dir.join("run");
    ok(&bench(&dir, &out, &["--batch", "1,2"]));
    let first = std::fs::read_to_string(out.join("points").join("b1-p8.json")).unwrap();
    // an interruption during point b2: its summary never written, its records partly there
    std::fs::remove_file(out.join("points").join("b2-p8.json")).unwrap();
    let o = bench(&dir, &out, &["--batch", "1,2,4", "--resume"]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 of 3 points already finished"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("points").join("b1-p8.json")).unwrap(),
        first,
        "finished points are kept"
    );
    let recs = lines(&out.join("records.jsonl"));
    for p in ["b1-p8", "b2-p8", "b4-p8"] {
        assert_eq!(
            recs.iter().filter(|r| r["point"] == p).count(),
            6,
            "{p}: no duplicate records"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["points"].as_array().unwrap().len(), 3);
    // without --resume the folder is not overwritten; with other settings it is not resumed
    let o = bench(&dir, &out, &["--batch", "1"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--resume"));
    let o = bench(&dir, &out, &["--batch", "1", "--resume", "--seed", "5"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("seed"), "{err}");
    let o = bench(
        &dir,
        &out,
        &["--batch", "1", "--resume", "--weights-seed", "7"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("weights_seed = 0, this command has 7"),
        "{err}"
    );
    let other = dir.join("other-ceilings.json");
    std::fs::write(
        &other,
        std::fs::read_to_string(ceilings_file(&dir))
            .unwrap()
            .replace("1e10", "2e10"),
    )
    .unwrap();
    let ceil = other.display().to_string();
    let o = bench(
        &dir,
        &out,
        &["--batch", "1", "--resume", "--ceilings", &ceil],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--resume keeps the ceilings the run started with"),
        "{err}"
    );
    // a resumed run is measured against the ceilings it started with, whatever the cache says
    assert_eq!(summary["ceilings"]["copy_bytes_per_s"], 1e10);
    // a smaller sweep resumed: nothing to run, and the summary still has every point
    ok(&bench(&dir, &out, &["--batch", "1", "--resume"]));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(again["points"].as_array().unwrap().len(), 3);
    assert_eq!(again["ceilings"], summary["ceilings"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_bench_flags_are_one_line_errors() {
    let dir = tmpdir("errors");
    let out = dir.join("run");
    let cases: &[(&[&str], &str)] = &[
        (&["--batch", "0"], "--batch"),
        (&["--prompts", "wiki"], "--prompts"),
        (&["--prompts", "gsm8k"], "scripts/fetch-data.sh"),
        (&["--hardware", "no-such-gpu"], "no-such-gpu"),
        (&["--resume"], "no run.json"),
    ];
    for (extra, needle) in cases {
        let o = bench(&dir, &out, extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(
            !err.contains("panicked") && err.trim_end().lines().count() == 1,
            "{err}"
        );
    }
    let o = moecap(
        &[
            "bench",
            "--model",
            "synthetic:tiny-mixtral",
            "--gen-len",
            "0",
        ],
        &dir,
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--gen-len"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spec_utilisation_with_a_named_device() {
    let dir = tmpdir("spec");
    let out = dir.join("run");
    ok(&bench(
        &dir,
        &out,
        &["--batch", "2", "--hardware", "H100-SXM-80GB"],
    ));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["spec"]["name"], "H100-SXM-80GB");
    let u = &s["points"][0]["decode"]["utilisation"];
    let spec = u["spec_s_mbu"]["median"].as_f64().unwrap();
    let meas = u["measured_s_mbu"]["median"].as_f64().unwrap();
    // the same bytes per second against 3350 GB/s and against 10 GB/s
    assert!(close(spec * 3350e9, meas * 1e10));
    std::fs::remove_dir_all(&dir).unwrap();
}
