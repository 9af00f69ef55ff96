import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKernels, crossovers, tensor, type Kernels } from '../../kernels/index.ts';
import { randn, refSoftmax, relErr } from './reference.ts';

const cacheDir = mkdtempSync(join(tmpdir(), 'shoal-kernels-test-'));
const opened: Kernels[] = [];
afterAll(async () => {
  for (const k of opened) await k.close();
  rmSync(cacheDir, { recursive: true, force: true });
});

describe('dispatch by measured crossover', () => {
  it('autotunes once per adapter, caches the table on disk, and reuses it', async () => {
    const k = await createKernels({ backend: 'auto', cacheDir, cpuWorkers: 1 });
    opened.push(k);
    expect(k.gpu).toBeDefined();
    const table = await k.autotune();
    expect(table?.adapter).toBe(k.info.adapter);
    for (const cls of ['matmul', 'elementwise', 'rowwise', 'reduce'] as const) {
      const pts = table!.classes[cls]!;
      expect(pts.length).toBeGreaterThanOrEqual(3);
      for (const p of pts) expect(p.gpuMs > 0 && p.cpuMs > 0).toBe(true);
    }
    const files = (await import('node:fs')).readdirSync(cacheDir);
    expect(files).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(cacheDir, files[0]!), 'utf8')).adapter).toBe(k.info.adapter);
    expect(Object.keys(crossovers(table!))).toContain('matmul');

    // A second instance loads the same table instead of measuring again.
    const k2 = await createKernels({ backend: 'auto', cacheDir, cpuWorkers: 0 });
    opened.push(k2);
    expect((await k2.autotune())?.createdAt).toBe(table!.createdAt);
    expect(existsSync(join(cacheDir, files[0]!))).toBe(true);
  });

  it('chooses per step from the curves, and an option overrides it', async () => {
    const k = opened[0]!;
    const s = k.step();
    const x = randn(64 * 300, 3);
    s.read(s.op1('softmax', [tensor(x, [64, 300])]));
    const c = await k.choose(s);
    expect(c.why).toBe('measured crossover');
    expect(Number.isFinite(c.gpuMs) && Number.isFinite(c.cpuMs)).toBe(true);
    expect(c.backend).toBe(c.gpuMs! < c.cpuMs! ? 'gpu' : 'cpu');
    const res = await s.run();
    expect(res.backend).toBe(c.backend);
    expect(relErr(res.values[0]!.data, refSoftmax(x, 64, 300))).toBeLessThan(1e-4);
    for (const backend of ['gpu', 'cpu'] as const) {
      const [y] = await k.run('softmax', [tensor(x, [64, 300])], {}, { backend });
      expect(relErr(y!.data, refSoftmax(x, 64, 300))).toBeLessThan(1e-4);
    }
  });

  it('resident tensors follow the step to either backend', async () => {
    const k = opened[0]!;
    const w = k.resident(tensor(randn(1000)), 'w');
    const g = randn(1000);
    let expected = Float64Array.from((await w.read()).data);
    for (const backend of ['gpu', 'cpu', 'gpu', 'gpu', 'cpu'] as const) {
      const s = k.step();
      s.assign(w, s.op1('sgd', [w, tensor(g)], { lr: 0.5 }));
      await s.run({ backend });
      expected = expected.map((v, i) => v - 0.5 * g[i]!);
    }
    expect(relErr((await w.read()).data, expected)).toBeLessThan(1e-5);
    w.dispose();
  });
});

describe('CPU backend placement', () => {
  it('small steps run inline and large ones in the worker, with the same results', async () => {
    const k = await createKernels({ backend: 'cpu', cpuWorkers: 1 });
    opened.push(k);
    for (const n of [16, 200]) {
      const a = randn(n * n);
      const b = randn(n * n);
      const [c] = await k.run('matmul', [tensor(a, [n, n]), tensor(b, [n, n])], {}, { poison: true });
      const ref = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let p = 0; p < n; p++) for (let j = 0; j < n; j++) ref[i * n + j]! += a[i * n + p]! * b[p * n + j]!;
      expect(relErr(c!.data, ref)).toBeLessThan(1e-4);
    }
  });
});
