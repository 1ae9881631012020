#!/usr/bin/env python3
"""Writes tests/fixtures/pyrandom.json: outputs of CPython's `random.Random` (Mersenne Twister,
integer seeding, `sample`) that moecap's few-shot sampler must reproduce, so that `--seed S`
draws the exemplars lm-evaluation-harness draws with `fewshot_random_seed=S`.

usage: python3 scripts/make_pyrandom_fixture.py   (any CPython 3.11+; no packages needed)"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "pyrandom.json")


def main():
    cases = {"python": sys.version.split()[0], "u32": [], "samples": []}
    for seed in [0, 1, 1234, 2**32 + 7]:
        r = random.Random(seed)
        cases["u32"].append({"seed": seed, "values": [r.getrandbits(32) for _ in range(8)]})
    # (seed, pool, k, docs): GSM8K's train split (set-based draws), small pools (the shrinking
    # pool), k > 5 (a larger set size), and k = pool
    for seed, pool, k, docs in [(1234, 7473, 5, 6), (1234, 20, 5, 3), (42, 7473, 8, 3),
                                (1234, 8, 5, 4), (1234, 80, 8, 3), (1234, 90, 8, 3), (7, 5, 5, 2), (2**32 + 7, 1000, 3, 2)]:
        r = random.Random(seed)
        draws = [r.sample(range(pool), k) for _ in range(docs)]
        cases["samples"].append({"seed": seed, "pool": pool, "k": k, "draws": draws})
    with open(OUT, "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
