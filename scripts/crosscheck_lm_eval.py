#!/usr/bin/env python3
"""Cross-checks `moecap eval` against lm-evaluation-harness + transformers on the same items:
takes the per-item file moecap wrote for a multiple-choice task (TASK.jsonl: prompt, choices,
gold, log-likelihoods, predictions), runs the same items through lm-evaluation-harness as a local
multiple-choice task on the same Hugging Face checkpoint, and reports how often the chosen answer
agrees and the largest log-likelihood difference.

usage: crosscheck_lm_eval.py CHECKPOINT_DIR MOECAP_TASK_JSONL [--batch 8]
       (needs lm_eval 0.4.13, torch, transformers: scripts/reference-fixtures.sh's venv + lm_eval)"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("items")
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    items = [json.loads(l) for l in open(a.items)]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "items.jsonl")
        with open(data, "w") as f:
            for it in items:
                # moecap's continuations carry the target delimiter (a leading space)
                f.write(json.dumps({"query": it["prompt"], "choices": [c[1:] for c in it["choices"]],
                                    "gold": it["gold"]}) + "\n")
        with open(os.path.join(tmp, "task.yaml"), "w") as f:
            f.write(
                "task: moecap_crosscheck\n"
                "dataset_path: json\n"
                f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
                "test_split: test\n"
                "output_type: multiple_choice\n"
                'doc_to_text: "{{query}}"\n'
                'doc_to_choice: "{{choices}}"\n'
                'doc_to_target: "{{gold}}"\n'
                'target_delimiter: " "\n'
                "metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
            )
        out = os.path.join(tmp, "out")
        run = subprocess.run(
            [sys.executable, "-m", "lm_eval", "--model", "hf",
             "--model_args", f"pretrained={a.checkpoint},dtype=float32",
             "--tasks", "moecap_crosscheck", "--include_path", tmp, "--device", "cpu",
             "--batch_size", str(a.batch), "--log_samples", "--output_path", out],
            capture_output=True, text=True,
            env=dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"),
        )
        if run.returncode != 0:
            sys.exit("lm_eval failed:\n" + run.stderr[-3000:])
        samples = [json.loads(l) for f in glob.glob(os.path.join(out, "**", "samples_*.jsonl"), recursive=True)
                   for l in open(f)]
    samples.sort(key=lambda s: s["doc_id"])
    agree = agree_norm = 0
    worst = 0.0
    for s, it in zip(samples, items):
        # one [log-likelihood, is-greedy] pair per choice (written as strings by some versions)
        ll = [float(r[0]) for r in s["filtered_resps"]]
        pred = max(range(len(ll)), key=lambda i: ll[i])
        agree += pred == it["pred"]
        # lm-eval's own acc_norm of the item (its rule: log-likelihood / len(choice) in characters),
        # not moecap's rule applied to lm-eval's numbers
        agree_norm += (float(s["acc_norm"]) == 1.0) == it["correct_norm"]
        worst = max(worst, max(abs(x - y) for x, y in zip(ll, it["loglikelihoods"])))
    n = len(samples)
    print(f"{n} items: the chosen answer agrees on {agree}/{n} (acc); lm-eval's acc_norm and moecap's agree on {agree_norm}/{n} items; "
          f"largest log-likelihood difference {worst:.2e}")


if __name__ == "__main__":
    main()
