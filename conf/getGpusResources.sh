#!/usr/bin/env bash
# GPU discovery for Spark's resource scheduling: prints the GPUs of this host as
#   {"name": "gpu", "addresses": ["0", "1", ...]}
# (spark.executor.resource.gpu.discoveryScript / spark.worker.resource.gpu.discoveryScript).
# Honours CUDA_VISIBLE_DEVICES when it lists device ordinals. A host without nvidia-smi or
# without GPUs prints an empty list, so Spark reports "no GPUs" instead of a script error.
set -euo pipefail

addresses=()
if [[ -n "${CUDA_VISIBLE_DEVICES:-}" && "${CUDA_VISIBLE_DEVICES}" =~ ^[0-9,]+$ ]]; then
  IFS=',' read -r -a addresses <<< "${CUDA_VISIBLE_DEVICES}"
elif command -v nvidia-smi > /dev/null 2>&1; then
  while IFS= read -r index; do
    index="${index//[[:space:]]/}"
    [[ -n "$index" ]] && addresses+=("$index")
  done < <(nvidia-smi --query-gpu=index --format=csv,noheader 2> /dev/null || true)
fi

json=""
for a in "${addresses[@]+"${addresses[@]}"}"; do
  json+="${json:+,}\"${a}\""
done
echo "{\"name\": \"gpu\", \"addresses\": [${json}]}"
