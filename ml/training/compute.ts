/**
 * A worker's forward/backward through `kernels/`: one step graph per minibatch (one GPU
 * submission, or one CPU-backend task; the kernels pick by measured crossover). Mean binary
 * cross-entropy; the gradient comes back flat, in the model's parameter layout.
 */
import { createKernels, tensor, type Kernels } from '../../kernels/index.ts';
import { layout, type ModelShape } from './model.ts';

let shared: Promise<Kernels> | undefined;
/** One kernels instance per process (one WebGPU device, one CPU worker), shared by its workers. */
export function processKernels(): Promise<Kernels> {
  return (shared ??= createKernels({ backend: (process.env.SHOAL_TRAINING_BACKEND as 'auto' | 'cpu' | 'gpu' | undefined) ?? 'auto' }));
}

export interface GradResult {
  loss: number;
  grad: Float32Array;
  rows: number;
  backend: string;
}

export async function gradient(k: Kernels, s: ModelShape, p: Float32Array, x: Float32Array, y: Float32Array, rows: number): Promise<GradResult> {
  const D = s.features;
  const L = layout(s);
  const X = tensor(x, [rows, D]);
  const grad = new Float32Array(L.size);
  if (s.type === 'logreg') {
    const st = k.step();
    const prob = st.op1('logregForward', [X, tensor(p.slice(0, D), [D, 1]), tensor(p.slice(L.b1, L.b1 + 1), [1])]);
    const [loss, dw, db] = st.op('logregBackward', [X, prob, tensor(y, [rows, 1])]);
    st.read(loss!).read(dw!).read(db!);
    const r = await st.run();
    grad.set(r.get(dw!).data as Float32Array, 0);
    grad[L.b1] = (r.get(db!).data as Float32Array)[0]!;
    return { loss: (r.get(loss!).data as Float32Array)[0]!, grad, rows, backend: r.backend };
  }
  const H = s.hidden;
  const W1 = tensor(p.slice(L.w1, L.w1 + D * H), [D, H]);
  const W2 = tensor(p.slice(L.w2, L.w2 + H), [H, 1]);
  const fwd = k.step();
  const [h, logits] = fwd.op('mlpForward', [X, W1, tensor(p.slice(L.b1, L.b1 + H), [H]), W2, tensor(p.slice(L.b2, L.b2 + 1), [1])], { activation: 'relu' });
  fwd.read(h!).read(logits!);
  const f = await fwd.run();
  const z = f.get(logits!).data as Float32Array;
  const dl = new Float32Array(rows);
  let loss = 0;
  for (let i = 0; i < rows; i++) {
    const pi = 1 / (1 + Math.exp(-z[i]!));
    const c = Math.min(1 - 1e-7, Math.max(1e-7, pi));
    loss -= y[i] ? Math.log(c) : Math.log(1 - c);
    dl[i] = (pi - y[i]!) / rows;
  }
  const bwd = k.step();
  const [dW1, db1, dW2, db2] = bwd.op('mlpBackward', [X, f.get(h!), W2, tensor(dl, [rows, 1])], { activation: 'relu' });
  for (const v of [dW1!, db1!, dW2!, db2!]) bwd.read(v);
  const b = await bwd.run();
  grad.set(b.get(dW1!).data as Float32Array, L.w1);
  grad.set(b.get(db1!).data as Float32Array, L.b1);
  grad.set(b.get(dW2!).data as Float32Array, L.w2);
  grad[L.b2] = (b.get(db2!).data as Float32Array)[0]!;
  return { loss: loss / rows, grad, rows, backend: b.backend };
}

/** Adam (or SGD) on the flat vector, in place; the optimizer state lives in `m` and `v`. */
export function applyUpdate(opt: 'sgd' | 'adam', lr: number, step: number, p: Float32Array, g: Float32Array, m: Float64Array, v: Float64Array): void {
  if (opt === 'sgd') {
    for (let i = 0; i < p.length; i++) p[i] = p[i]! - lr * g[i]!;
    return;
  }
  const b1 = 0.9;
  const b2 = 0.999;
  const c1 = 1 - b1 ** step;
  const c2 = 1 - b2 ** step;
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    p[i] = p[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + 1e-8);
  }
}
