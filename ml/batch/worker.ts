/**
 * `batch-scorer`: one replica of the model a batch job scores with. It loads the model version
 * and the dataset (both content-addressed, verified on load) once, and scores the shards it is
 * asked for. Stateless apart from them, so a re-placed twin (same id) answers a retried ask with
 * the same scores.
 */
import { Type, type Static } from '@sinclair/typebox';
import type * as ort from 'onnxruntime-node';
import { Actor, validate } from '../../cluster/index.ts';
import { DatasetStore, type Dataset } from '../datasets/index.ts';
import { ModelRegistry } from '../registry/registry.ts';
import { openScoringSession, scoreRows } from './score.ts';

export const BATCH_SCORER_ACTOR = 'batch-scorer';

export const ScorerArgs = Type.Object({
  jobId: Type.String(),
  model: Type.String(),
  version: Type.Integer({ minimum: 1 }),
  datasetDigest: Type.String(),
});
export type ScorerArgs = Static<typeof ScorerArgs>;

export const ScorerMsg = Type.Union([
  Type.Object({ type: Type.Literal('score'), shard: Type.Integer({ minimum: 0 }), from: Type.Integer({ minimum: 0 }), to: Type.Integer({ minimum: 0 }) }),
  Type.Object({ type: Type.Literal('info') }),
]);
export type ScorerMsg = Static<typeof ScorerMsg>;

export interface ShardReply {
  shard: number;
  width: number;
  /** float32 scores, rows × width. */
  scores: Uint8Array;
  nodeId: string;
  ms: number;
}

export const scorerIds = (jobId: string, n: number) => Array.from({ length: n }, (_, i) => `job-${jobId}-r-${i + 1}`);

export class BatchScorer extends Actor<ScorerMsg> {
  readonly #args: ScorerArgs;
  #session!: ort.InferenceSession;
  #data!: Dataset;

  constructor(args: unknown) {
    super();
    this.#args = validate(ScorerArgs, args, 'batch-scorer args');
  }

  override async onStart(): Promise<void> {
    const a = this.#args;
    const registry = await ModelRegistry.open(this.ctx.nc, this.ctx.subjects.prefix);
    this.#session = await openScoringSession((await registry.loadModel(a.model, a.version)).model);
    const datasets = await DatasetStore.open(this.ctx.nc, this.ctx.subjects.prefix);
    this.#data = await datasets.load(await datasets.resolve(`sha256:${a.datasetDigest}`));
  }

  override async onStop(): Promise<void> {
    await this.#session?.release().catch(() => undefined);
  }

  async receive(m: ScorerMsg): Promise<ShardReply | { nodeId: string }> {
    if (m.type === 'info') return { nodeId: this.ctx.nodeId };
    const t0 = performance.now();
    const s = await scoreRows(this.#session, this.#data, m.from, Math.min(m.to, this.#data.rows));
    return { shard: m.shard, width: s.width, scores: new Uint8Array(s.values.buffer, s.values.byteOffset, s.values.byteLength), nodeId: this.ctx.nodeId, ms: performance.now() - t0 };
  }
}
