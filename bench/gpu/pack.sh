#!/usr/bin/env bash
# Packs what the GPU benchmark needs into .gpubench/ (ignored by git, carried by the device
# tool): the suite bundled into one ES module, the webgpu package's Linux build (dawn.node), a
# compressed Node binary, and the Vulkan loader .debs the GPU image lacks. ~45 MiB in all.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpubench/' .git/info/exclude 2>/dev/null || echo '/.gpubench/' >> .git/info/exclude
rm -rf .gpubench && mkdir -p .gpubench/node_modules/webgpu/dist
npx esbuild bench/gpu/kernels-gpu.ts --bundle --platform=node --format=esm --target=node20 \
  --external:webgpu --external:onnxruntime-node --external:tsx \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --outfile=.gpubench/kernels-gpu.mjs --log-level=warning
cp node_modules/webgpu/package.json node_modules/webgpu/index.js .gpubench/node_modules/webgpu/
cp -r node_modules/webgpu/dist/linux-x64 .gpubench/node_modules/webgpu/dist/
xz -T0 -6 -c "$(command -v node)" > .gpubench/node.xz
# Vulkan loader for the GPU image (as /work/.library/device/README.md describes).
if [ ! -d .gl ] && command -v apt-get >/dev/null; then
  grep -qx '/.gl/' .git/info/exclude || echo '/.gl/' >> .git/info/exclude
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq && (cd .gl && apt-get $o download -qq libvulkan1)
fi
du -sh .gpubench .gl 2>/dev/null
