#!/usr/bin/env bash
# Checks the CAP report in a real headless browser: builds a small bench run and an eval run of
# the built-in synthetic model and the committed data sample, writes `moecap report` of both, and
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
"$bin" bench --model synthetic:tiny-mixtral --batch 1,2 --prompt-len 16 --gen-len 4 --repetitions 2 \
  --ceilings "$ceil" --hardware EPYC-9654 --devices 1 --out "$work/bench" >/dev/null
"$bin" offload simulate --trace "$work/bench" --link-gbs 16 --out "$work/bench/offload" >/dev/null
"$bin" report "$work/bench" --out "$work/report.html"
node scripts/report-check/check.mjs "$work/report.html" "${REPORT_SCREENSHOT:-$work/report.png}"
