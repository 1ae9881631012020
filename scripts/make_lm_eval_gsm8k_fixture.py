#!/usr/bin/env python3
"""Writes tests/fixtures/lm_eval_gsm8k.json from lm-evaluation-harness itself: the contexts its
`gsm8k_cot` task builds for the documents of the committed GSM8K sample (its YAML, exemplars,
delimiters), its stop strings, and what its filters (strict-match, flexible-extract) and its
`exact_match` (GSM8K's regexes_to_ignore, ignore_case) make of a set of responses, for both
`gsm8k` and `gsm8k_cot`. moecap's tests compare its own prompts and extractions with these.

usage: make_lm_eval_gsm8k_fixture.py [OUT]
       (needs lm_eval 0.4.13 and datasets: scripts/reference-fixtures.sh's venv + lm_eval; runs
       offline on the committed sample)"""

import json
import os
import sys
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import lm_eval.tasks  # noqa: E402
from lm_eval.api.metrics import exact_match_hf_evaluate  # noqa: E402
from lm_eval.filters.extraction import RegexFilter  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "tests", "fixtures", "data", "gsm8k", "test.jsonl")

# responses that exercise the patterns: ends, case, signs, separators, several answers, none
RESPONSES = [
    " There are 15 trees. The answer is 6.",
    " The answer is 6",
    " The answer is 6\nQ",
    " the answer is 6.",
    " The answer is 5. Then The answer is 7.",
    " The answer is 1,007.\n\n",
    " The answer is $18.",
    " The answer is -4.",
    " She pays 5 x 3 = 15 dollars. So 8 are left.",
    " costs $1,200.",
    " from 5-3",
    " well...",
    " none at all",
    " 12.5 and .5",
    "\n#### 18",
    " so 5 + 3 = 8\n#### 1,208.\n#### 9",
    " #### x then #### 6",
    " The answer is 18. #### 18",
]


def task(name, tmp):
    base = os.path.join(os.path.dirname(lm_eval.tasks.__file__), "gsm8k", f"{name}.yaml")
    path = os.path.abspath(SAMPLE)
    with open(os.path.join(tmp, f"{name}_local.yaml"), "w") as f:
        f.write(f"include: {base}\ntask: {name}_local\ndataset_path: json\n"
                f"dataset_name: null\ndataset_kwargs:\n  data_files:\n"
                f"    train: {path}\n    test: {path}\n")
    return lm_eval.tasks.get_task_dict([f"{name}_local"], TaskManager(include_path=tmp))[f"{name}_local"]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "fixtures", "lm_eval_gsm8k.json")
    docs = [json.loads(line) for line in open(SAMPLE)]
    result = {"lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, yaml in (("gsm8k_cot", "gsm8k-cot"), ("gsm8k", "gsm8k")):
            t = task(yaml, tmp)
            entry = {}
            if name == "gsm8k_cot":
                t.build_all_requests(limit=len(docs), rank=0, world_size=1)
                entry["contexts"] = [i.arguments[0] for i in sorted(t.instances, key=lambda i: i.doc_id)]
                entry["until"] = t.instances[0].arguments[1]["until"]
            entry["references"] = [t.doc_to_target(d) for d in docs]
            filters = {f["name"]: f["filter"][0] for f in t.config.filter_list}
            metric = next(m for m in t.config.metric_list if m["metric"] == "exact_match")
            kw = {k: metric[k] for k in ("regexes_to_ignore", "ignore_case", "ignore_punctuation")}
            rows = []
            for r in RESPONSES:
                row = {"response": r}
                for fname, key in (("strict-match", "strict"), ("flexible-extract", "flexible")):
                    spec = filters[fname]
                    f = RegexFilter(regex_pattern=spec["regex_pattern"], group_select=spec.get("group_select", 0))
                    got = list(f.apply([[r]], [None]))[0][0]
                    row[key] = got
                    row[f"{key}_matches_doc0"] = bool(exact_match_hf_evaluate([got], [entry["references"][0]], **kw)["exact_match"])
                rows.append(row)
            entry["filtered"] = rows
            result[name] = entry
    with open(out, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
