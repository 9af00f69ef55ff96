/**
 * The pipelines service (every scheduler, one queue group): `apply` validates a spec against the
 * registry, the dataset store and the feature views and stores it; `run` fires a manual trigger
 * (a run, or coalesced into the one in flight). The leader's runner (runner.ts) picks new runs up.
 */
import { Type } from '@sinclair/typebox';
import { serve, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { DatasetStore } from '../datasets/store.ts';
import { FeatureViews } from '../features/views.ts';
import { ModelRegistry } from '../registry/registry.ts';
import { validatePipelineSpec, type PipelineSpec, type SpecLookups } from './spec.ts';
import { PipelineStore } from './store.ts';

export interface ApplyResult {
  name: string;
  revision: number;
  created: boolean;
  spec: PipelineSpec;
}

/** What a spec is checked against: the cluster's registry, datasets and feature views. */
export async function clusterLookups(nc: NatsConnection, prefix: string): Promise<SpecLookups> {
  const registry = await ModelRegistry.open(nc, prefix);
  const datasets = await DatasetStore.open(nc, prefix);
  return {
    async modelMetrics(model) {
      const rec = await registry.get(model).catch(() => undefined);
      if (!rec) return undefined;
      const mv = await registry.resolve(model, rec.aliases['production'] !== undefined ? 'production' : 'latest').catch(() => undefined);
      return mv ? Object.keys(mv.metrics) : [];
    },
    datasetExists: (ref) => datasets.resolve(ref).then(
      () => true,
      () => false,
    ),
    async viewExists(name) {
      const views = await FeatureViews.open(nc, prefix);
      return views.get(name).then(
        () => true,
        () => false,
      );
    },
  };
}

export async function startPipelineService(o: { nc: NatsConnection; subjects: Subjects; log: Logger }): Promise<{ stop(): void }> {
  const { nc, subjects: s, log } = o;
  const store = await PipelineStore.open(nc, s.prefix);
  const queue = 'pipelines';
  const subs = [
    serve(
      nc,
      s.pipelines('apply'),
      Type.Object({ spec: Type.Unknown() }),
      async (req): Promise<ApplyResult> => {
        const spec = await validatePipelineSpec(req.spec, await clusterLookups(nc, s.prefix));
        const r = await store.putSpec(spec);
        log.info({ pipeline: spec.name, model: spec.model, revision: r.revision, created: r.created }, 'pipeline applied');
        return { name: spec.name, ...r, spec };
      },
      { queue, log },
    ),
    serve(
      nc,
      s.pipelines('run'),
      Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }), reason: Type.Optional(Type.String({ maxLength: 500 })) }),
      async (req) => store.trigger(req.name, { kind: 'manual', at: Date.now(), ...(req.reason ? { detail: req.reason } : {}) }),
      { queue, log },
    ),
  ];
  return { stop: () => subs.forEach((x) => x.unsubscribe()) };
}
