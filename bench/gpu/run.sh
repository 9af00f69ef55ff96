#!/usr/bin/env bash
# Runs on the GPU machine, from the repo root, with .gpubench and .gl carried (see README.md).
set -euo pipefail
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null || true
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg}; mkdir -p "$XDG_RUNTIME_DIR"
xz -dc .gpubench/node.xz > /tmp/node && chmod +x /tmp/node
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv || true
cd .gpubench
SHOAL_BENCH_OUT="${OUT:-/tmp}/kernels-gpu.md" SHOAL_LOG_LEVEL=warn /tmp/node kernels-gpu.mjs
