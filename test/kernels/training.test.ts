import { describe, expect, it } from 'vitest';
import { tensor, type Value } from '../../kernels/index.ts';
import { BACKENDS, finiteDiff, hasNaN, rand, randLabels, randn, refBce, refCrossEntropy, relErr, useKernels, type F64 } from './reference.ts';

const k = useKernels();

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

describe.each(BACKENDS)('training pieces on %s', (backend) => {
  it.each([
    [1, 2],
    [7, 5],
    [33, 10],
    [300, 129],
  ])('crossEntropy [%i, %i]: loss matches float64, gradient matches finite differences', async (N, C) => {
    const z = randn(N * C, 3);
    const labels = randLabels(N, C);
    const [loss, grad] = await k[backend]().run('crossEntropy', [tensor(z, [N, C]), tensor(labels)], {}, { backend, poison: true });
    expect(hasNaN(grad!.data)).toBe(false);
    expect(relErr(loss!.data, [refCrossEntropy(z, labels, N, C)])).toBeLessThan(1e-4);
    if (N * C <= 2000) {
      const fd = finiteDiff((x) => refCrossEntropy(x, labels, N, C), z);
      expect(relErr(grad!.data, fd)).toBeLessThan(1e-4);
    } else {
      const fd = finiteDiffSample((x) => refCrossEntropy(x, labels, N, C), Float64Array.from(z), 200);
      expect(relErr(fd.idx.map((i) => grad!.data[i]!), fd.values)).toBeLessThan(1e-4);
    }
  });

  it.each([
    [1, 1],
    [10, 3],
    [257, 17],
    [2000, 64],
  ])('logistic regression N=%i D=%i: forward, loss and gradients vs finite differences', async (N, D) => {
    const X = randn(N * D);
    const w = randn(D, 0.5);
    const b = randn(1);
    const y = Float32Array.from({ length: N }, () => (rand() < 0.5 ? 0 : 1));
    const step = k[backend]().step();
    const p = step.op1('logregForward', [tensor(X, [N, D]), tensor(w, [D, 1]), tensor(b, [1])]);
    const [loss, dw, db] = step.op('logregBackward', [tensor(X, [N, D]), p, tensor(y, [N, 1])]) as [Value, Value, Value];
    step.read(p).read(loss).read(dw).read(db);
    const res = await step.run({ backend, poison: true });
    const lossOf = (params: F64): number => {
      const pr = new Float64Array(N);
      for (let i = 0; i < N; i++) {
        let s = params[D]!;
        for (let j = 0; j < D; j++) s += X[i * D + j]! * params[j]!;
        pr[i] = sigmoid(s);
      }
      return refBce(pr, y);
    };
    const theta = Float64Array.from([...w, b[0]!]);
    const pRef = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      let s = b[0]!;
      for (let j = 0; j < D; j++) s += X[i * D + j]! * w[j]!;
      pRef[i] = sigmoid(s);
    }
    expect(relErr(res.get(p).data, pRef)).toBeLessThan(1e-4);
    expect(relErr(res.get(loss).data, [lossOf(theta)])).toBeLessThan(1e-4);
    const fd = finiteDiff(lossOf, theta);
    expect(relErr([...res.get(dw).data, ...res.get(db).data], fd)).toBeLessThan(1e-4);
  });

  for (const activation of ['relu', 'tanh', 'sigmoid'] as const) {
    it.each([
      [4, 3, 5, 2],
      [33, 17, 40, 10],
      [130, 64, 129, 7],
    ])(`MLP (${activation}) N=%i D=%i H=%i C=%i: gradients of the cross-entropy vs finite differences`, async (N, D, H, C) => {
      // Dyadic inputs make the hidden pre-activations exact in f32 (no unit can flip sides of the
      // ReLU kink between the f32 kernel and the float64 reference), and the 1/1024 offset keeps
      // every pre-activation ≥ 1/1024 away from the kink, far beyond the finite-difference step.
      const X = quantize(randn(N * D), 8);
      const W1 = quantize(randn(D * H, 1 / Math.sqrt(D)), 64);
      const b1 = quantize(randn(H, 0.1), 512).map((v) => v + 1 / 1024);
      const W2 = randn(H * C, 1 / Math.sqrt(H));
      const b2 = randn(C, 0.1);
      const labels = randLabels(N, C);
      const step = k[backend]().step();
      const [h, logits] = step.op('mlpForward', [tensor(X, [N, D]), tensor(W1, [D, H]), tensor(b1, [H]), tensor(W2, [H, C]), tensor(b2, [C])], { activation }) as [Value, Value];
      const [loss, dlogits] = step.op('crossEntropy', [logits, tensor(labels)]) as [Value, Value];
      const grads = step.op('mlpBackward', [tensor(X, [N, D]), h, tensor(W2, [H, C]), dlogits], { activation });
      step.read(loss);
      for (const g of grads) step.read(g);
      const res = await step.run({ backend, poison: true });

      const act = activation === 'relu' ? (x: number) => Math.max(0, x) : activation === 'tanh' ? Math.tanh : sigmoid;
      const sizes = [D * H, H, H * C, C];
      const lossOf = (theta: F64): number => {
        const [w1, c1, w2, c2] = split(theta, sizes) as [F64, F64, F64, F64];
        const z = new Float64Array(N * C);
        const hid = new Float64Array(H);
        for (let i = 0; i < N; i++) {
          for (let j = 0; j < H; j++) {
            let s = c1[j]!;
            for (let d = 0; d < D; d++) s += X[i * D + d]! * w1[d * H + j]!;
            hid[j] = act(s);
          }
          for (let c = 0; c < C; c++) {
            let s = c2[c]!;
            for (let j = 0; j < H; j++) s += hid[j]! * w2[j * C + c]!;
            z[i * C + c] = s;
          }
        }
        return refCrossEntropy(z, labels, N, C);
      };
      const theta = Float64Array.from([...W1, ...b1, ...W2, ...b2]);
      expect(relErr(res.get(loss).data, [lossOf(theta)])).toBeLessThan(1e-4);
      // Finite differences on a sample of coordinates keep the float64 loop cheap.
      const fd = finiteDiffSample(lossOf, theta, 60);
      const got = Float64Array.from(grads.flatMap((g) => Array.from(res.get(g).data)));
      expect(relErr(fd.idx.map((i) => got[i]!), fd.values)).toBeLessThan(1e-4);
    });
  }

  it.each([[1], [1000], [70_001]])('sgd and adam updates on n=%i', async (n) => {
    const w = randn(n);
    const g = randn(n);
    const m = randn(n, 0.1);
    const v = randn(n, 0.1).map(Math.abs);
    const [ws] = await k[backend]().run('sgd', [tensor(w), tensor(g)], { lr: 0.1, weightDecay: 0.01 }, { backend, poison: true });
    expect(relErr(ws!.data, Float64Array.from(w, (x, i) => x - 0.1 * (g[i]! + 0.01 * x)))).toBeLessThan(1e-4);
    const a = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3, weightDecay: 0.001 };
    const [wa, ma, va] = await k[backend]().run('adam', [tensor(w), tensor(g), tensor(m), tensor(v)], a, { backend, poison: true });
    const mr = Float64Array.from(m, (x, i) => 0.9 * x + 0.1 * g[i]!);
    const vr = Float64Array.from(v, (x, i) => 0.999 * x + 0.001 * g[i]! ** 2);
    const c1 = 1 - 0.9 ** 3;
    const c2 = 1 - 0.999 ** 3;
    const wr = Float64Array.from(w, (x, i) => x - 0.01 * (mr[i]! / c1 / (Math.sqrt(vr[i]! / c2) + 1e-8) + 0.001 * x));
    expect(relErr(ma!.data, mr)).toBeLessThan(1e-4);
    expect(relErr(va!.data, vr)).toBeLessThan(1e-4);
    expect(relErr(wa!.data, wr)).toBeLessThan(1e-4);
  });
});

describe('a whole MLP training step', () => {
  it.each(BACKENDS)('runs as one step with resident parameters on %s (one GPU submit per step) and learns', async (backend) => {
    const kk = k[backend]();
    const [N, D, H, C] = [256, 16, 32, 4];
    // A separable problem: the label is the argmax of a fixed projection of X.
    const X = randn(N * D);
    const P = randn(D * C);
    const labels = Int32Array.from({ length: N }, (_, i) => {
      let best = 0;
      let bv = -Infinity;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += X[i * D + d]! * P[d * C + c]!;
        if (s > bv) [best, bv] = [c, s];
      }
      return best;
    });
    const params = [randn(D * H, 0.25), randn(H, 0.01), randn(H * C, 0.2), randn(C, 0.01)];
    const shapes = [[D, H], [H], [H, C], [C]];
    const w = params.map((p, i) => kk.resident(tensor(p, shapes[i]), `p${i}`));
    const m = params.map((p, i) => kk.resident(tensor(new Float32Array(p.length), shapes[i]), `m${i}`));
    const v = params.map((p, i) => kk.resident(tensor(new Float32Array(p.length), shapes[i]), `v${i}`));
    let submits = 0;
    const queue = kk.gpu?.device.queue;
    const submit = queue?.submit.bind(queue);
    if (queue && submit) queue.submit = (cbs: Iterable<GPUCommandBuffer>) => (submits++, submit(cbs));
    const losses: number[] = [];
    for (let t = 1; t <= 40; t++) {
      const s = kk.step();
      const x = s.input(tensor(X, [N, D]));
      const [h, logits] = s.op('mlpForward', [x, w[0]!, w[1]!, w[2]!, w[3]!], { activation: 'tanh' }) as [Value, Value];
      const [loss, dl] = s.op('crossEntropy', [logits, tensor(labels)]) as [Value, Value];
      const grads = s.op('mlpBackward', [x, h, w[2]!, dl], { activation: 'tanh' });
      grads.forEach((g, i) => {
        const [wn, mn, vn] = s.op('adam', [w[i]!, g, m[i]!, v[i]!], { lr: 0.02, step: t }) as [Value, Value, Value];
        s.assign(w[i]!, wn).assign(m[i]!, mn).assign(v[i]!, vn);
      });
      s.read(loss);
      const res = await s.run({ backend });
      expect(res.backend).toBe(backend);
      losses.push(res.get(loss).data[0]!);
    }
    if (queue && submit) {
      queue.submit = submit;
      expect(submits).toBe(40);
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.5);
    const w0 = await w[0]!.read();
    expect(hasNaN(w0.data)).toBe(false);
    for (const r of [...w, ...m, ...v]) r.dispose();
  });
});

/** Rounds away from zero to multiples of 1/q (never produces a zero). */
function quantize(a: Float32Array, q: number): Float32Array {
  return a.map((v) => (v > 0 ? Math.ceil(v * q) : Math.floor(v * q)) / q);
}

function split(theta: F64, sizes: number[]): F64[] {
  const out: F64[] = [];
  let o = 0;
  for (const s of sizes) {
    out.push(theta.subarray(o, o + s));
    o += s;
  }
  return out;
}

function finiteDiffSample(f: (x: F64) => number, x0: F64, count: number): { idx: number[]; values: F64 } {
  const idx = x0.length <= count ? [...x0.keys()] : Array.from({ length: count }, () => Math.floor(rand() * x0.length));
  const x = Float64Array.from(x0);
  const h = 1e-6;
  const values = Float64Array.from(idx, (i) => {
    const v = x[i]!;
    x[i] = v + h;
    const fp = f(x);
    x[i] = v - h;
    const fm = f(x);
    x[i] = v;
    return (fp - fm) / (2 * h);
  });
  return { idx, values };
}
