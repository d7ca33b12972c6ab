#!/usr/bin/env bash
# Compiles every kernels/*.cu into a fatbin (SASS for sm_80, sm_86, sm_89, sm_90 plus
# compute_80 PTX for newer GPUs) under OUT_DIR, with an index file listing them. Each file is
# compiled twice from the same source: <name>.fatbin (bf16 weights and activations) and, with
# -DPOLAR_FP16, <name>_f16.fatbin (fp16; see common.cuh); the index lists both.
# kernels/*_sm90a.cu (Hopper-only code: wgmma) are compiled for sm_90a alone, and only when the
# architectures include 90; the runtime loads them on compute capability 9.0 only.
# Called by gpu-runtime's build (generate-resources). Without nvcc it prints how to get the
# kernels and exits 0, so the Java build still passes; the CUDA backend then refuses to start
# with a message that says the same.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh OUT_DIR}"
mkdir -p "$out"
index="$out/kernels.index"
NVCC="${NVCC:-nvcc}"
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "[kernels] nvcc not found: building without the CUDA kernel image." \
       "Install the CUDA toolkit (nvcc 12.x or 13.x) and rebuild to use backend=cuda." >&2
  : > "$index"
  exit 0
fi
ARCHS="${POLAR_CUDA_ARCHS:-80 86 89 90}"
gencode=()
for a in $ARCHS; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
gencode+=(-gencode "arch=compute_80,code=compute_80")
# The fatbins were built for this list (a different list rebuilds every file).
stamp="$out/kernels.archs"
prev_archs="$(cat "$stamp" 2>/dev/null || true)"
[ "$prev_archs" = "$ARCHS" ] || rm -f "$stamp"
tmp_index="$(mktemp)"
# Up to POLAR_KERNEL_JOBS (default: the CPU count) nvcc runs at once.
jobs_max="${POLAR_KERNEL_JOBS:-$(nproc 2>/dev/null || echo 1)}"
running=0
failed=0
compile() {  # compile FATBIN SOURCE NVCC-FLAGS...: into FATBIN.tmp, then renamed
  local fat="$1" src="$2"
  shift 2
  "$NVCC" -fatbin -O3 -std=c++17 -lineinfo -Xptxas -O3 "$@" -I "$here" -o "$fat.tmp" "$src" \
    && mv "$fat.tmp" "$fat"
}
for src in "$here"/*.cu; do
  for dtype in bf16 f16; do
    name="$(basename "$src" .cu)"
    flags=("${gencode[@]}")
    if [[ "$name" == *_sm90a ]]; then
      [[ " $ARCHS " == *" 90 "* ]] || continue
      flags=(-gencode "arch=compute_90a,code=sm_90a")
    fi
    if [ "$dtype" = f16 ]; then
      name="${name}_f16"
      flags+=(-DPOLAR_FP16)
    fi
    fat="$out/$name.fatbin"
    echo "$name.fatbin" >> "$tmp_index"
    # Rebuild only when the source or a shared header is newer than the fatbin.
    fresh=1
    [ -f "$stamp" ] || fresh=0
    for dep in "$src" "$here"/*.cuh "$0"; do
      [ -f "$fat" ] && [ "$fat" -nt "$dep" ] || fresh=0
    done
    if [ "$fresh" = 1 ]; then
      continue
    fi
    echo "[kernels] nvcc $(basename "$src") -> $name.fatbin (${flags[*]})" >&2
    compile "$fat" "$src" "${flags[@]}" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs_max" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
  done
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [ "$failed" != 0 ]; then
  rm -f "$tmp_index"
  echo "[kernels] nvcc failed (see above)" >&2
  exit 1
fi
mv "$tmp_index" "$index"
echo "$ARCHS" > "$stamp"
