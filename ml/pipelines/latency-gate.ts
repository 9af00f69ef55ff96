/**
 * The latency gate of a pipeline run (issue #16 item 2): the candidate and production answer a
 * short replay of the model's logged traffic — the latest request rows of its prediction log,
 * one request per row, as callers send them — on the scheduler leader with ONNX Runtime, one
 * intra-op thread each. The two are interleaved request by request (and which goes first
 * alternates), so a slow second on a shared machine lands on both, not on one; the gate compares
 * their p99 (and, when asked, the candidate's p99 with a bound in ms).
 *
 * Without logged traffic (monitoring off, or nothing served yet) the holdout rows are replayed
 * instead, and the report says so. The p99 of n requests is the ⌈0.99·n⌉-th slowest; the report
 * carries n, so a reader knows how much one outlier moves it.
 */
import * as ort from 'onnxruntime-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ContentType, decode, isStreamNotFound, resources, subjects, type NatsConnection } from '../../cluster/index.ts';
import { batchRecords } from '../monitoring/columnar.ts';
import { mapColumns } from '../monitoring/columns.ts';
import type { ModelRegistry } from '../registry/registry.ts';
import { MlErrors } from '../errors.ts';
import type { GateCheck } from './gates.ts';

export interface LatencyPolicy {
  /** The candidate's p99 may be at most this multiple of production's. */
  maxRatio: number;
  /** And at most this many ms, when set. */
  maxP99Ms?: number;
}

export interface LatencyFigures {
  p50: number;
  p99: number;
}

export interface LatencyReplay {
  /** Requests replayed to each version. */
  requests: number;
  /** Where the rows came from: the prediction log, or the holdout when nothing was logged. */
  source: 'log' | 'holdout';
  candidate: LatencyFigures;
  production?: LatencyFigures;
}

/** The q-quantile of `xs` (nearest rank: the ⌈q·n⌉-th smallest). */
export function nearestRank(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil(q * a.length) - 1))]!;
}

const ms = (x: number) => `${x.toFixed(2)} ms`;

/** The gate's verdict on a replay. */
export function judgeLatency(policy: LatencyPolicy, r: LatencyReplay): GateCheck {
  const reasons: string[] = [];
  let pass = true;
  const head = `p99 ${ms(r.candidate.p99)} over ${r.requests} replayed requests (${r.source === 'log' ? 'logged traffic' : 'holdout rows: no logged traffic'})`;
  if (r.production) {
    const limit = policy.maxRatio * r.production.p99;
    const ok = r.candidate.p99 <= limit;
    pass &&= ok;
    reasons.push(`production ${ms(r.production.p99)}: ${(r.candidate.p99 / r.production.p99).toFixed(2)}× ${ok ? '≤' : '>'} ${policy.maxRatio}×`);
  }
  if (policy.maxP99Ms !== undefined) {
    const ok = r.candidate.p99 <= policy.maxP99Ms;
    pass &&= ok;
    reasons.push(`${ok ? '≤' : '>'} ${policy.maxP99Ms} ms`);
  }
  return { gate: 'latency', pass, message: `${head}${reasons.length ? `, ${reasons.join(', ')}` : ''}` };
}

/** A registered single-input FP32 ONNX model's session and its input's name. */
export async function openSession(registry: ModelRegistry, model: string, version: number): Promise<{ session: ort.InferenceSession; input: string }> {
  const { version: mv, bytes } = await registry.loadArtifact(model, version);
  const input = mv.signature.inputs[0];
  if (mv.format !== 'onnx' || mv.signature.inputs.length !== 1 || !input) throw MlErrors.BAD_INPUT(`${model} v${version}: the gates score single-input ONNX models only`);
  return { session: await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 }), input: input.name };
}

/**
 * The latest `max` logged rows of `model` whose features map onto `columns` (by name, or by
 * position for the model's one input), as a row-major float32 matrix.
 */
export async function loggedRows(nc: NatsConnection, prefix: string, model: string, columns: readonly string[], max: number): Promise<{ x: Float32Array; rows: number }> {
  const stream = resources(prefix).streams.predictions;
  const subject = subjects(prefix).predictions(model);
  const jsm = await jetstreamManager(nc);
  const none = { x: new Float32Array(0), rows: 0 };
  let found;
  try {
    found = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  } catch (err) {
    if (isStreamNotFound(err) || /no message found/i.test((err as Error).message)) return none;
    throw err;
  }
  if (!found) return none;
  const last = found.seq;
  // The last messages of this model: a batch holds up to 500 records, so a few suffice; other
  // models' messages in between are skipped by the filter.
  const ci = await jsm.consumers.add(stream, { filter_subject: subject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, last - 5000), ack_policy: AckPolicy.None, mem_storage: true, inactive_threshold: 30_000_000_000 });
  const rows: number[][] = [];
  try {
    if (ci.num_pending > 0) {
      const msgs = await (await jetstream(nc).consumers.get(stream, ci.name)).consume({ max_messages: 256 });
      for await (const m of msgs) {
        for (const r of batchRecords(decode(m.data, ContentType.MSGPACK)) ?? []) {
          const byPosition = mapColumns(columns, Object.keys(r.features));
          const named = byPosition ? Object.fromEntries(Object.entries(r.features).map(([c, v]) => [byPosition[c] ?? c, v])) : r.features;
          const row = columns.map((c) => named[c]);
          if (row.every((v) => typeof v === 'number' && Number.isFinite(v))) rows.push(row as number[]);
        }
        if (rows.length > 4 * max) rows.splice(0, rows.length - max);
        if (m.seq >= last || m.info.pending === 0) break;
      }
      await msgs.close();
    }
  } finally {
    await jsm.consumers.delete(stream, ci.name).catch(() => undefined);
  }
  const kept = rows.slice(-max);
  const x = new Float32Array(kept.length * columns.length);
  kept.forEach((r, i) => x.set(r, i * columns.length));
  return { x, rows: kept.length };
}

/**
 * Replays `rows` single-row requests to the candidate (and production), interleaved, and times
 * each `run` call. A few warm-up requests to each go first and are not counted.
 */
export async function replayLatency(candidate: { session: ort.InferenceSession; input: string }, production: { session: ort.InferenceSession; input: string } | undefined, x: Float32Array, rows: number, cols: number, source: LatencyReplay['source']): Promise<LatencyReplay> {
  const one = async (s: { session: ort.InferenceSession; input: string }, i: number): Promise<number> => {
    const feeds = { [s.input]: new ort.Tensor('float32', x.slice(i * cols, (i + 1) * cols), [1, cols]) };
    const t0 = performance.now();
    await s.session.run(feeds);
    return performance.now() - t0;
  };
  for (let i = 0; i < Math.min(5, rows); i++) {
    await one(candidate, i);
    if (production) await one(production, i);
  }
  const c: number[] = [];
  const p: number[] = [];
  for (let i = 0; i < rows; i++) {
    if (production && i % 2 === 1) p.push(await one(production, i));
    c.push(await one(candidate, i));
    if (production && i % 2 === 0) p.push(await one(production, i));
  }
  const figures = (xs: number[]): LatencyFigures => ({ p50: nearestRank(xs, 0.5), p99: nearestRank(xs, 0.99) });
  return { requests: rows, source, candidate: figures(c), ...(production ? { production: figures(p) } : {}) };
}
