import { describe, expect, it } from 'vitest';
import { registeredErrorCodes } from '../../cluster/index.ts';
import { KernelErrors, ops, tensor, type Tensor } from '../../kernels/index.ts';
import { BACKENDS, randn, useKernels } from './reference.ts';
import { readFileSync } from 'node:fs';

const k = useKernels();

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<{ code?: string; message?: string }> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (err) {
    return err as { code?: string; message?: string };
  }
  throw new Error('expected an error');
}

const t = (shape: number[]): Tensor => tensor(randn(shape.reduce((a, b) => a * b, 1)), shape);

describe.each(BACKENDS)('bad input on %s', (backend) => {
  const run = (op: string, inputs: Tensor[], attrs?: Record<string, unknown>) => k[backend]().run(op, inputs, attrs, { backend });

  it('matmul inner-dimension mismatch names the op and the dimension', async () => {
    const e = await codeOf(run('matmul', [t([4, 3]), t([5, 2])]));
    expect(e.code).toBe('SHOAL_ERR_KERNEL_SHAPE_MISMATCH');
    expect(e.message).toMatch(/^matmul: .*A\.shape\[1\] \(K=3\) != B\.shape\[0\] \(5\)/);
  });

  it('rank, bias, broadcast and row-shape mismatches', async () => {
    expect((await codeOf(run('matmul', [t([4]), t([4, 2])]))).message).toMatch(/matmul: .*A must have rank 2/);
    expect((await codeOf(run('gemm', [t([4, 3]), t([3, 2]), t([3])]))).message).toMatch(/gemm: .*bias\.shape \[3\] must be \[N=2\]/);
    expect((await codeOf(run('binary', [t([4, 3]), t([4])], { fn: 'add' }))).message).toMatch(/binary: .*B\.shape \[4\]/);
    const ln = await codeOf(run('layerNorm', [t([4, 3]), t([4]), t([3])]));
    expect(ln.code).toBe('SHOAL_ERR_KERNEL_SHAPE_MISMATCH');
    expect(ln.message).toMatch(/layerNorm: .*gamma\.shape\[0\] \(C=4\) != X\.shape\[1\] \(3\)/);
    expect((await codeOf(run('mlpForward', [t([5, 4]), t([4, 6]), t([6]), t([7, 2]), t([2])]))).message).toMatch(/mlpForward: .*W2\.shape\[0\] \(H=7\) != W1\.shape\[1\] \(6\)/);
    expect((await codeOf(run('adam', [t([3]), t([4]), t([3]), t([3])], { step: 1 }))).message).toMatch(/adam: .*g\.shape \[4\] != w\.shape \[3\]/);
  });

  it('wrong dtypes are typed errors', async () => {
    const e = await codeOf(run('matmul', [tensor(new Int32Array(6), [2, 3]), t([3, 2])]));
    expect(e.code).toBe('SHOAL_ERR_KERNEL_BAD_DTYPE');
    expect(e.message).toBe('matmul: input A has dtype i32, expected f32');
    const ce = await codeOf(run('crossEntropy', [t([3, 4]), tensor(new Float32Array([0, 1, 2]))]));
    expect(ce.code).toBe('SHOAL_ERR_KERNEL_BAD_DTYPE');
    expect(ce.message).toMatch(/crossEntropy: input labels has dtype f32, expected i32/);
  });

  it('NaN and Infinity inputs are refused before any work, naming op, input and index', async () => {
    const x = randn(20);
    x[13] = NaN;
    const e = await codeOf(run('softmax', [tensor(x, [4, 5])]));
    expect(e.code).toBe('SHOAL_ERR_KERNEL_NAN_INPUT');
    expect(e.message).toBe('softmax: input X holds NaN or Infinity at flat index 13');
    const b = randn(6);
    b[2] = Infinity;
    expect((await codeOf(run('matmul', [t([2, 3]), tensor(b, [3, 2])]))).message).toBe('matmul: input B holds NaN or Infinity at flat index 2');
  });

  it('out-of-range labels and bad attributes', async () => {
    const e = await codeOf(run('crossEntropy', [t([3, 4]), tensor(new Int32Array([0, 4, 1]))]));
    expect(e.code).toBe('SHOAL_ERR_KERNEL_BAD_INPUT_VALUE');
    expect(e.message).toMatch(/crossEntropy: input labels holds 4 at index 1, outside \[0, C=4\)/);
    expect((await codeOf(run('histogram', [t([10])], { bins: 0, min: 0, max: 1 }))).code).toBe('SHOAL_ERR_KERNEL_BAD_ATTRIBUTE');
    expect((await codeOf(run('histogram', [t([10])], { bins: 4, min: 1, max: 1 }))).message).toMatch(/histogram: attribute max must be greater than min/);
    expect((await codeOf(run('gemm', [t([2, 2]), t([2, 2])], { activation: 'swish' }))).message).toMatch(/gemm: attribute activation must be one of/);
    expect((await codeOf(run('matmul', [t([2, 2]), t([2, 2])], { transpose: true }))).message).toMatch(/matmul: attribute transpose is not an attribute of matmul/);
    expect((await codeOf(run('unary', [t([2])]))).message).toMatch(/unary: attribute fn is required/);
    expect((await codeOf(run('nope', [t([2])]))).code).toBe('SHOAL_ERR_KERNEL_UNKNOWN_OP');
    expect((await codeOf(run('adam', [t([3]), t([3]), t([3]), t([3])], { step: 0 }))).message).toMatch(/adam: attribute step must be an integer ≥ 1/);
  });

  it('misused steps are typed errors', async () => {
    const kk = k[backend]();
    const a = kk.step();
    const b = kk.step();
    const v = a.op1('unary', [t([3])], { fn: 'relu' });
    expect((await codeOf(() => b.op('unary', [v], { fn: 'relu' }))).code).toBe('SHOAL_ERR_KERNEL_BAD_STEP');
    const r = kk.resident(t([3]));
    expect((await codeOf(() => a.assign(r, a.op1('unary', [t([4])], { fn: 'relu' })))).message).toMatch(/does not match/);
    a.read(v);
    await a.run({ backend });
    expect((await codeOf(a.run({ backend }))).code).toBe('SHOAL_ERR_KERNEL_BAD_STEP');
    r.dispose();
  });

  it('a malformed tensor is refused', async () => {
    expect((await codeOf(() => tensor(new Float32Array(5), [2, 3]))).message).toMatch(/shape \[2, 3\] holds 6 elements but the data has 5/);
  });
});

describe('GPU limits', () => {
  it('a tensor over maxStorageBufferBindingSize is a typed error on the GPU, not a validation error', async () => {
    const gpu = k.gpu();
    const limit = gpu.info.limits!.maxStorageBufferBindingSize;
    const n = limit / 4 + 1024;
    const big = tensor(new Float32Array(n).fill(0.5), [n]);
    const e = await codeOf(gpu.run('unary', [big], { fn: 'relu' }, { backend: 'gpu' }));
    expect(e.code).toBe('SHOAL_ERR_KERNEL_BUFFER_TOO_LARGE');
    expect(e.message).toBe(`unary: X [${n}] needs ${n * 4} bytes, over the adapter's maxStorageBufferBindingSize of ${limit} bytes`);
    // The device is still healthy afterwards.
    const [y] = await gpu.run('unary', [tensor(new Float32Array([-1, 2]))], { fn: 'relu' }, { backend: 'gpu' });
    expect(Array.from(y!.data)).toEqual([0, 2]);
  });

  it('auto dispatch sends an over-limit step to the CPU instead', async () => {
    const gpu = k.gpu();
    const limit = gpu.info.limits!.maxStorageBufferBindingSize;
    const n = limit / 4 + 4;
    const s = gpu.step();
    s.read(s.op1('reduce', [tensor(new Float32Array(n).fill(1), [1, n])], { fn: 'sum' }));
    expect((await gpu.choose(s)).backend).toBe('cpu');
  });
});

describe('device errors', () => {
  it('a device validation error inside a step surfaces as SHOAL_ERR_KERNEL_GPU_FAILED, and residents keep their values', async () => {
    const gpu = k.gpu();
    // A deliberately broken op (invalid WGSL), registered for this test only.
    const broken = {
      kind: 'primitive',
      name: 'brokenForTest',
      inputs: ['X'],
      opClass: 'elementwise',
      parseAttributes: () => ({}),
      validate: (inputs: readonly { dtype: string; shape: readonly number[] }[]) => [{ dtype: 'f32', shape: [...inputs[0]!.shape] }],
      cost: () => ({ flops: 1, bytes: 1 }),
      gpu(ctx: { pipeline: (k: string, w: () => string) => unknown; dispatch: (...a: unknown[]) => void }, inputs: unknown[], outputs: unknown[]) {
        const p = ctx.pipeline('brokenForTest', () => 'this is not WGSL');
        ctx.dispatch(p, {}, [inputs[0], outputs[0]], [1]);
      },
      cpu: () => undefined,
    };
    (ops as Map<string, unknown>).set('brokenForTest', broken);
    try {
      const w = gpu.resident(tensor(new Float32Array([1, 2, 3])));
      const s = gpu.step();
      s.assign(w, s.op1('brokenForTest', [w]));
      const e = await codeOf(s.run({ backend: 'gpu' }));
      expect(e.code).toBe('SHOAL_ERR_KERNEL_GPU_FAILED');
      expect(e.message).toMatch(/^brokenForTest: the GPU reported an error/);
      expect(Array.from((await w.read()).data)).toEqual([1, 2, 3]);
      const [y] = await gpu.run('unary', [tensor(new Float32Array([-1, 2]))], { fn: 'relu' }, { backend: 'gpu' });
      expect(Array.from(y!.data)).toEqual([0, 2]);
      w.dispose();
    } finally {
      (ops as Map<string, unknown>).delete('brokenForTest');
    }
  });
});

describe('error codes', () => {
  it('every kernels code is registered once and documented in docs/errors.md', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Kernels (`kernels/`)'));
    const codes = Object.values(KernelErrors).map((d) => d.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) {
      expect(registeredErrorCodes().get(c)?.where).toBe('kernels');
      expect(section).toContain(`\`${c}\``);
    }
  });
});
