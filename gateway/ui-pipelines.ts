/**
 * The dashboard's `pipelines` topic (issue #16 item 5, issue #18): every pipeline's spec (model,
 * triggers, gates, rollout) and its last run records, newest first — the records as the runner
 * wrote them in the pipelines KV bucket, what `GET /v1/pipelines/{name}/runs` answers; the page
 * draws the timeline from them and recomputes nothing.
 *
 * The records are KV, so they stay readable without a scheduler; but runs only move while the
 * scheduler leader (which drives them) answers, so its `status` is asked too and a silence is
 * reported next to the runs (`runner.error`) instead of a page that looks fine and never changes.
 */
import { request, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { PipelineStore, type RunRecord } from '../ml/index.ts';

/** Runs kept per pipeline on the page (the rest: `GET /v1/pipelines/{name}/runs`). */
export const RUNS_SHOWN = 10;
/** Pipelines listed at most. */
const PIPELINES_SHOWN = 200;

export interface PipelineRow {
  name: string;
  model?: string;
  revision?: number;
  triggers?: unknown;
  gates?: unknown;
  rollout?: unknown;
  runCount: number;
  /** The run in flight (the latest, while not done). */
  inFlight?: number;
  /** Newest first, at most {@link RUNS_SHOWN}. */
  runs: RunRecord[];
  error?: string;
}

export interface PipelinesTopic {
  pipelines: PipelineRow[];
  /** More pipelines than listed. */
  truncated?: boolean;
  runner: { schedulerId: string } | { error: string };
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function readOne(store: PipelineStore, name: string): Promise<PipelineRow> {
  try {
    const [spec, numbers] = await Promise.all([store.getSpec(name), store.runNumbers(name)]);
    const last = numbers.slice(-RUNS_SHOWN).reverse();
    const runs = (await Promise.all(last.map((n) => store.getRun(name, n)))).flatMap((r) => (r ? [r.record] : []));
    const latest = runs[0];
    return {
      name,
      ...(spec ? { model: spec.spec.model, revision: spec.revision, triggers: spec.spec.triggers, gates: spec.spec.gates, rollout: spec.spec.rollout } : {}),
      runCount: numbers.length,
      ...(latest && latest.state !== 'done' ? { inFlight: latest.run } : {}),
      runs,
    };
  } catch (err) {
    return { name, runCount: 0, runs: [], error: message(err) };
  }
}

/** The topic's reader: opens the pipelines bucket on first use (again after a failure). */
export function readPipelines(deps: { nc: NatsConnection; subjects: Subjects }): () => Promise<PipelinesTopic> {
  let store: Promise<PipelineStore> | undefined;
  return async () => {
    const runner = request<{ schedulerId: string }>(deps.nc, deps.subjects.scheduler('status'), { type: 'status' }, { timeoutMs: 2000, idempotent: true }).then(
      (s) => ({ schedulerId: s.schedulerId }),
      (err: unknown) => ({ error: `the scheduler leader, which drives the runs, did not answer: ${message(err)}` }),
    );
    store ??= PipelineStore.open(deps.nc, deps.subjects.prefix);
    let s: PipelineStore;
    try {
      s = await store;
    } catch (err) {
      store = undefined;
      throw new Error(`pipelines bucket: ${message(err)}`);
    }
    const names = (await s.specNames()).sort();
    const pipelines = await Promise.all(names.slice(0, PIPELINES_SHOWN).map((n) => readOne(s, n)));
    return { pipelines, ...(names.length > PIPELINES_SHOWN ? { truncated: true } : {}), runner: await runner };
  };
}
