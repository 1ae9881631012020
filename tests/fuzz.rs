//! Every parser of user-supplied files takes a stream of generated inputs without a panic:
//! real files (the presets' configs, the hardware table, the registry's Arrow files, the
//! reference checkpoints' safetensors headers, a bench run's records and routing) mutated at
//! random, byte by byte and token by token. Each parser gets `MOECAP_FUZZ_CASES` inputs
//! (100,000 unless set); the counts of accepted and refused inputs are printed.

use moecap::rng::SplitMix64;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn cases() -> usize {
    std::env::var("MOECAP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Values that break parsers more often than random bytes.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-320",
    "NaN",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "65536",
    "\"\"",
    "null",
    "[]",
    "{}",
    "true",
    "\"x\"",
    ",",
    "\n",
    "\u{feff}",
    "\u{0}",
    "ÿ",
    "💥",
];

/// One random change of `seed`: a flipped bit, a replaced, inserted or deleted run of bytes, a
/// duplicated run, a cut, or a number replaced by one of [`TOKENS`].
fn mutate(seed: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut v = seed.to_vec();
    let changes = 1 + rng.next_u64() % 4;
    for _ in 0..changes {
        let n = v.len().max(1);
        let at = (rng.next_u64() as usize) % n;
        let span = 1 + (rng.next_u64() as usize) % 16;
        match rng.next_u64() % 7 {
            0 if !v.is_empty() => v[at] ^= 1 << (rng.next_u64() % 8),
            1 if !v.is_empty() => v[at] = rng.next_u64() as u8,
            2 => {
                let bytes: Vec<u8> = (0..span).map(|_| rng.next_u64() as u8).collect();
                v.splice(at.min(v.len())..at.min(v.len()), bytes);
            }
            3 if !v.is_empty() => {
                let end = (at + span).min(v.len());
                v.drain(at..end);
            }
            4 if !v.is_empty() => {
                let end = (at + span).min(v.len());
                let copy = v[at..end].to_vec();
                v.splice(end..end, copy);
            }
            5 => v.truncate(at),
            _ => {
                // a run of digits (or any byte) replaced by a token
                let t = TOKENS[(rng.next_u64() as usize) % TOKENS.len()].as_bytes();
                let start = at.min(v.len());
                let mut end = start;
                while end < v.len() && (v[end].is_ascii_digit() || v[end] == b'.') {
                    end += 1;
                }
                v.splice(start..end.max((start + 1).min(v.len())), t.iter().copied());
            }
        }
    }
    v
}

/// Feeds `cases()` mutations of the seeds to `parse`; fails on the first panic with the input.
fn fuzz(name: &str, seeds: &[Vec<u8>], parse: impl Fn(&[u8]) -> bool) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let mut rng = SplitMix64::new(
        name.bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)),
    );
    let (mut accepted, mut refused) = (0usize, 0usize);
    let n = cases();
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        let input = if i < seeds.len() {
            seed.clone()
        } else {
            mutate(seed, &mut rng)
        };
        match catch_unwind(AssertUnwindSafe(|| parse(&input))) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!(
                "{name}: input {i} panicked: {:?}",
                String::from_utf8_lossy(&input[..input.len().min(2000)])
            ),
        }
    }
    eprintln!("{name}: {n} inputs, {accepted} accepted, {refused} refused with an error, 0 panics");
    assert_eq!(accepted + refused, n);
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn config_json() {
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(root().join("models"))
        .unwrap()
        .map(|e| read(&e.unwrap().path().join("config.json")))
        .collect();
    fuzz("config.json", &seeds, |b| {
        moecap::model::config::parse_config(&text(b), "fuzz").is_ok()
    });
}

#[test]
fn hardware_csv() {
    let seeds = vec![read(&root().join("src/machine/hardware.csv"))];
    fuzz("hardware csv", &seeds, |b| {
        moecap::machine::hardware::HardwareTable::parse(&text(b), "fuzz").is_ok()
    });
}

#[test]
fn arrow_streams() {
    let data = root().join("tests/fixtures/data");
    let seeds: Vec<Vec<u8>> = [
        "arc_challenge/validation.arrow",
        "mmlu/abstract_algebra/dev.arrow",
        "hellaswag/validation.arrow",
    ]
    .iter()
    .map(|f| read(&data.join(f)))
    .collect();
    fuzz("arrow stream", &seeds, |b| {
        moecap::data::arrow::read_stream(b).is_ok()
    });
}

#[test]
fn safetensors_headers() {
    let refs = root().join("tests/fixtures/reference");
    let mut seeds = Vec::new();
    for e in std::fs::read_dir(&refs).unwrap() {
        let p = e.unwrap().path().join("model.safetensors");
        if let Ok(bytes) = std::fs::read(&p) {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            // the header, and the size of the data part after it
            let mut seed = bytes[8..8 + n].to_vec();
            seed.extend_from_slice(&((bytes.len() - 8 - n) as u64).to_le_bytes());
            seeds.push(seed);
        }
    }
    fuzz("safetensors header", &seeds, |b| {
        if b.len() < 8 {
            return false;
        }
        let (header, len) = b.split_at(b.len() - 8);
        let data_len = u64::from_le_bytes(len.try_into().unwrap());
        moecap::model::tensors::parse_safetensors_header(header, data_len, "fuzz", "x").is_ok()
    });
}

/// A bench run of the tiny synthetic model: its records and routing files as seeds.
fn bench_run() -> PathBuf {
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moecap-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let ceil = out.with_extension("ceilings.json");
    std::fs::write(
        &ceil,
        r#"{"key":"t","copy_bytes_per_s":1e10,"triad_bytes_per_s":1e10,"buffer_bytes":1,"matmul_flops_per_s":{"f32":1e11},"matmul_size":{"f32":64},"threads":1,"measured_at":0,"method":3}"#,
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moecap"))
        .args([
            "bench",
            "--model",
            "synthetic:tiny-mixtral",
            "--batch",
            "1,2",
            "--prompt-len",
            "4",
            "--gen-len",
            "3",
            "--warmup",
            "0",
            "--repetitions",
            "1",
            "--ceilings",
        ])
        .arg(&ceil)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn records_and_routing_traces() {
    let run = bench_run();
    let desc = moecap::model::synthetic::synthetic_desc("tiny-mixtral").unwrap();
    // pass records: the bench lines carry them flattened with the point's fields
    let records = read(&run.join("records.jsonl"));
    let routing: Vec<Vec<u8>> = std::fs::read_dir(run.join("routing"))
        .unwrap()
        .map(|e| read(&e.unwrap().path()))
        .collect();
    let import = br#"{"pass":0,"phase":"decode","layer":0,"ids":[[1,2]]}
{"pass":0,"phase":"decode","layer":1,"ids":[[3,2]]}
"#
    .to_vec();
    fuzz(
        "records",
        std::slice::from_ref(&records),
        |b| match moecap::records::parse_records(&text(b), "fuzz") {
            Ok(moecap::records::Records::Native(recs)) => recs
                .iter()
                .all(|r| moecap::records::activated_per_layer(r, &desc).is_ok()),
            Ok(_) => true,
            Err(_) => false,
        },
    );
    let mut traces = routing;
    traces.push(import);
    fuzz("routing trace", &traces, |b| {
        moecap::offload::trace::Trace::parse(&text(b), "fuzz", None).is_ok()
    });
    std::fs::remove_dir_all(&run).unwrap();
}

/// A small GGUF file written by candle's writer: metadata of every value type a llama file
/// carries (strings, integers, floats, arrays of strings and of integers) and two tensors.
fn small_gguf() -> Vec<u8> {
    use candle_core::quantized::gguf_file::{write, Value as V};
    use candle_core::quantized::{GgmlDType, QTensor};
    let t = |n: usize| {
        let x = candle_core::Tensor::arange(0f32, n as f32, &candle_core::Device::Cpu).unwrap();
        QTensor::quantize(&x.reshape((n / 32, 32)).unwrap(), GgmlDType::F32).unwrap()
    };
    let meta = [
        ("general.architecture", V::String("llama".into())),
        ("llama.block_count", V::U32(1)),
        ("llama.embedding_length", V::U32(32)),
        ("llama.rope.freq_base", V::F32(10000.0)),
        ("llama.context_length", V::U64(2048)),
        (
            "tokenizer.ggml.tokens",
            V::Array(
                ["a", "b", "Ġc", "<s>"]
                    .map(|s| V::String(s.into()))
                    .to_vec(),
            ),
        ),
        ("tokenizer.ggml.token_type", V::Array(vec![V::I32(1); 4])),
        ("tokenizer.ggml.add_bos_token", V::Bool(true)),
    ];
    let (a, b) = (t(64), t(32));
    let mut out = std::io::Cursor::new(Vec::new());
    let meta_refs: Vec<(&str, &V)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    write(
        &mut out,
        &meta_refs,
        &[("token_embd.weight", &a), ("output_norm.weight", &b)],
    )
    .unwrap();
    out.into_inner()
}

#[test]
fn gguf_headers() {
    use candle_core::quantized::gguf_file::Content;
    let seeds = vec![small_gguf()];
    assert!(moecap::upcycle::check_gguf_header(&seeds[0][..], seeds[0].len() as u64).is_ok());
    // moecap's bounds check first; candle reads only what it passes
    fuzz("gguf header", &seeds, |b| {
        if moecap::upcycle::check_gguf_header(b, b.len() as u64).is_err() {
            return false;
        }
        Content::read(&mut std::io::Cursor::new(b)).is_ok()
    });
}
