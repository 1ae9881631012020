//! Cost, the CAP report and compare, through the binary: a bench run priced on a deployment
//! (checked by hand arithmetic from its own medians), `moecap cost` with the published formula,
//! deployment errors as one-line messages, the report's HTML structure, and compare's
//! significance flags on hand-made runs.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moecap-cost-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn moecap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// One small bench run priced on the default deployment of one EPYC-9654, made once.
fn bench_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = fresh_dir("bench");
        let ceil = tmp.join("ceilings.json");
        std::fs::write(&ceil, r#"{"key":"t","copy_bytes_per_s":1e10,"triad_bytes_per_s":1e10,"buffer_bytes":1,"matmul_flops_per_s":{"f32":1e11},"matmul_size":{"f32":64},"threads":1,"measured_at":0}"#).unwrap();
        let out = tmp.join("run");
        ok(&moecap(&[
            "bench",
            "--model",
            "synthetic:tiny-mixtral",
            "--batch",
            "1,2",
            "--prompt-len",
            "8",
            "--gen-len",
            "3",
            "--repetitions",
            "2",
            "--ceilings",
            ceil.to_str().unwrap(),
            "--hardware",
            "EPYC-9654",
            "--devices",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]));
        out
    })
}

#[test]
fn bench_summary_prices_every_point_by_the_formula() {
    let run = bench_run();
    let s = json(&run.join("summary.json"));
    let cost = &s["cost"];
    let parts = cost["deployment"]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["name"], "EPYC-9654");
    // Hand arithmetic: capex = Σ price·count / (3 y · 8766 h), energy = Σ power·count / 1000 · 1.2 · 0.15.
    let capex: f64 = parts
        .iter()
        .map(|p| p["price_usd"].as_f64().unwrap() * p["count"].as_f64().unwrap())
        .sum::<f64>()
        / (3.0 * 8766.0);
    let watts: f64 = parts
        .iter()
        .map(|p| p["power_w"].as_f64().unwrap() * p["count"].as_f64().unwrap())
        .sum();
    let per_hour = capex + watts / 1000.0 * 1.2 * 0.15;
    assert!((cost["cost_per_hour"].as_f64().unwrap() - per_hour).abs() < 1e-12);
    let points = s["points"].as_array().unwrap();
    let priced = cost["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(priced.len(), 2);
    for (p, c) in points.iter().zip(priced) {
        for phase in ["prefill", "decode"] {
            let tps = p[phase]["tokens_per_s"]["median"].as_f64().unwrap();
            let usd = c[phase]["usd_per_mtoken"].as_f64().unwrap();
            assert!((usd - per_hour / (tps * 3600.0) * 1e6).abs() < 1e-9 * usd);
            let j = c[phase]["j_per_token"].as_f64().unwrap();
            assert!((j - watts / tps).abs() < 1e-9 * j);
        }
        assert_eq!(c["energy"], "tdp_estimate");
    }
    assert!(std::fs::read_to_string(run.join("summary.md"))
        .unwrap()
        .contains("## Cost on 1x EPYC-9654"));
}

#[test]
fn cost_command_adds_the_published_formula_and_rejects_bad_deployments() {
    let run = bench_run();
    let tmp = fresh_dir("cmd");
    let dep = tmp.join("two-h100.json");
    std::fs::write(
        &dep,
        r#"{"name":"2xH100","parts":[{"part":"H100-SXM","count":2},{"part":"EPYC-9654","count":1}]}"#,
    )
    .unwrap();
    let out = ok(&moecap(&[
        "cost",
        "--run",
        run.to_str().unwrap(),
        "--deployment",
        dep.to_str().unwrap(),
        "--formula",
        "moecap-compat",
        "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deployment"]["name"], "2xH100");
    let s = json(&run.join("summary.json"));
    for (p, c) in s["points"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["points"].as_array().unwrap())
    {
        // The published formula over the point's run time: repetitions × (TTFT + (gen − 1) × TPOT).
        let secs = p["repetitions"].as_f64().unwrap()
            * (p["ttft_s"]["median"].as_f64().unwrap()
                + 2.0 * p["tpot_s"]["median"].as_f64().unwrap());
        let energy = (700.0 * 2.0 + 350.0) / 1000.0 * 0.15 * secs / 3600.0;
        let compat = &c["compat"];
        // The published table's H100 SXM: $38,000, 700 W; its fixed CPU: $7,214.
        assert_eq!(
            compat["capital_usd"].as_f64().unwrap(),
            2.0 * 38000.0 + 7214.0
        );
        assert!((compat["energy_usd"].as_f64().unwrap() - energy).abs() < 1e-15);
        let cost = 1.2 * energy + 1.25 * 83214.0;
        assert!((compat["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
    }
    for (body, needle) in [
        (r#"{"parts":[{"part":"TPU-v9","count":1}]}"#, "unknown part"),
        (
            r#"{"parts":[{"part":"H200","count":1,"price_usd":-1}]}"#,
            "price_usd must be a non-negative",
        ),
        (r#"{"parts":[{"count":1}]}"#, "missing field `part`"),
    ] {
        std::fs::write(&dep, body).unwrap();
        let o = moecap(&[
            "cost",
            "--run",
            run.to_str().unwrap(),
            "--deployment",
            dep.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains(dep.to_str().unwrap()) && err.contains(needle) && err.lines().count() == 1,
            "{body}: {err}"
        );
    }
    let o = moecap(&["cost", "--run", tmp.to_str().unwrap(), "--hardware", "H200"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("summary.json"));
}

#[test]
fn report_is_one_self_contained_page_with_every_section() {
    let run = bench_run();
    let tmp = fresh_dir("report");
    let html = tmp.join("cap.html");
    ok(&moecap(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    for needle in [
        "id=\"radar\"",
        "<h2 id=\"cap\">CAP radar</h2>",
        "<h3>Sweep</h3>",
        "<h3>Routing</h3>",
        "<h3>Cost</h3>",
        "run0-throughput.svg",
        "run0-latency.svg",
        "run0-coactivation.svg",
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
    // Nothing to fetch: no script, stylesheet link, image or font; the only URL is SVG's namespace.
    for banned in ["<script", "<link", "<img", "@import", "url("] {
        assert!(!page.contains(banned), "{banned}");
    }
    let urls = page.matches("http").count();
    let ns = page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(urls, ns);
    assert_eq!(
        page.matches("<figure").count(),
        page.matches("</figure>").count()
    );
    let o = moecap(&["report", run.to_str().unwrap(), "--out", "x.txt"]);
    assert!(!o.status.success());
}

/// A copy of the bench run whose decode tokens/s of point `b1-p8` has the given mean, median and
/// 95 % half-width.
fn variant(base: &Path, name: &str, mean: f64, ci95: f64) -> PathBuf {
    let dir = fresh_dir(name);
    let mut s = json(&base.join("summary.json"));
    let p = &mut s["points"][0];
    assert_eq!(p["point"]["batch"], 1);
    let t = &mut p["decode"]["tokens_per_s"];
    t["mean"] = mean.into();
    t["median"] = mean.into();
    t["ci95"] = ci95.into();
    t["n"] = 3.into();
    std::fs::write(dir.join("summary.json"), s.to_string()).unwrap();
    dir
}

#[test]
fn compare_flags_differences_by_the_intervals() {
    let base = bench_run();
    let a = variant(base, "a", 100.0, 5.0);
    let b = variant(base, "b", 120.0, 5.0); // intervals 95-105 and 115-125: better
    let c = variant(base, "c", 104.0, 5.0); // overlapping: within noise
    let d = variant(base, "d", 80.0, 5.0); // 75-85: worse
    let out = ok(&moecap(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        d.to_str().unwrap(),
        "--format",
        "json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "decode_tokens_per_s" && r["point"] == "b1-p8")
        .unwrap();
    let verdicts: Vec<&str> = row["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["baseline", "better", "within_noise", "worse"]);
    let rel = row["entries"][1]["relative_difference"].as_f64().unwrap();
    assert!((rel - 0.2).abs() < 1e-12);
    let csv = ok(&moecap(&[
        "compare",
        a.to_str().unwrap(),
        d.to_str().unwrap(),
        "--format",
        "csv",
    ]));
    assert!(csv.starts_with("point,metric,better,run,median"));
    assert!(csv.contains("b1-p8,decode_tokens_per_s,higher,"));
    let o = moecap(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--format",
        "xml",
    ]);
    assert!(!o.status.success());
}

#[test]
fn roofline_offload_finds_the_cheapest_devices_meeting_the_target() {
    let args = [
        "roofline",
        "--model",
        "mixtral-8x7b",
        "--hardware",
        "H100-SXM",
        "--offload",
        "--tpot-slo",
        "0.05",
        "--batch",
        "1",
        "--context",
        "512",
        "--json",
    ];
    let v: Value = serde_json::from_str(&ok(&moecap(&args))).unwrap();
    let c = v["choices"].as_array().unwrap();
    assert!(!c.is_empty());
    let usd: Vec<f64> = c
        .iter()
        .map(|x| x["usd_per_mtoken"].as_f64().unwrap())
        .collect();
    assert!(usd.windows(2).all(|w| w[0] <= w[1]), "{usd:?}");
    assert!(c.iter().all(|x| x["tpot_s"].as_f64().unwrap() <= 0.05));
    // 93 GB of bf16 weights fit one H200 (141 GB) but not one H100 (80 GB).
    assert!(c.iter().any(|x| x["hardware"] == "H200-SXM-141GB"
        && x["devices"] == 1
        && x["mode"] == "resident"));
    assert!(!c
        .iter()
        .any(|x| x["hardware"] == "H100-SXM-80GB" && x["devices"] == 1 && x["mode"] == "resident"));
    let mut two = args.to_vec();
    two[9] = "1,8";
    let o = moecap(&two);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("one --batch"));
}
