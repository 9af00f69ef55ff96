/**
 * Matmul-class ops on the CPU through ONNX Runtime (MLAS): one cached session per attribute
 * set (dimensions are symbolic). Loaded lazily; when onnxruntime-node cannot be loaded the CPU
 * backend falls back to the JS twins.
 */
import { gemmModel, type GemmModelSpec } from './onnx-model.ts';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

let ortModule: Promise<Ort | undefined> | undefined;
const sessions = new Map<string, Promise<Session>>();

export function loadOrt(): Promise<Ort | undefined> {
  ortModule ??= import('onnxruntime-node').catch(() => undefined);
  return ortModule;
}

export interface OrtGemmCall extends GemmModelSpec {
  M: number;
  K: number;
  N: number;
}

async function session(ort: Ort, spec: GemmModelSpec, threads: number): Promise<Session> {
  const key = `${+spec.transA}${+spec.transB}:${spec.alpha}:${spec.beta}:${spec.bias}:${threads}`;
  let s = sessions.get(key);
  if (!s) {
    // ORT's defaults (one intra-op thread per physical core) measured fastest here; only an
    // explicit thread count overrides them.
    s = ort.InferenceSession.create(gemmModel(spec), threads > 0 ? { intraOpNumThreads: threads } : {});
    sessions.set(key, s);
  }
  return s;
}

/** Runs Y = gemm(A, B, bias) with ONNX Runtime; resolves to undefined if ORT is unavailable. */
export async function ortGemm(a: Float32Array, b: Float32Array, bias: Float32Array | undefined, call: OrtGemmCall, threads = 0): Promise<Float32Array | undefined> {
  const ort = await loadOrt();
  if (!ort) return undefined;
  const s = await session(ort, call, threads);
  const { M, K, N } = call;
  const feeds: Record<string, import('onnxruntime-node').Tensor> = {
    A: new ort.Tensor('float32', a, call.transA ? [K, M] : [M, K]),
    B: new ort.Tensor('float32', b, call.transB ? [N, K] : [K, N]),
  };
  if (bias && call.bias !== 'none') feeds.bias = new ort.Tensor('float32', bias, call.bias === 'vec' ? [N] : [1]);
  const out = await s.run(feeds);
  return out.Y!.data as Float32Array;
}

export async function releaseOrtSessions(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  await Promise.all(all.map(async (p) => (await p.catch(() => undefined))?.release()));
}
