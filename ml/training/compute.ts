/**
 * A worker's forward/backward through `kernels/`: one step graph per minibatch (one GPU
 * submission, or one CPU-backend task; the kernels pick by measured crossover). Mean binary
 * cross-entropy; the gradient comes back flat, in the model's parameter layout.
 *
 * The kernels are the node's (`nodeKernels(ctx)`: one WebGPU device and one CPU worker per node
 * process, shared by every actor there, with the backend of the node's config `kernels.backend`).
 */
import { tensor, type Kernels } from '../../kernels/index.ts';
import { layout, type ModelShape } from './model.ts';

export { nodeKernels } from '../../kernels/index.ts';

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
    const out = L.dense[0]!;
    const st = k.step();
    const prob = st.op1('logregForward', [X, tensor(p.slice(out.w, out.w + D), [D, 1]), tensor(p.slice(out.b, out.b + 1), [1])]);
    const [loss, dw, db] = st.op('logregBackward', [X, prob, tensor(y, [rows, 1])]);
    st.read(loss!).read(dw!).read(db!);
    const r = await st.run();
    grad.set(r.get(dw!).data as Float32Array, out.w);
    grad[out.b] = (r.get(db!).data as Float32Array)[0]!;
    return { loss: (r.get(loss!).data as Float32Array)[0]!, grad, rows, backend: r.backend };
  }
  // MLP, any depth. Forward: one step of fused gemm + bias + ReLU per hidden layer, then the
  // output gemm; keep every activation for the backward step.
  const W = L.dense.map((d) => tensor(p.slice(d.w, d.w + d.in * d.out), [d.in, d.out]));
  const B = L.dense.map((d) => tensor(p.slice(d.b, d.b + d.out), [d.out]));
  const fwd = k.step();
  const acts: ReturnType<typeof fwd.input>[] = [];
  let a = fwd.input(X);
  L.dense.forEach((_, i) => {
    const last = i === L.dense.length - 1;
    a = fwd.op1('gemm', [a, W[i]!, B[i]!], last ? {} : { activation: 'relu' });
    acts.push(a);
  });
  for (const v of acts) fwd.read(v);
  const f = await fwd.run();
  const hs = acts.map((v) => f.get(v));
  const z = hs[hs.length - 1]!.data as Float32Array;
  const dl = new Float32Array(rows);
  let loss = 0;
  for (let i = 0; i < rows; i++) {
    const pi = 1 / (1 + Math.exp(-z[i]!));
    const c = Math.min(1 - 1e-7, Math.max(1e-7, pi));
    loss -= y[i] ? Math.log(c) : Math.log(1 - c);
    dl[i] = (pi - y[i]!) / rows;
  }
  // Backward, one step: dW = inputᵀ·d, db = Σ rows of d, d ← (d·Wᵀ) ⊙ relu'(h) for the layer below.
  const bwd = k.step();
  let d = bwd.input(tensor(dl, [rows, 1]));
  const grads: { w: ReturnType<typeof bwd.op1>; b: ReturnType<typeof bwd.op1> }[] = [];
  for (let i = L.dense.length - 1; i >= 0; i--) {
    const input = i === 0 ? X : hs[i - 1]!;
    grads[i] = { w: bwd.op1('matmul', [input, d], { transA: true }), b: bwd.op1('reduce', [d], { fn: 'sum', axis: 0 }) };
    if (i > 0) d = bwd.op1('binary', [bwd.op1('matmul', [d, W[i]!], { transB: true }), hs[i - 1]!], { fn: 'reluGrad' });
  }
  for (const g of grads) bwd.read(g.w).read(g.b);
  const b = await bwd.run();
  L.dense.forEach((dl2, i) => {
    grad.set(b.get(grads[i]!.w).data as Float32Array, dl2.w);
    grad.set(b.get(grads[i]!.b).data as Float32Array, dl2.b);
  });
  return { loss: loss / rows, grad, rows, backend: b.backend };
}

/**
 * Adam (or SGD) on the flat parameter vector, in place, through the kernels' `adam` / `sgd` ops
 * (one step: WebGPU when the process has a GPU and the size pays, else the CPU backend). The
 * optimizer state is float32 in the kernels; `m` and `v` hold it in float64 arrays for the
 * checkpoint, where every value is exactly a float32, so a resumed job continues bit for bit.
 * Returns the backend that ran it.
 */
export async function applyUpdate(k: Kernels, opt: 'sgd' | 'adam', lr: number, step: number, p: Float32Array, g: Float32Array, m: Float64Array, v: Float64Array): Promise<string> {
  const n = p.length;
  const st = k.step();
  if (opt === 'sgd') {
    const w = st.op1('sgd', [tensor(p, [n]), tensor(g, [n])], { lr });
    st.read(w);
    const r = await st.run();
    p.set(r.get(w).data as Float32Array);
    return r.backend;
  }
  const [w, mo, vo] = st.op('adam', [tensor(p, [n]), tensor(g, [n]), tensor(Float32Array.from(m), [n]), tensor(Float32Array.from(v), [n])], { lr, step });
  st.read(w!).read(mo!).read(vo!);
  const r = await st.run();
  p.set(r.get(w!).data as Float32Array);
  m.set(r.get(mo!).data as Float32Array);
  v.set(r.get(vo!).data as Float32Array);
  return r.backend;
}
