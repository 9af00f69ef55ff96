/**
 * Latency of two ONNX models side by side, in one process: both sessions open at once, runs
 * interleaved (float, quantized, quantized, float, …) so machine noise hits both alike, in
 * several rounds whose ratios give the range. Single intra-op thread, as a replica runs by default.
 */
import * as ort from 'onnxruntime-node';

export interface LatencyOptions {
  /** @default [1, 32] */
  batches?: number[];
  /** @default 3 */
  rounds?: number;
  /** Timed runs of each model per round and batch size. @default 200 */
  iterations?: number;
  /** Untimed runs of each first. @default 20 */
  warmup?: number;
  /** @default 1 */
  intraOpThreads?: number;
}

/** One batch size: medians in ms over every timed run, and the quantized/float ratio overall and per round. */
export interface LatencyComparison {
  batch: number;
  /** Timed runs of each model in all rounds. */
  runs: number;
  rounds: number;
  floatMs: number;
  quantizedMs: number;
  /** quantized / float of the medians over all runs (< 1: the quantized model is faster). */
  ratio: number;
  /** The lowest and highest per-round ratio. */
  ratioRange: [number, number];
  roundRatios: number[];
}

/** Inputs for a batch of `rows`: one tensor per model input. */
export type InputsFor = (rows: number) => Record<string, ort.Tensor>;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function compareLatency(floatModel: Uint8Array, quantizedModel: Uint8Array, inputs: InputsFor, o: LatencyOptions = {}): Promise<LatencyComparison[]> {
  const opts = { intraOpNumThreads: o.intraOpThreads ?? 1, interOpNumThreads: 1 };
  const [f, q] = await Promise.all([ort.InferenceSession.create(floatModel, opts), ort.InferenceSession.create(quantizedModel, opts)]);
  try {
    const rounds = o.rounds ?? 3;
    const iterations = o.iterations ?? 200;
    const out: LatencyComparison[] = [];
    for (const batch of o.batches ?? [1, 32]) {
      const feeds = inputs(batch);
      for (let i = 0; i < (o.warmup ?? 20); i++) {
        await f.run(feeds);
        await q.run(feeds);
      }
      const allF: number[] = [];
      const allQ: number[] = [];
      const roundRatios: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const tf: number[] = [];
        const tq: number[] = [];
        for (let i = 0; i < iterations; i++) {
          // Alternate which goes first, so neither always runs on a warmer cache.
          for (const which of i % 2 ? ['f', 'q'] : ['q', 'f']) {
            const s = which === 'f' ? f : q;
            const t0 = process.hrtime.bigint();
            await s.run(feeds);
            (which === 'f' ? tf : tq).push(Number(process.hrtime.bigint() - t0) / 1e6);
          }
        }
        roundRatios.push(median(tq) / median(tf));
        allF.push(...tf);
        allQ.push(...tq);
      }
      const floatMs = median(allF);
      const quantizedMs = median(allQ);
      out.push({ batch, runs: iterations * rounds, rounds, floatMs, quantizedMs, ratio: quantizedMs / floatMs, ratioRange: [Math.min(...roundRatios), Math.max(...roundRatios)], roundRatios });
    }
    return out;
  } finally {
    await Promise.all([f.release(), q.release()]);
  }
}
