#!/usr/bin/env python3
"""CPU speed of moecap against Hugging Face transformers on the same checkpoint, same dtype
(f32) and thread count, and moecap's probe overhead. Runs are interleaved (torch, moecap,
moecap without probe, repeat) and each figure is the median over repetitions.

usage: bench_vs_torch.py CHECKPOINT_DIR MOECAP_BINARY [--reps 5] [--batches 1,8]
       [--prompt-len 128] [--new-tokens 16] [--threads 2]
The checkpoint is typically `moecap synth --like mixtral-mid --out DIR`. Needs the torch and
transformers of scripts/reference-fixtures.sh."""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def moecap_run(binary, model, ids, batch, new_tokens, probe, threads):
    args = [binary, "generate", "--model", model, "--input-ids", ";".join([ids] * batch),
            "--max-new-tokens", str(new_tokens), "--ignore-eos", "--json"]
    if not probe:
        args.append("--no-probe")
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
    v = json.loads(out)
    return v["ttft_s"], v["mean_tpot_s"]


def torch_run(model, ids_file, batch, prompt_len, new_tokens, threads):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "torch_speed.py"), model, "--batch", str(batch),
         "--prompt-len", str(prompt_len), "--new-tokens", str(new_tokens),
         "--threads", str(threads), "--ids", ids_file],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    v = json.loads(out)
    return v["ttft_s"], v["mean_tpot_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("binary")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    vocab = json.load(open(os.path.join(a.model, "config.json")))["vocab_size"]
    rng = random.Random(1)
    ids = ",".join(str(rng.randrange(3, vocab)) for _ in range(a.prompt_len))
    ids_file = tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False)
    ids_file.write(ids)
    ids_file.close()
    rows = []
    for batch in [int(b) for b in a.batches.split(",")]:
        res = {"torch": [], "moecap": [], "moecap-no-probe": []}
        for _ in range(a.reps):
            res["torch"].append(torch_run(a.model, ids_file.name, batch, a.prompt_len, a.new_tokens, a.threads))
            res["moecap"].append(moecap_run(a.binary, a.model, ids, batch, a.new_tokens, True, a.threads))
            res["moecap-no-probe"].append(moecap_run(a.binary, a.model, ids, batch, a.new_tokens, False, a.threads))
        med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
        rows.append((batch, med, res))
    print(f"prompt {a.prompt_len} tokens, {a.new_tokens} new tokens, {a.threads} threads, f32, "
          f"median of {a.reps} interleaved runs")
    print(f"{'batch':>5} {'engine':>16} {'TTFT s':>8} {'TPOT ms':>8} {'prefill tok/s':>14} {'decode tok/s':>13}")
    for batch, med, _ in rows:
        for k, (ttft, tpot) in med.items():
            print(f"{batch:>5} {k:>16} {ttft:>8.3f} {tpot*1e3:>8.2f} {batch*a.prompt_len/ttft:>14.1f} {batch/tpot:>13.1f}")
        t, m, n = med["torch"], med["moecap"], med["moecap-no-probe"]
        print(f"{batch:>5} {'moecap/torch':>16} {'':>8} {'':>8} {t[0]/m[0]:>13.2f}x {t[1]/m[1]:>12.2f}x")
        print(f"{batch:>5} {'probe overhead':>16} {'':>8} {(m[1]/n[1]-1)*100:>7.2f}% (decode step, on vs off)")
    print(json.dumps([{"batch": b, "median": med, "runs": res} for b, med, res in rows]))


if __name__ == "__main__":
    main()
