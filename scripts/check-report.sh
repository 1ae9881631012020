#!/usr/bin/env bash
# Checks the CAP report in a real headless browser: makes a small bench run (with cost and an
# offload simulation) and an eval run on the committed data sample, writes `moecap report` of both, and
# opens it in Debian's Chromium through playwright-core (from npm): no console or page error, no
# network request, every figure and the radar drawn. Installs Chromium (apt) and playwright-core
# (npm) when missing. Usage: scripts/check-report.sh [MOECAP_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/moecap}
[ -x "$bin" ] || cargo build --release
if ! command -v chromium >/dev/null; then
  echo "== installing chromium (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -q && apt-get install -y -q chromium) >/dev/null
fi
if [ ! -d scripts/report-check/node_modules/playwright-core ]; then
  echo "== installing playwright-core (npm; no browser download)"
  (cd scripts/report-check && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ceil="$work/ceilings.json"
printf '%s' '{"key":"check","copy_bytes_per_s":2e10,"triad_bytes_per_s":2e10,"buffer_bytes":1,"matmul_flops_per_s":{"f32":1e11},"matmul_size":{"f32":64},"threads":1,"measured_at":0}' > "$ceil"
# A synthetic model with a word-level tokenizer over the committed ARC-Easy sample and the built-in
# sample text, so that one model has all three CAP axes: a bench run (with cost and an offload
# simulation) and an eval run (its answers are meaningless; the page is what is checked).
vocab=$(python3 - "$work/tok.json" <<'PY'
import gzip, json, re, sys
words = set()
with gzip.open("tests/fixtures/data/arc_easy/test.jsonl.gz", "rt") as f:
    for line in f:
        words.update(re.findall(r"\w+|[^\w\s]+", json.dumps(json.loads(line), ensure_ascii=False)))
words.update(re.findall(r"\w+|[^\w\s]+", open("src/data/sample.txt").read()))
words.update(["Question", "Answer", ":"])
vocab = {"<unk>": 0}
for i, w in enumerate(sorted(words)):
    vocab[w] = i + 1
json.dump({"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
           "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
           "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}},
          open(sys.argv[1], "w"))
print(len(vocab))
PY
)
"$bin" synth --like tiny-mixtral --vocab "$vocab" --tokenizer "$work/tok.json" --out "$work/model" >/dev/null
"$bin" bench --model "$work/model" --batch 1,2 --prompt-len 16 --gen-len 4 --repetitions 2 \
  --ceilings "$ceil" --hardware EPYC-9654 --devices 1 --out "$work/bench" >/dev/null
"$bin" offload simulate --trace "$work/bench" --link-gbs 16 --deployment default --out "$work/bench/offload" >/dev/null
"$bin" eval --model "$work/model" --data tests/fixtures/data --tasks arc_easy \
  --ceilings "$ceil" --hardware EPYC-9654 --devices 1 --out "$work/eval" >/dev/null
"$bin" report "$work/bench" "$work/eval" --out "$work/report.html"
node scripts/report-check/check.mjs "$work/report.html" "${REPORT_SCREENSHOT:-$work/report.png}"
