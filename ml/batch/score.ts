/**
 * Scoring rows of a dataset with an onnxruntime session — the one loop used by a batch job's
 * replicas and by the single-process reference (tests, `bench:cost`), so the two are compared
 * like for like. Rows are run in runs of {@link SCORE_CHUNK}; the first output of each row is kept
 * (all its values: `width` per row).
 */
import * as ort from 'onnxruntime-node';
import type { Dataset } from '../datasets/index.ts';

/** Rows per onnxruntime `run`. @default 1024 */
export const SCORE_CHUNK = 1024;

export interface Scores {
  width: number;
  /** rows × width, row-major. */
  values: Float32Array;
}

export async function openScoringSession(model: Uint8Array | string): Promise<ort.InferenceSession> {
  return typeof model === 'string' ? ort.InferenceSession.create(model, { intraOpNumThreads: 1 }) : ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
}

/** The first output over rows `[from, to)` of `data`. */
export async function scoreRows(s: ort.InferenceSession, data: Pick<Dataset, 'columns' | 'features'>, from: number, to: number): Promise<Scores> {
  const d = data.columns.length;
  const input = s.inputNames[0]!;
  const parts: Float32Array[] = [];
  for (let at = from; at < to; at += SCORE_CHUNK) {
    const k = Math.min(SCORE_CHUNK, to - at);
    const x = data.features.slice(at * d, (at + k) * d);
    const out = await s.run({ [input]: new ort.Tensor('float32', x, [k, d]) });
    parts.push(Float32Array.from(out[s.outputNames[0]!]!.data as ArrayLike<number>));
  }
  const n = parts.reduce((a, p) => a + p.length, 0);
  const values = new Float32Array(n);
  let at = 0;
  for (const p of parts) {
    values.set(p, at);
    at += p.length;
  }
  return { width: to > from ? n / (to - from) : 1, values };
}
