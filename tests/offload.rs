//! Expert offloading: every policy on hand-made traces with the hits worked out by hand, the
//! optimum never beaten on random traces, the import format's round trip, bad traces as one-line
//! errors naming file and line, and the commands end to end on a bench run.

use moecap::offload::sim::{simulate, Layout, Profile, SimOptions, SimResult, Variant};
use moecap::offload::trace::{to_import_lines, Replay, Trace, TracePass};
use moecap::records::Phase;
use moecap::rng::SplitMix64;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// A decode pass routing one token per entry of `layers[l]` (each token's ids).
fn pass(layers: &[(usize, Vec<Vec<u32>>)]) -> TracePass {
    let tokens = layers.first().map_or(1, |l| l.1.len());
    TracePass {
        phase: Phase::Decode,
        sequences: tokens,
        seqs: vec![(10, 1); tokens],
        layers: layers.iter().cloned().collect(),
        latency_s: Some(0.01),
        line: 0,
    }
}

fn trace(replays: Vec<Vec<TracePass>>) -> Trace {
    let layers: std::collections::BTreeSet<usize> = replays
        .iter()
        .flatten()
        .flat_map(|p| p.layers.keys().copied())
        .collect();
    Trace {
        source: "hand".into(),
        model: None,
        replays: replays
            .into_iter()
            .enumerate()
            .map(|(i, passes)| Replay {
                label: format!("r{i}"),
                point: None,
                file: "hand".into(),
                passes,
            })
            .collect(),
        moe_layers: layers.into_iter().collect(),
    }
}

fn opts(global: bool) -> SimOptions {
    SimOptions {
        global,
        prefetch: 0,
        max_uploads: 0,
        half_life: 8.0,
        warm_static: false,
    }
}

fn run(t: &Trace, layout: &Layout, policy: &str, cap: usize, global: bool) -> SimResult {
    let profile = Profile::of(t, layout);
    let v = Variant::parse(policy).expect("policy");
    simulate(t, layout, &profile, &[v], &[cap], &opts(global)).remove(0)
}

/// One layer, one token per pass, the given experts in turn.
fn single(seq: &[u32]) -> Trace {
    trace(vec![seq
        .iter()
        .map(|&e| pass(&[(0, vec![vec![e]])]))
        .collect()])
}

fn one_layer(e: usize) -> Layout {
    Layout {
        layers: vec![0],
        experts: vec![e],
    }
}

#[test]
fn lfu_breaks_ties_by_recency_and_differs_from_lru() {
    // capacity 2: 0 1 0 2 1 3 0 1. LFU: 0 in, 1 in, 0 hit, 2 evicts 1 (count 1 < 2), 1 evicts 2
    // (count 1 < 2), 3: 0 and 1 both twice, 0 less recent, evicted; 0 evicts 3; 1 hits.
    // LRU: only the second access of 0 hits.
    let t = single(&[0, 1, 0, 2, 1, 3, 0, 1]);
    let l = one_layer(4);
    let lfu = run(&t, &l, "lfu", 2, false);
    assert_eq!((lfu.decode.accesses, lfu.decode.hits), (8, 2));
    let lru = run(&t, &l, "lru", 2, false);
    assert_eq!(lru.decode.hits, 1);
    assert_eq!(lru.decode.misses, 7);
    assert_eq!(lru.decode.streamed, 0);
}

#[test]
fn belady_bypasses_and_static_streams() {
    // capacity 1: A B A. Belady keeps A and streams B (B is never used again); LRU evicts A.
    let t = single(&[0, 1, 0]);
    let l = one_layer(2);
    let b = run(&t, &l, "belady", 1, false);
    assert_eq!(
        (b.decode.hits, b.decode.misses, b.decode.streamed),
        (1, 2, 1)
    );
    assert_eq!(run(&t, &l, "lru", 1, false).decode.hits, 0);
    // static keeps the most-accessed expert (0, twice) from the start and streams the rest
    let s = run(&t, &l, "static", 1, false);
    assert_eq!((s.decode.hits, s.decode.streamed), (2, 1));
    // capacity 0 streams everything
    let z = run(&t, &l, "lru", 0, false);
    assert_eq!(
        (z.decode.hits, z.decode.misses, z.decode.streamed),
        (0, 3, 3)
    );
}

#[test]
fn one_pass_of_several_tokens_counts_distinct_experts_and_assignments() {
    // three tokens choose {0,1}, {1,2}, {1,3}: four distinct experts, six assignments; expert 1
    // carries three of them
    let t = trace(vec![vec![
        pass(&[(0, vec![vec![1, 0], vec![1, 2], vec![3, 1]])]),
        pass(&[(0, vec![vec![1, 2], vec![1, 0], vec![2, 1]])]),
    ]]);
    let l = one_layer(4);
    let r = run(&t, &l, "lru", 4, false);
    assert_eq!(r.decode.accesses, 4 + 3);
    assert_eq!(r.decode.assignments, 12);
    // second pass: 0, 1, 2 resident: every access and every assignment hits
    assert_eq!((r.decode.hits, r.decode.assignment_hits), (3, 6));
    assert!((r.decode.token_hit_rate() - 0.5).abs() < 1e-12);
}

#[test]
fn the_global_pool_is_shared_by_layers() {
    // two layers of 3 experts. Pass 1: layer 0 uses 0, 1, 2; layer 1 uses 0. Pass 2: layer 0
    // uses 0, layer 1 uses 0. Global capacity 3 (LRU): layer 1's expert evicts layer 0's expert 0,
    // so pass 2 misses it and hits layer 1's. Per layer, capacity 3: both hit.
    let t = trace(vec![vec![
        pass(&[
            (0, vec![vec![0], vec![1], vec![2]]),
            (1, vec![vec![0], vec![0], vec![0]]),
        ]),
        pass(&[(0, vec![vec![0]]), (1, vec![vec![0]])]),
    ]]);
    let l = Layout {
        layers: vec![0, 1],
        experts: vec![3, 3],
    };
    let g = run(&t, &l, "lru", 3, true);
    assert_eq!((g.decode.accesses, g.decode.hits), (6, 1));
    let p = run(&t, &l, "lru", 3, false);
    assert_eq!(p.decode.hits, 2);
}

/// A random trace: 1–3 replays of 10–40 passes, 1–3 tokens each, over `layers` MoE layers of
/// `e` experts with top-`k`, skewed towards low ids.
fn random_trace(seed: u64, layers: usize, e: usize, k: usize) -> Trace {
    let mut rng = SplitMix64::new(seed);
    let mut pick = |n: u64| (rng.next_u64() % n) as usize;
    let replays = (0..1 + pick(3))
        .map(|_| {
            (0..10 + pick(31))
                .map(|_| {
                    let tokens = 1 + pick(3);
                    let ls: Vec<(usize, Vec<Vec<u32>>)> = (0..layers)
                        .map(|l| {
                            let toks = (0..tokens)
                                .map(|_| {
                                    let mut ids = Vec::new();
                                    while ids.len() < k {
                                        // squared draw: a skew towards low ids
                                        let x = pick((e * e) as u64);
                                        let id = ((x as f64).sqrt() as usize).min(e - 1) as u32;
                                        if !ids.contains(&id) {
                                            ids.push(id);
                                        }
                                    }
                                    ids
                                })
                                .collect();
                            (l, toks)
                        })
                        .collect();
                    pass(&ls)
                })
                .collect()
        })
        .collect();
    trace(replays)
}

#[test]
fn belady_is_never_beaten_on_random_traces() {
    let mut checked = 0;
    for seed in 0..120u64 {
        let (layers, e, k) = (
            1 + seed as usize % 3,
            4 + seed as usize % 5,
            1 + seed as usize % 3,
        );
        let t = random_trace(seed, layers, e, k);
        let layout = Layout {
            layers: (0..layers).collect(),
            experts: vec![e; layers],
        };
        let profile = Profile::of(&t, &layout);
        let variants: Vec<Variant> = ["lru", "lfu", "lfru", "static", "belady"]
            .iter()
            .map(|p| Variant::parse(p).expect("policy"))
            .collect();
        for global in [false, true] {
            let caps: Vec<usize> = (0..=if global { e * layers } else { e }).collect();
            let res = simulate(&t, &layout, &profile, &variants, &caps, &opts(global));
            for &c in &caps {
                let hits = |name: &str| {
                    res.iter()
                        .find(|r| r.variant.name() == name && r.capacity == c)
                        .map(|r| r.all().hits)
                        .expect("result")
                };
                let best = hits("belady");
                for p in ["lru", "lfu", "lfru"] {
                    assert!(
                        hits(p) <= best,
                        "seed {seed} global {global} capacity {c}: {p} {} > belady {best}",
                        hits(p)
                    );
                }
                // static starts full: at most its warm start (C per pool, per replay) ahead
                let pools = if global { 1 } else { layers };
                let warm = (c * pools).min(e * layers) * t.replays.len();
                assert!(
                    hits("static") <= best + warm as u64,
                    "seed {seed} global {global} capacity {c}: static {} > belady {best} + {warm}",
                    hits("static")
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn the_import_format_round_trips() {
    let t = random_trace(7, 3, 6, 2);
    let text = to_import_lines(&t).expect("serialises");
    let back = Trace::parse(&text, "import.jsonl", None).expect("parses");
    assert_eq!(back.replays.len(), t.replays.len());
    for (a, b) in t.replays.iter().zip(&back.replays) {
        assert_eq!(a.passes.len(), b.passes.len());
        for (p, q) in a.passes.iter().zip(&b.passes) {
            assert_eq!((p.phase, &p.layers), (q.phase, &q.layers));
        }
    }
}

#[test]
fn bad_traces_name_file_and_line() {
    let err = |text: &str| {
        Trace::parse(text, "t.jsonl", None)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = err("{\"pass\":0,\"phase\":\"decode\",\"layer\":0,\"ids\":[[1]]}\n{\"pass\":1,\"phase\":\"warmup\",\"layer\":0,\"ids\":[[1]]}\n");
    assert!(e.starts_with("t.jsonl:2:") && e.contains("warmup"), "{e}");
    let e = err("{\"pass\":0,\"phase\":\"decode\",\"layer\":0,\"ids\":[[1]]}\n{\"pass\":0,\"phase\":\"decode\",\"layer\":0,\"ids\":[[2]]}\n");
    assert!(
        e.starts_with("t.jsonl:2:") && e.contains("layer 0 twice"),
        "{e}"
    );
    assert!(err("{\"x\":1}").contains("not a routing trace"));
    // against a model: a missing MoE layer, an id past the experts
    let t = Trace::parse(
        "{\"pass\":0,\"phase\":\"decode\",\"layer\":0,\"ids\":[[1,2]]}\n{\"pass\":1,\"phase\":\"decode\",\"layer\":0,\"ids\":[[1,9]]}\n{\"pass\":1,\"phase\":\"decode\",\"layer\":1,\"ids\":[[1,2]]}\n",
        "t.jsonl",
        None,
    )
    .expect("parses");
    let model: BTreeMap<usize, (usize, usize)> = [(0, (8, 2)), (1, (8, 2))].into_iter().collect();
    let e = t.check(&model).unwrap_err().to_string();
    assert!(
        e.starts_with("t.jsonl:1:") && e.contains("MoE layer 1"),
        "{e}"
    );
    let only0: BTreeMap<usize, (usize, usize)> = [(0, (8, 2))].into_iter().collect();
    let e = t.check(&only0).unwrap_err().to_string();
    assert!(e.starts_with("t.jsonl:2:") && e.contains("expert 9"), "{e}");
}

fn moecap(args: &[&str], cache: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args(args)
        .env("MOECAP_CACHE_DIR", cache)
        .output()
        .expect("runs")
}

#[test]
fn routing_and_simulate_on_a_bench_run() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-offload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let ceil = tmp.join("ceilings.json");
    std::fs::write(&ceil, r#"{"key":"t","copy_bytes_per_s":1e10,"triad_bytes_per_s":1e10,"buffer_bytes":1,"matmul_flops_per_s":{"f32":1e11},"matmul_size":{"f32":64},"threads":1,"measured_at":0,"method":3}"#).unwrap();
    let run = tmp.join("run");
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let o = moecap(
        &[
            "bench",
            "--model",
            "synthetic:tiny-mixtral",
            "--batch",
            "1,2",
            "--prompt-len",
            "8",
            "--gen-len",
            "6",
            "--repetitions",
            "1",
            "--warmup",
            "0",
            "--ceilings",
            &s(&ceil),
            "--out",
            &s(&run),
        ],
        &tmp,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.join("routing");
    let o = moecap(&["routing", &s(&run), "--json", "--out", &s(&out)], &tmp);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 4);
    assert!(v["experts_from_model"].as_bool().unwrap());
    // 2 points × 6 passes; every assignment counted: tokens × k per layer
    assert_eq!(v["passes"], 12);
    let tokens = 8 + 5 + 2 * 8 + 2 * 5;
    assert_eq!(v["layers"][0]["assignments"], tokens * 2);
    for f in [
        "routing.md",
        "routing.csv",
        "routing.json",
        "load.svg",
        "coactivation.svg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let sim = tmp.join("sim");
    let o = moecap(
        &[
            "offload",
            "simulate",
            "--trace",
            &s(&run),
            "--capacity",
            "0,2,8",
            "--link-gbs",
            "20",
            "--json",
            "--out",
            &s(&sim),
        ],
        &tmp,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "synthetic:tiny-mixtral");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 5 * 3);
    for r in results {
        for ph in ["prefill", "decode", "all"] {
            for k in [
                "accesses",
                "hits",
                "misses",
                "streamed",
                "hit_rate",
                "token_hit_rate",
                "h2d_bytes",
            ] {
                assert!(r[ph].get(k).is_some(), "{ph}.{k}");
            }
        }
        assert!(r["decode"]["tpot_s"].as_f64().unwrap() > 0.0);
        assert!(r["prefill"]["ttft_s"].as_f64().unwrap() > 0.0);
        // capacity 0 streams everything; capacity 8 (every expert) only misses cold
        if r["capacity"] == 0 {
            assert_eq!(r["all"]["hits"], 0);
            assert_eq!(r["all"]["streamed"], r["all"]["accesses"]);
        }
    }
    // the miss penalty: 20 GB/s and 10 µs per transfer, on top of the measured pass times
    let lru0 = &results[0];
    let extra = lru0["all"]["time_s"].as_f64().unwrap() - {
        let t: f64 = std::fs::read_to_string(run.join("records.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["latency_s"]
                    .as_f64()
                    .unwrap()
            })
            .sum();
        t
    };
    let misses = lru0["all"]["misses"].as_f64().unwrap();
    let bytes = v["expert_bytes"].as_f64().unwrap();
    assert!(
        (extra - misses * (bytes / 20e9 + 10e-6)).abs() < 1e-9,
        "{extra}"
    );
    for f in [
        "results.md",
        "results.csv",
        "results.json",
        "hit_rate.svg",
        "tpot.svg",
    ] {
        assert!(sim.join(f).is_file(), "{f}");
    }
    // bad arguments are one-line errors
    for (args, needle) in [
        (vec!["--policy", "fifo"], "--policy"),
        (vec!["--scope", "node"], "--scope"),
        (vec!["--device-memory", "1k"], "do not hold"),
        (vec!["--on-miss", "disk"], "--on-miss"),
    ] {
        let mut a = vec!["offload", "simulate", "--trace"];
        let r = s(&run);
        a.push(&r);
        a.extend(args);
        let o = moecap(&a, &tmp);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
