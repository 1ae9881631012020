#!/usr/bin/env bash
# Prepares a CUDA 13.0 toolkit from PyPI wheels so that the `cuda` feature builds on a machine
# without a GPU (see docs/cuda.md): nvcc, headers, runtime libraries, and a link-only stub of the
# driver library. Prints the toolkit folder (MOECAP_CUDA_HOME, default ~/.cache/moecap-cuda13).
set -euo pipefail
root="${MOECAP_CUDA_HOME:-$HOME/.cache/moecap-cuda13}"
if [ -x "$root/bin/nvcc" ] && [ -e "$root/lib/libcuda.so" ]; then
  echo "$root"; exit 0
fi
wheels="$root.wheels"
mkdir -p "$wheels" "$root"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" \
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 >&2
tmp="$root.unpack"
rm -rf "$tmp"; mkdir -p "$tmp"
for w in "$wheels"/*.whl; do
  python3 -m zipfile -e "$w" "$tmp" >&2
done
# Every wheel puts its files under nvidia/cu13/{bin,include,lib,nvvm}.
cp -a "$tmp"/nvidia/cu13/. "$root"/
rm -rf "$tmp"
chmod +x "$root"/bin/* "$root"/nvvm/bin/* 2>/dev/null || true
ln -sfn lib "$root/lib64"
cd "$root/lib"
for n in cublas cublasLt cudart nvrtc; do
  f=$(ls lib$n.so.* 2>/dev/null | head -n1 || true)
  [ -n "$f" ] && ln -sf "$f" "lib$n.so"
done
f=$(ls libcurand.so.* 2>/dev/null | head -n1 || true)
[ -n "$f" ] && ln -sf "$f" libcurand.so
echo "$root"
