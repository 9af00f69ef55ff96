/**
 * `shoal models quantize NAME@V --int8|--fp16`: quantizes a registered version, measures it
 * against its source in the same process (size, latency at batch 1 and 32 interleaved, the
 * holdout's metrics scored on the same rows), and registers the result as the model's next
 * version with lineage to its source and the report stored with it — marked rejected when it is
 * slower or loses more than a point of its main metric (verdict.ts). Refused before anything is
 * registered when the quantizer cannot handle the model.
 *
 * Runs where it is called (the CLI): the client role may read the registry, the artifacts and
 * the datasets, and registers through the registry service like any upload.
 */
import * as ort from 'onnxruntime-node';
import { seededRandom, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { RegistryClient } from '../registry/client.ts';
import { ModelRegistry } from '../registry/registry.ts';
import type { Lineage, ModelVersion } from '../registry/schemas.ts';
import { evaluate, type BinaryMetrics } from '../training/metrics.ts';
import { loadHoldout, type Holdout } from './holdout.ts';
import { compareLatency, type LatencyComparison, type LatencyOptions } from './latency.ts';
import { quantizeModel, type Int8Format, type QuantizeMode } from './quantizer.ts';
import { DEFAULT_VERDICT_POLICY, judge, type MainMetric, type Verdict, type VerdictPolicy } from './verdict.ts';

export interface QuantizeVersionOptions {
  mode: QuantizeMode;
  format?: Int8Format;
  weightBits?: 7 | 8;
  latency?: LatencyOptions;
  policy?: Partial<VerdictPolicy>;
}

/** Rows per run when scoring the holdout: a replica's default max batch. */
export const EVAL_BATCH = 32;

const METRICS = ['auc', 'accuracy', 'f1', 'precision', 'recall', 'brier', 'logLoss'] as const;

/** What is stored with the quantized version (`quantization`) and printed. */
export interface QuantizationReport {
  [k: string]: unknown;
  mode: QuantizeMode;
  format?: Int8Format;
  weightBits?: number;
  source: { name: string; version: number; sha256: string; sizeBytes: number };
  sizeBytes: number;
  /** quantized / source bytes. */
  sizeRatio: number;
  quantizedWeights: number;
  latency: LatencyComparison[];
  /** Outputs of both models on the same rows (the holdout, else seeded synthetic rows). */
  outputs: { rows: number; maxAbsDiff: number; meanAbsDiff: number };
  holdout: { dataset: string; rows: number; threshold: number; mainMetric: string; metrics: { metric: string; source: number; quantized: number; delta: number }[] } | { skipped: string };
  verdict: Verdict;
  policy: VerdictPolicy;
}

export async function quantizeVersion(nc: NatsConnection, subjects: Subjects, name: string, ref: number | string, o: QuantizeVersionOptions): Promise<{ version: ModelVersion; report: QuantizationReport }> {
  const registry = await ModelRegistry.open(nc, subjects.prefix);
  const src = await registry.resolve(name, ref);
  const label = `${name} v${src.version}`;
  if (src.format !== 'onnx') throw MlErrors.QUANTIZE_UNSUPPORTED(label, `it is a ${src.format} version; the quantizer takes single-file ONNX models`);
  if (src.processor) throw MlErrors.QUANTIZE_UNSUPPORTED(label, 'it has a pre/post-processing module, which the quantized version would not carry');
  const nonFloat = src.signature.inputs.filter((t) => t.datatype !== 'FP32');
  if (nonFloat.length) throw MlErrors.QUANTIZE_UNSUPPORTED(label, `inputs other than FP32 (${nonFloat.map((t) => `${t.name}:${t.datatype}`).join(', ')}) cannot be measured`);
  const { bytes: source } = await registry.loadArtifact(name, src.version);
  const q = quantizeModel(label, source, { mode: o.mode, ...(o.format ? { format: o.format } : {}), ...(o.weightBits ? { weightBits: o.weightBits } : {}) });

  const holdout = await loadHoldout(nc, subjects.prefix, registry, src);
  const usable = 'x' in holdout && src.signature.inputs.length === 1 && src.signature.inputs[0]!.shape.length === 2 && src.signature.inputs[0]!.shape[1] === holdout.columns ? holdout : undefined;
  const inputs = usable ? holdoutInputs(src, usable) : syntheticInputs(src);
  const latency = await compareLatency(source, q.bytes, inputs, o.latency);

  const rows = usable?.rows ?? 256;
  const [pf, pq] = await Promise.all([runAll(source, inputs, rows), runAll(q.bytes, inputs, rows)]);
  let maxAbsDiff = 0;
  let sum = 0;
  for (let i = 0; i < pf.length; i++) {
    const d = Math.abs(pf[i]! - pq[i]!);
    maxAbsDiff = Math.max(maxAbsDiff, d);
    sum += d;
  }
  const policy = { ...DEFAULT_VERDICT_POLICY, ...o.policy };
  let holdoutReport: QuantizationReport['holdout'];
  let main: MainMetric | undefined;
  let qMetrics: BinaryMetrics | undefined;
  if (!usable) holdoutReport = { skipped: 'skipped' in holdout ? holdout.skipped : `the model's input is not one FP32 [N, ${holdout.columns}] tensor` };
  else if (pf.length !== rows && pf.length !== 2 * rows) holdoutReport = { skipped: `the first output has ${pf.length / rows} values per row; metrics need a probability (1) or two class scores (2)` };
  else {
    const prob = (p: Float32Array) => (p.length === rows ? p : Float32Array.from({ length: rows }, (_, i) => p[2 * i + 1]!));
    const mf = evaluate(prob(pf), usable.y, usable.threshold);
    qMetrics = evaluate(prob(pq), usable.y, usable.threshold);
    const mainMetric = src.metrics.auc !== undefined || !('accuracy' in src.metrics) ? 'auc' : 'accuracy';
    main = { metric: mainMetric, source: mf[mainMetric], quantized: qMetrics[mainMetric] };
    holdoutReport = { dataset: usable.dataset, rows, threshold: usable.threshold, mainMetric, metrics: METRICS.map((m) => ({ metric: m, source: mf[m], quantized: qMetrics![m], delta: qMetrics![m] - mf[m] })) };
  }
  const verdict = judge(latency, main, policy);
  const report: QuantizationReport = {
    mode: q.mode,
    ...(q.format ? { format: q.format, weightBits: q.weightBits } : {}),
    source: { name, version: src.version, sha256: src.sha256, sizeBytes: source.length },
    sizeBytes: q.bytes.length,
    sizeRatio: q.bytes.length / source.length,
    quantizedWeights: q.weights.length,
    latency,
    outputs: { rows, maxAbsDiff, meanAbsDiff: sum / Math.max(1, pf.length) },
    holdout: holdoutReport,
    verdict,
    policy,
  };

  const { trainingJobId, ...lineage } = src.lineage;
  const sample = await registry.loadSample(src).catch(() => undefined);
  const reference = await registry.loadReference(src).catch(() => undefined);
  const kind = q.format ? `int8 (${q.format})` : q.mode;
  const mv = await new RegistryClient(nc, subjects).register(name, q.bytes, {
    // Its own holdout metrics where measured; the training job stays the source's, under another key
    // (a training job looks its version up by trainingJobId).
    metrics: qMetrics ? Object.fromEntries(METRICS.map((m) => [m, qMetrics![m]])) : {},
    lineage: { ...lineage, parentVersion: src.version, ...(trainingJobId ? { sourceTrainingJobId: trainingJobId } : {}), quantizedFrom: { name, version: src.version, sha256: src.sha256, mode: q.mode, ...(q.format ? { format: q.format } : {}) } } as Lineage,
    description: `${kind} quantization of v${src.version}`,
    signature: src.signature,
    quantization: report,
    ...(verdict.rejected ? { rejected: { reason: verdict.reasons.join('; ').slice(0, 1000) } } : {}),
    ...(sample ? { sample } : {}),
    ...(reference ? { reference: new TextEncoder().encode(JSON.stringify(reference)) } : {}),
    ...(src.referenceDataset ? { referenceDataset: src.referenceDataset } : {}),
  });
  return { version: mv, report };
}

type Inputs = (rows: number) => Record<string, ort.Tensor>;

/** Batches of holdout rows (from the first row on, wrapping round). */
function holdoutInputs(mv: ModelVersion, h: Holdout): Inputs {
  const input = mv.signature.inputs[0]!;
  return (rows) => {
    const x = new Float32Array(rows * h.columns);
    for (let r = 0; r < rows; r++) x.set(h.x.subarray((r % h.rows) * h.columns, ((r % h.rows) + 1) * h.columns), r * h.columns);
    return { [input.name]: new ort.Tensor('float32', x, [rows, h.columns]) };
  };
}

/** Seeded values in [-2, 2) for every input: the batch on axis 0, other free axes 1. */
function syntheticInputs(mv: ModelVersion): Inputs {
  return (rows) => {
    const r = seededRandom(rows * 7 + 1);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of mv.signature.inputs) {
      const dims = t.shape.map((d, i) => (d >= 0 ? d : i === 0 ? rows : 1));
      const n = dims.reduce((a, b) => a * b, 1);
      feeds[t.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => r() * 4 - 2), dims);
    }
    return feeds;
  };
}

/**
 * The first output of `model` over `rows` rows of `inputs`, run in batches of {@link EVAL_BATCH}
 * rows: dynamic int8 quantizes each batch's activations with that batch's own scale, so a row's
 * score depends on the batch it rides in — scored the way a replica batches by default.
 */
async function runAll(model: Uint8Array, inputs: Inputs, rows: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    const all = inputs(rows);
    const parts: Float32Array[] = [];
    for (let at = 0; at < rows; at += EVAL_BATCH) {
      const k = Math.min(EVAL_BATCH, rows - at);
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(all)) {
        const per = t.size / rows;
        feeds[name] = new ort.Tensor('float32', (t.data as Float32Array).slice(at * per, (at + k) * per), [k, ...t.dims.slice(1)]);
      }
      const out = await s.run(feeds);
      parts.push(Float32Array.from(out[s.outputNames[0]!]!.data as Float32Array));
    }
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  } finally {
    await s.release();
  }
}

/** The report as `shoal models quantize` prints it. */
export function describeReport(mv: Pick<ModelVersion, 'name' | 'version'>, r: QuantizationReport): string {
  const f = (x: number, d = 3) => x.toFixed(d);
  const lines = [
    `${mv.name} v${mv.version}: ${r.format ? `int8 ${r.format} (${r.weightBits}-bit per-channel weights)` : r.mode} of v${r.source.version}, ${r.quantizedWeights} weight tensor${r.quantizedWeights === 1 ? '' : 's'} quantized`,
    `  size      ${r.sizeBytes} bytes vs ${r.source.sizeBytes} (${f(r.sizeRatio)}×)`,
    ...r.latency.map((l) => `  batch ${String(l.batch).padEnd(3)} ${f(l.quantizedMs, 4)} ms vs ${f(l.floatMs, 4)} ms median: ${f(l.ratio)}× (rounds ${f(l.ratioRange[0])}–${f(l.ratioRange[1])}, ${l.runs} interleaved runs each)`),
    `  outputs   max |Δ| ${r.outputs.maxAbsDiff.toExponential(2)}, mean |Δ| ${r.outputs.meanAbsDiff.toExponential(2)} over ${r.outputs.rows} rows`,
    ...('skipped' in r.holdout
      ? [`  holdout   not measured: ${r.holdout.skipped}`]
      : [`  holdout   ${r.holdout.rows} rows of ${r.holdout.dataset.slice(0, r.holdout.dataset.indexOf('@') + 13)}, threshold ${f(r.holdout.threshold)}; main metric ${r.holdout.mainMetric}`, ...r.holdout.metrics.map((m) => `    ${m.metric.padEnd(9)} ${f(m.quantized, 4)} vs ${f(m.source, 4)}  (${m.delta >= 0 ? '+' : ''}${f(m.delta, 4)})`)]),
    r.verdict.rejected ? `  REJECTED: ${r.verdict.reasons.join('; ')}` : '  accepted: not slower, main metric within the bound',
  ];
  return lines.join('\n');
}
