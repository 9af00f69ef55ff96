/**
 * The kernel suite on a real GPU: matmul up to 4096² with % of the device's fp32 peak, the
 * memory-bound ops at 4× the 2-core sizes, and an MLP training step. WebGPU only (the CPU
 * backend and ONNX Runtime are measured by `npm run bench:kernels`).
 *
 * Run it where a GPU is: see bench/gpu/README.md (it is bundled with esbuild and carried with
 * its own Node binary, since the GPU machines have no Node and no registry access).
 * Env: SHOAL_GPU_PEAK_TFLOPS overrides the peak table; SHOAL_BENCH_SIZES="1024,2048,4096";
 * SHOAL_BENCH_OUT=path for the markdown. The kernels settings come from the config like a
 * node's: SHOAL_GPU_ADAPTER pins the adapter, SHOAL_KERNELS_MATMUL_BK=32 tries the deeper tile.
 */
import { writeFileSync } from 'node:fs';
import { createKernels } from '../../kernels/index.ts';
import { configKernelsOptions, runKernelsSuite } from '../kernels.ts';

/** fp32 (non-tensor-core) peak TFLOP/s by adapter name, from the vendors' data sheets. */
const PEAKS: [RegExp, number][] = [
  [/H200/i, 66.9],
  [/H100.*(PCIe|PCI-E)/i, 51.2],
  [/H100/i, 66.9],
  [/A100/i, 19.5],
  [/L40S/i, 91.6],
  [/L4\b/i, 30.3],
  [/A10G?\b/i, 31.2],
  [/RTX 4090/i, 82.6],
  [/T4\b/i, 8.1],
];

const kernels = configKernelsOptions();
const probe = await createKernels({ ...kernels, backend: 'gpu', autotune: false });
const adapter = probe.info.adapter ?? 'unknown';
await probe.close();
const peak = Number(process.env.SHOAL_GPU_PEAK_TFLOPS ?? 0) || PEAKS.find(([re]) => re.test(adapter))?.[1];
console.log(`adapter: ${adapter}; fp32 peak: ${peak ? `${peak} TFLOP/s` : 'unknown (set SHOAL_GPU_PEAK_TFLOPS)'}`);

const sizes = (process.env.SHOAL_BENCH_SIZES ?? '1024,2048,4096').split(',').map(Number);
const res = await runKernelsSuite({ sizes, backends: ['gpu'], ortReference: false, peakTflops: peak, memScale: Number(process.env.SHOAL_BENCH_MEM_SCALE ?? 4), budgetMs: 1500, autotune: false, kernels });
const top = res.matmul.at(-1);
let tail = '';
if (top?.gflops.gpuResident) {
  const tf = top.gflops.gpuResident / 1000;
  tail = `\n## target\n\n- matmul ${top.n}²: **${tf.toFixed(2)} TFLOP/s**${peak ? ` = ${((tf / peak) * 100).toFixed(1)}% of ${peak} TFLOP/s` : ''} device-resident (H100 target ≥ 15 TFLOP/s at 4096²: ${tf >= 15 ? 'met' : 'missed'}); end-to-end with upload and readback: ${((top.gflops.gpu ?? 0) / 1000).toFixed(2)} TFLOP/s\n`;
  console.log(tail);
}
if (process.env.SHOAL_BENCH_OUT) writeFileSync(process.env.SHOAL_BENCH_OUT, res.markdown + tail);
