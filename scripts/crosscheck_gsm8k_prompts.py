#!/usr/bin/env python3
"""Cross-checks moecap's `gsm8k` prompts against lm-evaluation-harness's: builds the harness's own
`gsm8k` task (its YAML: format, delimiters, few-shot sampler) on the train and test JSONL files
of a moecap data folder, seeds its few-shot draw, and compares every context with the prompt
moecap wrote for the same document (the `prompt` field of `moecap eval`'s gsm8k.jsonl).

usage: crosscheck_gsm8k_prompts.py DATA_DIR MOECAP_GSM8K_JSONL [--seed 1234]
       (needs lm_eval 0.4.13 and datasets: scripts/reference-fixtures.sh's venv + lm_eval; runs
       offline on local files)"""

import argparse
import json
import os
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import lm_eval.tasks  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("items")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    items = [json.loads(line) for line in open(a.items)]
    base = os.path.join(os.path.dirname(lm_eval.tasks.__file__), "gsm8k", "gsm8k.yaml")
    g = os.path.abspath(os.path.join(a.data, "gsm8k"))
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "gsm8k_local.yaml"), "w") as f:
            f.write(f"include: {base}\ntask: gsm8k_local\ndataset_path: json\n"
                    f"dataset_name: null\ndataset_kwargs:\n  data_files:\n"
                    f"    train: {g}/train.jsonl\n    test: {g}/test.jsonl\n")
        task = lm_eval.tasks.get_task_dict(["gsm8k_local"], TaskManager(include_path=tmp))
        task = task["gsm8k_local"]
        task.set_fewshot_seed(seed=a.seed)
        task.build_all_requests(limit=len(items), rank=0, world_size=1)
        ctx = {i.doc_id: i.arguments[0] for i in task.instances}
    same = sum(ctx[int(it["id"])] == it["prompt"] for it in items)
    print(f"gsm8k, seed {a.seed}: {same}/{len(items)} prompts identical to lm-evaluation-harness's")
    for it in items:
        if ctx[int(it["id"])] != it["prompt"]:
            print(f"first difference: document {it['id']}")
            break


if __name__ == "__main__":
    main()
