#!/usr/bin/env python3
"""Cross-checks `moecap eval` against lm-evaluation-harness + transformers on the same items and
times both.

Multiple choice (arc_*, hellaswag, mmlu): takes the per-item file moecap wrote (TASK.jsonl:
prompt, choices, gold, log-likelihoods, predictions), runs the same items through
lm-evaluation-harness as a local multiple-choice task on the same Hugging Face checkpoint, and
reports per item whether lm-eval's own `acc` and `acc_norm` (as it logs them, not re-scored)
agree with moecap's, and the largest log-likelihood difference.

gsm8k_cot: runs lm-evaluation-harness's own `gsm8k_cot` task (its YAML: exemplars, stop
strings, filters, exact_match) on the test split of moecap's data folder, for as many documents
as moecap's file holds, and compares per item the generated text, the strict and flexible
answers and their exact_match.

Both: the wall time of the lm_eval run (model load included) beside moecap's own time for the
task (`seconds` in the summary.json next to TASK.jsonl), as items per second.

usage: crosscheck_lm_eval.py CHECKPOINT_DIR MOECAP_TASK_JSONL [--batch 8] [--data DIR]
                             [--tokenizer-from-gguf FILE]
       --data: the moecap data folder (gsm8k_cot); --tokenizer-from-gguf: tokenise as
       transformers' GGUF loader does (it splits digits with plain GPT-2 rules, where the
       checkpoint's tokenizer.json follows the model's own pre-tokeniser)
       (needs lm_eval 0.4.13, accelerate, torch, transformers: scripts/reference-fixtures.sh's venv + `pip install lm_eval==0.4.13 accelerate`)"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time


def run_lm_eval(a, tmp, task, extra):
    out = os.path.join(tmp, "out")
    model_args = f"pretrained={a.checkpoint},dtype=float32"
    if a.tokenizer_from_gguf:
        from transformers import AutoTokenizer

        tok_dir = os.path.join(tmp, "gguf_tokenizer")
        g = os.path.abspath(a.tokenizer_from_gguf)
        AutoTokenizer.from_pretrained(os.path.dirname(g), gguf_file=os.path.basename(g)).save_pretrained(tok_dir)
        model_args += f",tokenizer={tok_dir}"
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", model_args,
         "--tasks", task, "--include_path", tmp, "--device", "cpu",
         "--batch_size", str(a.batch), "--log_samples", "--output_path", out] + extra,
        capture_output=True, text=True,
        env=dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"),
    )
    seconds = time.monotonic() - start
    if run.returncode != 0:
        sys.exit("lm_eval failed:\n" + run.stderr[-3000:])
    samples = [json.loads(l) for f in glob.glob(os.path.join(out, "**", "samples_*.jsonl"), recursive=True)
               for l in open(f)]
    return samples, seconds


def moecap_seconds(items_path, task):
    summary = os.path.join(os.path.dirname(os.path.abspath(items_path)), "summary.json")
    try:
        for t in json.load(open(summary))["tasks"]:
            if t["task"] == task and t.get("items_timed"):
                return t["seconds"], t["items_timed"]
    except (OSError, KeyError, ValueError):
        pass
    return None, None


def timing(n, seconds, items_path, task):
    ms, mn = moecap_seconds(items_path, task)
    line = f"time: lm-eval {seconds:.0f} s for {n} items ({n / seconds:.2f} items/s)"
    if ms:
        line += (f"; moecap {ms:.0f} s for {mn} items ({mn / ms:.2f} items/s): "
                 f"{(mn / ms) / (n / seconds):.2f}x lm-eval's rate")
    print(line)


def multiple_choice(a, items, task):
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
        samples, seconds = run_lm_eval(a, tmp, "moecap_crosscheck", [])
    samples.sort(key=lambda s: s["doc_id"])
    agree = agree_norm = 0
    worst = 0.0
    differ = []
    for s, it in zip(samples, items):
        # one [log-likelihood, is-greedy] pair per choice (written as strings by some versions)
        ll = [float(r[0]) for r in s["filtered_resps"]]
        ok = (float(s["acc"]) == 1.0) == it["correct"]
        ok_norm = (float(s["acc_norm"]) == 1.0) == it["correct_norm"]
        agree += ok
        agree_norm += ok_norm
        d = max(abs(x - y) for x, y in zip(ll, it["loglikelihoods"]))
        worst = max(worst, d)
        if not (ok and ok_norm):
            # the margin between the two best choices under each rule, in moecap's numbers
            lls = sorted(it["loglikelihoods"], reverse=True)
            differ.append(f"{it['id']} (acc {'ok' if ok else 'differs'}, acc_norm {'ok' if ok_norm else 'differs'}, "
                          f"top-2 margin {lls[0] - lls[1]:.2e}, largest ll difference {d:.2e})")
    n = len(samples)
    print(f"{task}: {n} items; lm-eval's own acc agrees with moecap's on {agree}/{n}, its acc_norm on "
          f"{agree_norm}/{n}; largest log-likelihood difference {worst:.2e}")
    for d in differ:
        print("  differs:", d)
    timing(n, seconds, a.items, task)


def gsm8k_cot(a, items):
    if not a.data:
        sys.exit("gsm8k_cot needs --data (the moecap data folder holding gsm8k/test.jsonl)")
    import lm_eval.tasks

    base = os.path.join(os.path.dirname(lm_eval.tasks.__file__), "gsm8k", "gsm8k-cot.yaml")
    test = os.path.abspath(os.path.join(a.data, "gsm8k", "test.jsonl"))
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "gsm8k_cot_local.yaml"), "w") as f:
            f.write(f"include: {base}\ntask: gsm8k_cot_local\ndataset_path: json\n"
                    f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {test}\n")
        samples, seconds = run_lm_eval(a, tmp, "gsm8k_cot_local", ["--limit", str(len(items))])
    by = {}
    for s in samples:
        by.setdefault(s["doc_id"], {})[s["filter"]] = s
    n = len(items)
    same_prompt = same_text = same_strict = same_flex = same_em = 0
    for it in items:
        s = by[int(it["id"])]
        strict, flex = s["strict-match"], s["flexible-extract"]
        same_prompt += strict["arguments"]["gen_args_0"]["arg_0"] == it["prompt"]
        same_text += strict["resps"][0][0] == it["output"]
        same_strict += strict["filtered_resps"][0] == it["strict"]
        same_flex += flex["filtered_resps"][0] == it["flexible"]
        same_em += (float(strict["exact_match"]) == 1.0) == it["correct_strict"] and \
                   (float(flex["exact_match"]) == 1.0) == it["correct_flexible"]
    print(f"gsm8k_cot: {n} items; identical prompts {same_prompt}/{n}, identical generations {same_text}/{n}, "
          f"strict answers {same_strict}/{n}, flexible answers {same_flex}/{n}, exact_match (both) {same_em}/{n}")
    for it in items:
        s = by[int(it["id"])]["strict-match"]
        if s["resps"][0][0] != it["output"]:
            print(f"  first differing generation: document {it['id']}")
            break
    timing(n, seconds, a.items, "gsm8k_cot")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("items")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--data")
    ap.add_argument("--tokenizer-from-gguf")
    a = ap.parse_args()
    items = [json.loads(l) for l in open(a.items)]
    task = os.path.basename(a.items).removesuffix(".jsonl")
    if task == "gsm8k_cot":
        gsm8k_cot(a, items)
    elif "choices" in items[0]:
        multiple_choice(a, items, task)
    else:
        sys.exit(f"{a.items}: neither a multiple-choice file nor gsm8k_cot's")


if __name__ == "__main__":
    main()
