#!/usr/bin/env bash
# Installs pinned torch and transformers from PyPI into a virtual environment (about 5.6 GB;
# MOECAP_REF_VENV, default ~/.cache/moecap-ref) and regenerates tests/fixtures/reference.
# The tests themselves need no Python: the outputs are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${MOECAP_REF_VENV:-$HOME/.cache/moecap-ref}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q torch==2.15.0 transformers==5.24.0 safetensors numpy
"$venv/bin/python" scripts/make_reference_fixtures.py tests/fixtures/reference
