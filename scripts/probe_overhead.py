#!/usr/bin/env python3
"""The probe's cost on decode: `moecap generate` with the probe on and with --no-probe,
interleaved, reporting the median decode step time of each and the median of paired ratios.

usage: probe_overhead.py CHECKPOINT_DIR MOECAP_BINARY [--reps 8] [--prompt-len 128]
       [--new-tokens 32]"""

import argparse
import json
import random
import statistics
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("binary")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    a = ap.parse_args()
    vocab = json.load(open(f"{a.model}/config.json"))["vocab_size"]
    rng = random.Random(1)
    ids = ",".join(str(rng.randrange(3, vocab)) for _ in range(a.prompt_len))
    on, off = [], []
    for _ in range(a.reps):
        for probe, acc in ((True, on), (False, off)):
            args = [a.binary, "generate", "--model", a.model, "--input-ids", ids,
                    "--max-new-tokens", str(a.new_tokens), "--ignore-eos", "--json"]
            if not probe:
                args.append("--no-probe")
            out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
            acc.append(json.loads(out)["mean_tpot_s"])
    print("probe on  median TPOT ms", round(statistics.median(on) * 1e3, 2), [round(x * 1e3, 1) for x in on])
    print("probe off median TPOT ms", round(statistics.median(off) * 1e3, 2), [round(x * 1e3, 1) for x in off])
    ratios = [x / y for x, y in zip(on, off)]
    print("overhead, median of paired ratios %", round((statistics.median(ratios) - 1) * 100, 2))


if __name__ == "__main__":
    main()
