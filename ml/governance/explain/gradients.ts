/**
 * Integrated gradients through the kernels' backward pass, for the MLPs Shoal trains
 * (ml/training/model.ts `exportOnnx`: X → (MatMul W_i + Add B_i + Relu)* → MatMul + Add → Sigmoid → Y[N,1]).
 * The graph is recognised from the ONNX bytes (this exact op chain, weights read from its
 * initializers); d(link(output))/dX of every path point of every explained row is then computed
 * in ONE kernels step: forward by `gemm` (bias and ReLU fused), backward by `matmul` (transB:
 * dX = dz·Wᵀ per layer) and `binary` (`reluGrad`, `sigmoidGrad`) — the ops `mlpBackward` uses.
 * It runs on the kernels' CPU backend (no WebGPU), on the calling thread, in any replica.
 */
import { createKernels, onnxGraphSummary, onnxInitializers, tensor, type Kernels, type Value } from '../../../kernels/index.ts';
import { MlErrors } from '../../errors.ts';
import type { Attribution, Background, IgOptions, Link } from './attributions.ts';

/** One dense layer: W [in, out] row-major, b [out]. */
export interface MlpLayer {
  in: number;
  out: number;
  w: Float32Array;
  b: Float32Array;
}

/** A recognised Shoal MLP: hidden layers (ReLU) then the output layer (one logit, then Sigmoid). */
export interface ShoalMlp {
  input: string;
  output: string;
  layers: MlpLayer[];
}

/**
 * Recognises Shoal's exported MLP (or logistic regression, no hidden layer) explaining `output`:
 * the MLP, or why not. Nothing else is accepted: any other op, a second input, a weight that is
 * not an inline FLOAT initializer, an output that is not the final Sigmoid of one logit.
 */
export function shoalMlp(model: Uint8Array, output: string): ShoalMlp | { notMlp: string } {
  let g;
  let inits;
  try {
    g = onnxGraphSummary(model);
    inits = onnxInitializers(model);
  } catch (err) {
    return { notMlp: `the graph could not be read (${(err as Error).message})` };
  }
  if (g.inputs.length !== 1) return { notMlp: `it has ${g.inputs.length} inputs` };
  const ops = g.ops;
  const layers: MlpLayer[] = [];
  let cur = g.inputs[0]!;
  let i = 0;
  for (;;) {
    const mm = ops[i];
    const add = ops[i + 1];
    if (mm?.op !== 'MatMul' || mm.inputs.length !== 2 || mm.inputs[0] !== cur) return { notMlp: `node ${i} is ${mm?.op ?? 'missing'}, not MatMul of ${cur}` };
    const w = inits.get(mm.inputs[1]!);
    if (!w || w.dims.length !== 2) return { notMlp: `MatMul ${i}'s weight is not a 2-D float initializer` };
    const [inW, outW] = w.dims as [number, number];
    const prev = layers[layers.length - 1];
    if (prev && prev.out !== inW) return { notMlp: `layer ${layers.length} takes ${inW} inputs, the previous one gives ${prev.out}` };
    if (add?.op !== 'Add' || add.inputs.length !== 2 || !add.inputs.includes(mm.outputs[0]!)) return { notMlp: `node ${i + 1} is ${add?.op ?? 'missing'}, not Add of the MatMul` };
    const b = inits.get(add.inputs[0] === mm.outputs[0] ? add.inputs[1]! : add.inputs[0]!);
    if (!b || b.data.length !== outW || b.dims[b.dims.length - 1] !== outW) return { notMlp: `Add ${i + 1}'s bias is not a float initializer of ${outW}` };
    layers.push({ in: inW, out: outW, w: w.data, b: b.data });
    const next = ops[i + 2];
    if (next?.op === 'Relu' && next.inputs[0] === add.outputs[0]) {
      cur = next.outputs[0]!;
      i += 3;
      continue;
    }
    if (next?.op === 'Sigmoid' && next.inputs[0] === add.outputs[0] && i + 3 === ops.length) {
      if (outW !== 1) return { notMlp: `its last layer has ${outW} outputs, not one logit` };
      if (next.outputs[0] !== output) return { notMlp: `the explained output "${output}" is not the final Sigmoid's` };
      return { input: g.inputs[0]!, output, layers };
    }
    return { notMlp: `node ${i + 2} is ${next?.op ?? 'missing'}, not Relu or the final Sigmoid` };
  }
}

let shared: Promise<Kernels> | undefined;

/** The process's kernels for explanations: CPU backend, on the calling thread, no autotune. */
export function explainKernels(): Promise<Kernels> {
  shared ??= createKernels({ backend: 'cpu', cpuWorkers: 0, autotune: false }).catch((err: unknown) => {
    shared = undefined;
    throw err;
  });
  return shared;
}

/**
 * The logit z and d(link(sigmoid(z)))/dX for `n` rows of `x` (row-major, D = the first layer's
 * inputs), in one kernels step: `identity` → the probability's gradient σ'(z)·dz/dX, `logit` → dz/dX.
 */
export async function mlpInputGradients(k: Kernels, mlp: ShoalMlp, x: Float32Array, n: number, link: Link): Promise<{ z: Float32Array; grad: Float32Array }> {
  const L = mlp.layers;
  const D = L[0]!.in;
  const s = k.step();
  let h: Value = s.input(tensor(x, [n, D]));
  const hidden: Value[] = [];
  L.forEach((l, i) => {
    const last = i === L.length - 1;
    h = s.op1('gemm', [h, tensor(l.w, [l.in, l.out]), tensor(l.b, [l.out])], last ? {} : { activation: 'relu' });
    if (!last) hidden.push(h);
  });
  const z = h;
  const ones = tensor(new Float32Array(n).fill(1), [n, 1]);
  let g: Value = link === 'logit' ? s.input(ones) : s.op1('binary', [ones, s.op1('unary', [z], { fn: 'sigmoid' })], { fn: 'sigmoidGrad' });
  for (let i = L.length - 1; i >= 0; i--) {
    const l = L[i]!;
    g = s.op1('matmul', [g, tensor(l.w, [l.in, l.out])], { transB: true });
    if (i > 0) g = s.op1('binary', [g, hidden[i - 1]!], { fn: 'reluGrad' });
  }
  s.read(z).read(g);
  const r = await s.run({ backend: 'cpu' });
  return { z: r.get(z).data as Float32Array, grad: r.get(g).data as Float32Array };
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** Rows one backward IG pass evaluates: the baseline, the rows, and `steps` path points per row. */
export function igBackwardRows(rows: number, steps: number): number {
  return 1 + rows + rows * steps;
}

/** Default path steps through the backward pass: the midpoint rule's error at ReLU kinks falls as 1/steps (< 1e-3 of |Δ| at 1024 on Shoal's MLPs), and a step is one row. */
export const IG_BACKWARD_STEPS = 1024;

/**
 * Integrated gradients (midpoint rule over `steps` points of the straight path from the baseline,
 * by default the background mean) with the gradients of {@link mlpInputGradients}: the baseline,
 * the rows and all path points of all rows go through ONE kernels step. φ_i = (x_i − x'_i) · mean
 * gradient_i; `gap` = prediction − base − Σφ (the quadrature error); `output` is σ(z) of the row
 * as the kernels computed it (float32).
 */
export async function integratedGradientsBackward(k: Kernels, mlp: ShoalMlp, bg: Background, x: Float32Array, rows: number, o: IgOptions = {}): Promise<{ attributions: Attribution[]; runRows: number }> {
  const M = bg.d;
  if (mlp.layers[0]!.in !== M) throw MlErrors.BAD_INPUT(`the MLP takes ${mlp.layers[0]!.in} features, the rows have ${M}`);
  const m = o.steps ?? IG_BACKWARD_STEPS;
  const link = o.link ?? 'identity';
  let x0 = o.baseline;
  if (!x0) {
    x0 = new Float64Array(M);
    for (let r = 0; r < bg.rows; r++) for (let j = 0; j < M; j++) x0[j]! += bg.x[r * M + j]!;
    for (let j = 0; j < M; j++) x0[j]! /= bg.rows;
  }
  const n = igBackwardRows(rows, m);
  const X = new Float32Array(n * M);
  for (let j = 0; j < M; j++) X[j] = x0[j]!;
  X.set(x.subarray(0, rows * M), M);
  let at = (1 + rows) * M;
  for (let r = 0; r < rows; r++) {
    for (let kk = 0; kk < m; kk++) {
      const a = (kk + 0.5) / m;
      for (let j = 0; j < M; j++) X[at + j] = x0[j]! + a * (x[r * M + j]! - x0[j]!);
      at += M;
    }
  }
  const { z, grad } = await mlpInputGradients(k, mlp, X, n, link);
  const inLink = (v: number) => (link === 'logit' ? v : sigmoid(v));
  const base = inLink(z[0]!);
  const out: Attribution[] = [];
  for (let r = 0; r < rows; r++) {
    const values = new Array<number>(M).fill(0);
    const p0 = 1 + rows + r * m;
    for (let kk = 0; kk < m; kk++) for (let j = 0; j < M; j++) values[j]! += grad[(p0 + kk) * M + j]!;
    for (let j = 0; j < M; j++) values[j] = ((x[r * M + j]! - x0[j]!) * values[j]!) / m;
    const zr = z[1 + r]!;
    const prediction = inLink(zr);
    out.push({ values, base, prediction, gap: prediction - base - values.reduce((p, q) => p + q, 0), output: Math.fround(sigmoid(zr)) });
  }
  return { attributions: out, runRows: n };
}
