/**
 * Kernel benchmark: `npm run bench:kernels` → bench/results/kernels.md.
 *
 * Every number is end-to-end as a caller sees it (`kernels.run` / `step.run`: upload, compute,
 * readback), the median of interleaved rounds, so that the backends and the reference share the
 * machine's noise. The reference is onnxruntime-node's own MatMul on the same shapes, in the
 * same run; ratios are against it. bench/gpu/ runs this suite on a real GPU.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../cluster/index.ts';
import { createKernels, crossovers, gemmModel, kernelsOptionsFrom, tensor, type Kernels, type KernelsOptions, type Tensor, type Value } from '../kernels/index.ts';

type Backend = 'gpu' | 'cpu';

export interface SuiteOptions {
  /** Square matmul sizes. */
  sizes: number[];
  backends: Backend[];
  /** Compare against a direct onnxruntime-node MatMul. */
  ortReference: boolean;
  /** fp32 peak of the GPU in TFLOP/s, to print % of peak. */
  peakTflops?: number;
  /** Scale for the memory-bound shapes (1 = the 2-core defaults). */
  memScale: number;
  /** Target milliseconds of measurement per case and contender. */
  budgetMs: number;
  /** Base options of every kernels instance the suite creates (adapter, matmulBk, cacheDir…). */
  kernels?: KernelsOptions;
  autotune: boolean;
}

/** The kernels settings of the config (file, `SHOAL_GPU_ADAPTER`, `SHOAL_KERNELS_MATMUL_BK`, …). */
export function configKernelsOptions(): KernelsOptions {
  const { backend: _backend, ...rest } = kernelsOptionsFrom(loadConfig({ argv: [] }));
  return rest;
}

const rnd = (n: number): Float32Array => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1 || 0.5;
  return a;
};

/** Median ms per contender, measured in interleaved rounds after one warm-up each. */
async function race(contenders: Record<string, () => Promise<unknown>>, budgetMs: number): Promise<Record<string, number>> {
  const names = Object.keys(contenders);
  const first: Record<string, number> = {};
  for (const n of names) {
    await contenders[n]!();
    const t = performance.now();
    await contenders[n]!();
    first[n] = performance.now() - t;
  }
  const slowest = Math.max(...Object.values(first));
  const rounds = Math.max(3, Math.min(25, Math.ceil(budgetMs / Math.max(slowest, 0.01))));
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, [first[n]!]]));
  for (let r = 0; r < rounds; r++) {
    for (const n of names) {
      const t = performance.now();
      await contenders[n]!();
      samples[n]!.push(performance.now() - t);
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(samples[n]!)]));
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

const f1 = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

export interface SuiteResult {
  markdown: string;
  matmul: { n: number; gflops: Partial<Record<Backend | 'ort' | 'gpuResident', number>> }[];
}

export async function runKernelsSuite(o: SuiteOptions): Promise<SuiteResult> {
  const out: string[] = [];
  const log = (s = ''): void => {
    out.push(s);
    console.log(s);
  };
  const k: Partial<Record<Backend, Kernels>> = {};
  if (o.backends.includes('gpu')) k.gpu = await createKernels({ ...o.kernels, backend: 'gpu', autotune: false });
  if (o.backends.includes('cpu')) k.cpu = await createKernels({ ...o.kernels, backend: 'cpu', cpuWorkers: 1 });
  const ort = o.ortReference ? await import('onnxruntime-node') : undefined;
  const ortSession = ort ? await ort.InferenceSession.create(gemmModel({ transA: false, transB: false, alpha: 1, beta: 0, bias: 'none' })) : undefined;

  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  log('# Kernel benchmark');
  log();
  log(`- date: ${new Date().toISOString()}; node ${process.version}; ${availableParallelism()} × ${cpuModel}`);
  if (k.gpu) {
    const i = k.gpu.info;
    log(`- WebGPU adapter: ${i.adapter}; features: ${Object.entries(i.features ?? {}).filter(([, v]) => v).map(([f]) => f).join(', ') || 'none'}; maxStorageBufferBindingSize ${i.limits?.maxStorageBufferBindingSize}, workgroup storage ${i.limits?.maxComputeWorkgroupStorageSize} B`);
  }
  if (k.cpu) log('- CPU backend: 1 piscina worker, ONNX Runtime (MLAS) for matmul-class ops, JS for the rest');
  log('- times are end-to-end as a caller sees them (host inputs → upload → compute → readback), median of interleaved rounds' + (ort ? '; reference: onnxruntime-node `MatMul` called directly in the same run' : ''));
  if (k.gpu) log('- "WebGPU resident": inputs already on the device (resident tensors), no readback, timed to `queue.onSubmittedWorkDone()` — the kernel itself');
  log();

  const suite: Suite = { o, k, ort, ortSession, log, backends: o.backends.filter((b) => k[b]) };
  const matmul = await matmulSection(suite);
  await opsSection(suite);
  await stepSection(suite);
  await crossoverSection(suite);
  await ortSession?.release();
  await k.gpu?.close();
  await k.cpu?.close();
  return { markdown: out.join('\n') + '\n', matmul };
}


/** What every section of the suite shares: options, the kernels per backend, the ORT reference, the report. */
interface Suite {
  o: SuiteOptions;
  k: Partial<Record<Backend, Kernels>>;
  ort: typeof import('onnxruntime-node') | undefined;
  ortSession: import('onnxruntime-node').InferenceSession | undefined;
  log: (s?: string) => void;
  /** The backends that are there. */
  backends: Backend[];
}

async function matmulSection(suite: Suite): Promise<SuiteResult['matmul']> {
  const { o, k, ort, ortSession, log } = suite;
  // ---- matmul -----------------------------------------------------------------------------------
  log('## matmul (f32, square N×N·N×N), GFLOP/s');
  log();
  const cols = [...(k.gpu ? ['WebGPU', 'WebGPU resident'] : []), ...(k.cpu ? ['CPU backend'] : []), ...(ort ? ['ORT MatMul (direct)'] : []), ...(k.gpu && ort ? ['WebGPU / ORT'] : []), ...(k.cpu && ort ? ['CPU backend / ORT'] : []), ...(o.peakTflops ? ['WebGPU % of fp32 peak'] : [])];
  log(`| N | ${cols.join(' | ')} |`);
  log(`|---|${cols.map(() => '---:').join('|')}|`);
  const matmul: SuiteResult['matmul'] = [];
  for (const n of o.sizes) {
    const A = tensor(rnd(n * n), [n, n]);
    const B = tensor(rnd(n * n), [n, n]);
    const c: Record<string, () => Promise<unknown>> = {};
    if (k.gpu) c.gpu = () => k.gpu!.run('matmul', [A, B], {}, { backend: 'gpu' });
    const rA = k.gpu?.resident(A);
    const rB = k.gpu?.resident(B);
    if (k.gpu) {
      c.gpuResident = async () => {
        const st = k.gpu!.step();
        st.op1('matmul', [rA!, rB!]);
        await st.run({ backend: 'gpu' });
        await k.gpu!.sync();
      };
    }
    if (k.cpu) c.cpu = () => k.cpu!.run('matmul', [A, B], {}, { backend: 'cpu' });
    if (ort && ortSession) c.ort = () => ortSession.run({ A: new ort.Tensor('float32', A.data as Float32Array, [n, n]), B: new ort.Tensor('float32', B.data as Float32Array, [n, n]) });
    const ms = await race(c, o.budgetMs);
    const g = (name: string): number | undefined => (ms[name] === undefined ? undefined : (2 * n ** 3) / ms[name]! / 1e6);
    const row: string[] = [];
    rA?.dispose();
    rB?.dispose();
    const gflops: Partial<Record<Backend | 'ort' | 'gpuResident', number>> = { gpu: g('gpu'), gpuResident: g('gpuResident'), cpu: g('cpu'), ort: g('ort') };
    if (k.gpu) row.push(f1(gflops.gpu!), f1(gflops.gpuResident!));
    if (k.cpu) row.push(f1(gflops.cpu!));
    if (ort) row.push(f1(gflops.ort!));
    if (k.gpu && ort) row.push(`${(gflops.gpu! / gflops.ort!).toFixed(3)}×`);
    if (k.cpu && ort) row.push(`${(gflops.cpu! / gflops.ort!).toFixed(2)}×`);
    if (o.peakTflops) row.push(`${((gflops.gpuResident! / 1000 / o.peakTflops) * 100).toFixed(1)}%`);
    log(`| ${n} | ${row.join(' | ')} |`);
    matmul.push({ n, gflops });
  }
  log();
  return matmul;
}

async function opsSection(suite: Suite): Promise<void> {
  const { o, k, log, backends: bk } = suite;
  // ---- other ops ----------------------------------------------------------------------------------
  const s = o.memScale;
  const R = Math.round(2048 * s);
  const big = Math.round(4 * 1024 * 1024 * s);
  type Case = { name: string; op: string; inputs: Tensor[]; attrs?: Record<string, unknown>; unit: 'GFLOP/s' | 'GB/s' };
  const cases: Case[] = [
    { name: `gemm+bias+relu ${Math.round(512 * Math.sqrt(s))}²`, op: 'gemm', inputs: gemmInputs(Math.round(512 * Math.sqrt(s))), attrs: { activation: 'relu' }, unit: 'GFLOP/s' },
    { name: `GEMV 1×${Math.round(2048 * Math.sqrt(s))}·${Math.round(2048 * Math.sqrt(s))}²`, op: 'matmul', inputs: gemvInputs(Math.round(2048 * Math.sqrt(s))), unit: 'GB/s' },
    { name: `softmax [${R}, 1024]`, op: 'softmax', inputs: [tensor(rnd(R * 1024), [R, 1024])], unit: 'GB/s' },
    { name: `layerNorm [${R}, 1024]`, op: 'layerNorm', inputs: [tensor(rnd(R * 1024), [R, 1024]), tensor(rnd(1024), [1024]), tensor(rnd(1024), [1024])], unit: 'GB/s' },
    { name: `reduce sum rows [${R}, 1024]`, op: 'reduce', inputs: [tensor(rnd(R * 1024), [R, 1024])], attrs: { fn: 'sum', axis: 1 }, unit: 'GB/s' },
    { name: `reduce variance cols [${R}, 1024]`, op: 'reduce', inputs: [tensor(rnd(R * 1024), [R, 1024])], attrs: { fn: 'variance', axis: 0 }, unit: 'GB/s' },
    { name: `unary gelu [${big}]`, op: 'unary', inputs: [tensor(rnd(big))], attrs: { fn: 'gelu' }, unit: 'GB/s' },
    { name: `binary add [${big}]`, op: 'binary', inputs: [tensor(rnd(big)), tensor(rnd(big))], attrs: { fn: 'add' }, unit: 'GB/s' },
    { name: `histogram 256 bins [${big}]`, op: 'histogram', inputs: [tensor(rnd(big))], attrs: { bins: 256, min: -1, max: 1 }, unit: 'GB/s' },
    { name: `crossEntropy [${R * 2}, 100]`, op: 'crossEntropy', inputs: [tensor(rnd(R * 200), [R * 2, 100]), tensor(Int32Array.from({ length: R * 2 }, (_, i) => i % 100))], unit: 'GB/s' },
    { name: `adam [${big / 4}]`, op: 'adam', inputs: [0, 1, 2, 3].map(() => tensor(rnd(big / 4).map(Math.abs))), attrs: { step: 1 }, unit: 'GB/s' },
  ];
  log(`## other ops (${bk.map((b) => (b === 'gpu' ? 'WebGPU' : 'CPU backend')).join(' vs ')}); GB/s counts each op's compulsory bytes`);
  log();
  log(`| op | unit | ${bk.map((b) => (b === 'gpu' ? 'WebGPU' : 'CPU backend')).join(' | ')}${bk.length === 2 ? ' | WebGPU / CPU' : ''} |`);
  log(`|---|---|${bk.map(() => '---:').join('|')}${bk.length === 2 ? '|---:' : ''}|`);
  for (const c of cases) {
    const any = k[bk[0]!]!;
    const def = any.resolveOp(c.op);
    if (def.kind !== 'primitive') continue;
    const cost = def.cost(c.inputs, def.parseAttributes(c.attrs));
    const work = c.unit === 'GFLOP/s' ? cost.flops : cost.bytes;
    const ms = await race(Object.fromEntries(bk.map((b) => [b, () => k[b]!.run(c.op, c.inputs, c.attrs, { backend: b })])), o.budgetMs / 2);
    const rate = (b: Backend): number => work / ms[b]! / 1e6;
    log(`| ${c.name} | ${c.unit} | ${bk.map((b) => f1(rate(b))).join(' | ')}${bk.length === 2 ? ` | ${(rate('gpu') / rate('cpu')).toFixed(2)}×` : ''} |`);
  }
  log();
}

async function stepSection(suite: Suite): Promise<void> {
  const { o, k, log, backends: bk } = suite;
  // ---- a whole training step ------------------------------------------------------------------------
  const [N, D, H, C] = [Math.round(512 * o.memScale), 256, 256, 10];
  log(`## MLP training step (forward + cross-entropy + backward + Adam on 4 tensors, one step = one GPU submit or one worker task), N=${N} D=${D} H=${H} C=${C}`);
  log();
  const stepFlops = 2 * N * (D * H + H * C) * 3;
  const X = tensor(rnd(N * D), [N, D]);
  const labels = tensor(Int32Array.from({ length: N }, (_, i) => i % C));
  const runners: Record<string, () => Promise<unknown>> = {};
  for (const b of bk) {
    const kk = k[b]!;
    const shapes = [[D, H], [H], [H, C], [C]];
    const w = shapes.map((sh) => kk.resident(tensor(rnd(sh.reduce((x, y) => x * y, 1)).map((v) => v * 0.1), sh)));
    const m = shapes.map((sh) => kk.resident(tensor(new Float32Array(sh.reduce((x, y) => x * y, 1)), sh)));
    const v = shapes.map((sh) => kk.resident(tensor(new Float32Array(sh.reduce((x, y) => x * y, 1)), sh)));
    let t = 0;
    runners[b] = async () => {
      t++;
      const st = kk.step();
      const x = st.input(X);
      const [h, logits] = st.op('mlpForward', [x, w[0]!, w[1]!, w[2]!, w[3]!], { activation: 'relu' }) as [Value, Value];
      const [loss, dl] = st.op('crossEntropy', [logits, labels]) as [Value, Value];
      st.op('mlpBackward', [x, h, w[2]!, dl], { activation: 'relu' }).forEach((g, i) => {
        const [wn, mn, vn] = st.op('adam', [w[i]!, g, m[i]!, v[i]!], { lr: 1e-3, step: t }) as [Value, Value, Value];
        st.assign(w[i]!, wn).assign(m[i]!, mn).assign(v[i]!, vn);
      });
      st.read(loss);
      return st.run({ backend: b });
    };
  }
  const ms = await race(runners, o.budgetMs);
  log(`| backend | ms / step | steps/s | GFLOP/s |`);
  log(`|---|---:|---:|---:|`);
  for (const b of bk) log(`| ${b === 'gpu' ? 'WebGPU' : 'CPU backend'} | ${f1(ms[b]!)} | ${f1(1000 / ms[b]!)} | ${f1(stepFlops / ms[b]! / 1e6)} |`);
  log();
}

async function crossoverSection(suite: Suite): Promise<void> {
  const { o, log } = suite;
  // ---- crossover ------------------------------------------------------------------------------------
  if (o.autotune && o.backends.length === 2) {
    const auto = await createKernels({ ...o.kernels, backend: 'auto', cpuWorkers: 1 });
    const table = await auto.autotune(true);
    if (table) {
      log('## measured GPU/CPU crossover (the autotune table `backend: "auto"` dispatches by)');
      log();
      log('| op class | cost unit | smallest measured cost where WebGPU wins | points (cost: WebGPU ms / CPU ms) |');
      log('|---|---|---|---|');
      const x = crossovers(table);
      for (const [cls, pts] of Object.entries(table.classes)) {
        const unit = cls === 'matmul' ? 'flops' : 'bytes';
        const win = x[cls as keyof typeof x];
        log(`| ${cls} | ${unit} | ${win == null ? 'never (CPU wins at every measured size)' : win.toExponential(1)} | ${pts!.map((p) => `${p.cost.toExponential(1)}: ${f1(p.gpuMs)} / ${f1(p.cpuMs)}`).join('; ')} |`);
      }
      log();
    }
    await auto.close();
  }
}

function gemmInputs(n: number): Tensor[] {
  return [tensor(rnd(n * n), [n, n]), tensor(rnd(n * n), [n, n]), tensor(rnd(n), [n])];
}
function gemvInputs(n: number): Tensor[] {
  return [tensor(rnd(n), [1, n]), tensor(rnd(n * n), [n, n])];
}

// ---- entry point (npm run bench:kernels) ------------------------------------------------------------
// (Matched by path, not import.meta.url: bench/gpu bundles this module into another entry.)
if (/bench[\\/]kernels\.ts$/.test(process.argv[1] ?? '')) {
  const res = await runKernelsSuite({ sizes: [128, 256, 512, 1024], backends: ['gpu', 'cpu'], ortReference: true, memScale: 1, budgetMs: 2500, autotune: true, kernels: configKernelsOptions() });
  const file = join(dirname(fileURLToPath(import.meta.url)), 'results', 'kernels.md');
  mkdirSync(dirname(file), { recursive: true });
  const targets = res.matmul.find((r) => r.n === 1024);
  let tail = '';
  if (targets) {
    const g = targets.gflops;
    tail += '## targets (this 2-core machine)\n\n';
    tail += `- WebGPU-on-lavapipe matmul at 1024² ≥ 6 GFLOP/s: **${f1(g.gpuResident ?? 0)} GFLOP/s** resident, ${f1(g.gpu ?? 0)} end-to-end (${(g.gpuResident ?? 0) >= 6 ? 'met' : 'missed'})\n`;
    tail += `- CPU backend matmul ≥ 0.8× a direct onnxruntime call at 1024²: **${((g.cpu ?? 0) / (g.ort ?? 1)).toFixed(2)}×** (${(g.cpu ?? 0) / (g.ort ?? 1) >= 0.8 ? 'met' : 'missed'})\n`;
    tail += '- H100 ≥ 15 TFLOP/s at 4096²: run `bench/gpu/` on a GPU machine (see bench/gpu/README.md)\n';
    console.log(tail);
  }
  writeFileSync(file, res.markdown + tail);
  console.log(`wrote ${file}`);
}
