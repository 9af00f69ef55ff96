/**
 * A pipeline's `data.features` (issue #16 item 1): the training set built point-in-time from
 * feature views, with the labels of a label view taken up to the run's trigger time (and from
 * `windowMs` before it), built once at the snapshot and pinned by digest.
 *
 * Why the job gets the pinned set rather than the request to build it again: a rebuild at the job
 * is not the same set — labels pushed between the snapshot and the job (late labels dated before
 * the trigger, corrections) would enter it, and a redone `train` stage after a failover could
 * train on different rows than the snapshot recorded and the gates score. So the snapshot asks the
 * features service to build the set (the request the training coordinator makes; the scheduler's
 * connection may make it, cluster/roles.ts) and records the dataset digest and each view version's
 * lineage; the job spec carries `dataset: { features: ['view@N', …], labels, pinned: { digest,
 * views } }` and the coordinator trains on that dataset version as it is, recording the views as
 * the new version's feature lineage — so the version still predicts by entity. The gates' holdout
 * is that same dataset version's split.
 */
import { ContentType, request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import type { BuildResult } from '../features/training-set.ts';
import { MlErrors } from '../errors.ts';
import type { PipelineSpec } from './spec.ts';
import type { RunRecord } from './store.ts';

export type FeatureSnapshot = NonNullable<RunRecord['snapshot']>;

/** The label range of a run: up to the trigger time, from `windowMs` before it when set. */
export function labelRange(spec: NonNullable<PipelineSpec['data']['features']>, triggerAt: number): { since?: number; until: number } {
  const w = spec.labels.windowMs;
  return { ...(w !== undefined ? { since: triggerAt - w } : {}), until: triggerAt };
}

/** The dataset name a pipeline's feature sets are stored under (one version per distinct set). */
export const featureSetName = (pipeline: string): string => `${pipeline.replace(/\./g, '_').slice(0, 55)}-features`;

/** Builds the run's training set through the features service and pins it (a 4xx names the data.features field). */
export async function snapshotFeatures(nc: NatsConnection, subjects: Subjects, r: RunRecord): Promise<FeatureSnapshot> {
  const f = r.spec.data.features!;
  const labels = { view: f.labels.view, label: f.labels.label, ...labelRange(f, r.trigger.at) };
  const name = featureSetName(r.pipeline);
  let built: BuildResult;
  try {
    built = await request<BuildResult>(nc, subjects.featuresBuild, { name, views: f.features, labels }, { timeoutMs: 300_000, contentType: ContentType.MSGPACK });
  } catch (err) {
    const status = (err as { status?: unknown }).status;
    if (typeof status !== 'number' || status < 400 || status >= 500) throw err;
    const msg = (err as Error).message;
    throw MlErrors.BAD_INPUT(`pipeline ${/\blabels\b/.test(msg) ? 'data.features.labels' : 'data.features.features'}: ${msg}`);
  }
  return {
    digest: built.dataset.digest,
    rows: built.dataset.rows,
    dataset: name,
    views: built.lineage.views.map((v) => ({ name: v.name, version: v.version, digest: v.digest, through: v.through })),
    labels,
  };
}

/** The training job's `dataset`: the snapshot's views at the versions it used, its label range, and the set pinned by digest. */
export function featureJobDataset(r: RunRecord): Record<string, unknown> {
  const snap = r.snapshot!;
  if (!snap.views || !snap.labels) throw MlErrors.BAD_INPUT(`pipeline ${r.pipeline} run ${r.run}: its snapshot has no feature views (recorded before data.features?)`);
  const views = snap.views.map((v) => ({ view: `${v.name}@${v.version}`, digest: v.digest, through: v.through }));
  return { features: views.map((v) => v.view), labels: snap.labels, pinned: { digest: snap.digest, views } };
}
