#!/usr/bin/env bash
# Prepares a CUDA 13.0 toolkit from PyPI wheels so that the `cuda` feature builds on a machine
# without a GPU (see docs/cuda.md): nvcc, headers, runtime libraries, and a link-only stub of the
# driver library. Prints the toolkit folder (MOECAP_CUDA_HOME, default ~/.cache/moecap-cuda13).
set -euo pipefail
root="${MOECAP_CUDA_HOME:-$HOME/.cache/moecap-cuda13}"
repo="$(cd "$(dirname "$0")/.." && pwd)"

# A link-only stand-in for the driver library libcuda.so.1, which no wheel ships: it defines
# every cu* function cudarc declares, each returning CUDA_ERROR_UNKNOWN. The real driver
# library replaces it at run time on a GPU machine.
make_stub() {
  (cd "$repo" && cargo fetch -q >&2)
  local src
  src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name 'cudarc-0.19*' | sort | tail -n1)
  [ -n "$src" ] || { echo "error: cudarc sources not found after cargo fetch" >&2; exit 1; }
  grep -ho 'pub unsafe fn cu[A-Za-z0-9_]*' "$src/src/driver/sys/mod.rs" | sort -u \
    | sed 's/pub unsafe fn \(.*\)/int \1(void) { return 999; }/' > "$root/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/libcuda.so.1" "$root/libcuda_stub.c"
  ln -sf libcuda.so.1 "$root/lib/libcuda.so"
}

if [ -x "$root/bin/nvcc" ] && [ -e "$root/lib/libcuda.so" ]; then
  echo "$root"; exit 0
fi
if [ -x "$root/bin/nvcc" ]; then
  make_stub; echo "$root"; exit 0
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
make_stub
echo "$root"
