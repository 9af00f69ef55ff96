/**
 * What the runner tests share: a real nats-server with the cluster's resources and a pipeline
 * store on it (set up and torn down around the calling `describe`), every runner the test makes
 * stopped at the end, and `apply` with cluster lookups that accept any model, dataset and view.
 */
import { afterAll, beforeAll } from 'vitest';
import { Role, createLogger, ensureResources } from '../../cluster/index.ts';
import { PipelineStore, validatePipelineSpec, type PipelineRunner } from '../../ml/pipelines/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

export const log = createLogger({ level: 'silent' });
export const lookups = { modelMetrics: async () => ['auc'], datasetExists: async () => true, viewExists: async () => true };

export interface PipelineFixture {
  /** The store (after beforeAll). */
  readonly store: PipelineStore;
  /** Registers a runner to be stopped after the suite; returns it. */
  track(r: PipelineRunner): PipelineRunner;
  /** Validates and stores a spec for model "fraud" on dataset "fraud", with `spec` on top. */
  apply(spec: object): ReturnType<PipelineStore['putSpec']>;
}

/** Call inside a `describe`: the nats-server and store live for that suite. */
export function usePipelineStore(): PipelineFixture {
  let nats: TestNats | undefined;
  let store: PipelineStore | undefined;
  const runners: PipelineRunner[] = [];
  beforeAll(async () => {
    nats = await startTestNats();
    const nc = await nats.connect(Role.SCHEDULER);
    await ensureResources(nc);
    store = await PipelineStore.open(nc);
  });
  afterAll(async () => {
    for (const r of runners) r.stop();
    await nats?.stop();
  });
  return {
    get store() {
      if (!store) throw new Error('the pipeline store is opened in beforeAll');
      return store;
    },
    track(r) {
      runners.push(r);
      return r;
    },
    apply: async (spec) => (store as PipelineStore).putSpec(await validatePipelineSpec({ model: 'fraud', data: { dataset: 'fraud' }, ...spec }, lookups)),
  };
}
