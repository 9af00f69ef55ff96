/**
 * Pipelines and their runs in the pipelines KV bucket: `spec.<name>` (each apply a new revision;
 * the bucket's history keeps the last ones), `run.<name>.<n>` (one record per run, every change
 * a compare-and-swap).
 * A run is in flight while the latest run is not done; a new run's record is created, never put,
 * so two triggers racing make one run and the second is recorded as coalesced.
 */
import { Kvm, type KV } from '@nats-io/kv';
import { kvKeys, resources, type NatsConnection } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import type { CanaryQuality } from './canary-quality.ts';
import type { GateReport } from './gates.ts';
import type { PipelineSpec } from './spec.ts';

export const TRIGGER_KINDS = ['manual', 'interval', 'cron', 'alert', 'labels'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

export interface Trigger {
  kind: TriggerKind;
  /** Epoch ms. */
  at: number;
  detail?: string;
}

/** The stages of a run, in order; `done` carries the decision. */
export const RUN_STATES = ['triggered', 'snapshotted', 'training', 'trained', 'evaluated', 'shadow', 'rollout', 'done'] as const;
export type RunState = (typeof RUN_STATES)[number];

export type Outcome = 'promoted' | 'rejected' | 'rolled-back' | 'failed';

export interface CanaryStep {
  percent: number;
  pass: boolean;
  at: number;
  reason?: string;
  /** How the step was judged on model quality (canary-quality.ts); absent when the step ended before (rolled back on errors or latency). */
  quality?: CanaryQuality;
}

/** What the shadow stage found (ml/pipelines/shadow-stage.ts). */
export interface ShadowStageReport {
  /** Rows compared between the candidate and production. */
  compared: number;
  /** Share of compared rows on which they agreed. */
  agreement: number;
  /** PSI of the candidate's score distribution against production's. */
  distance: number;
  /** Mirrored requests the candidate failed. */
  errors?: number;
  pass: boolean;
  /** The stage did not run (no `shadow` in the spec, no deployment, `rollout.direct`). */
  skipped?: boolean;
  reason: string;
}

export interface RunRecord {
  pipeline: string;
  run: number;
  /** The spec revision the run was started with (later applies do not change a run in flight). */
  specRevision: number;
  spec: PipelineSpec;
  state: RunState;
  trigger: Trigger;
  /** Triggers that fired while this run was in flight: folded into it, not run again. */
  coalesced: Trigger[];
  /**
   * The data the run trains on, by digest; with `data.labeled`, how many labeled rows were appended
   * (and skipped: features or label not fitting); with `data.features`, the view versions the set
   * was built from and the label range (feature-data.ts).
   */
  snapshot?: {
    digest: string;
    rows: number;
    dataset?: string;
    labeledRows?: number;
    skippedRows?: number;
    views?: { name: string; version: number; digest: string; through: number }[];
    labels?: { view: string; label: string; since?: number; until: number };
  };
  jobId?: string;
  candidate?: { version: number };
  production?: { version: number };
  report?: GateReport;
  shadowReport?: ShadowStageReport;
  steps: CanaryStep[];
  decision?: { outcome: Outcome; reason: string; at: number };
  /** Who advanced it last (scheduler instance), for the record. */
  by?: string;
  /** Epoch ms at which the run entered each state after `triggered` (its trigger's `at` is the start). */
  entered?: Partial<Record<RunState, number>>;
  updatedAt: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (v: unknown) => enc.encode(JSON.stringify(v));
const parse = <T>(b: Uint8Array): T => JSON.parse(dec.decode(b)) as T;

export const runKey = (name: string, n: number) => `run.${name}.${String(n).padStart(8, '0')}`;

export class PipelineStore {
  private constructor(readonly kv: KV) {}

  static async open(nc: NatsConnection, prefix = 'shoal'): Promise<PipelineStore> {
    return new PipelineStore(await new Kvm(nc).open(resources(prefix).buckets.pipelines));
  }

  async putSpec(spec: PipelineSpec): Promise<{ revision: number; created: boolean }> {
    const cur = await this.getSpec(spec.name);
    if (cur && JSON.stringify(cur.spec) === JSON.stringify(spec)) return { revision: cur.revision, created: false };
    const revision = await this.kv.put(`spec.${spec.name}`, json(spec));
    return { revision, created: true };
  }

  /** The spec as last applied; `created` is when (epoch ms, the server's clock). */
  async getSpec(name: string): Promise<{ spec: PipelineSpec; revision: number; created: number } | undefined> {
    const e = await this.kv.get(`spec.${name}`);
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return { spec: parse<PipelineSpec>(e.value), revision: e.revision, created: e.created.getTime() };
  }

  async specNames(): Promise<string[]> {
    return (await kvKeys(this.kv, 'spec.*')).map((k) => k.slice('spec.'.length));
  }

  async getRun(name: string, n: number): Promise<{ record: RunRecord; revision: number } | undefined> {
    const e = await this.kv.get(runKey(name, n));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return { record: parse<RunRecord>(e.value), revision: e.revision };
  }

  /** Runs of a pipeline, oldest first. */
  async runs(name: string): Promise<RunRecord[]> {
    const out: RunRecord[] = [];
    for (const k of await kvKeys(this.kv, `run.${name}.*`)) {
      const e = await this.kv.get(k);
      if (e && e.operation === 'PUT' && e.value.length > 0) out.push(parse<RunRecord>(e.value));
    }
    return out;
  }

  /** The run in flight, if any: the latest run while it is not done. */
  async active(name: string): Promise<number | undefined> {
    const n = (await this.runNumbers(name)).at(-1);
    if (n === undefined) return undefined;
    const cur = await this.getRun(name, n);
    return cur && cur.record.state !== 'done' ? n : undefined;
  }

  /** Every run in flight (for the runner to resume after a failover). */
  async activeRuns(): Promise<{ name: string; run: number }[]> {
    const out: { name: string; run: number }[] = [];
    for (const name of await this.specNames()) {
      const run = await this.active(name);
      if (run !== undefined) out.push({ name, run });
    }
    return out;
  }

  /**
   * Starts a run for this trigger, or — a run being in flight — records the trigger as coalesced
   * into it. Safe from any number of processes at once: a new run exists only when the latest one
   * is done, and its record is created (not put), so two racing triggers make one run, and the
   * loser's trigger is folded into it by compare-and-swap.
   */
  async trigger(name: string, trigger: Trigger): Promise<{ run: number; coalesced: boolean }> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const spec = await this.getSpec(name);
      if (!spec) throw MlErrors.BAD_INPUT(`pipeline: no pipeline named "${name}"`);
      const last = (await this.runNumbers(name)).at(-1);
      const cur = last === undefined ? undefined : await this.getRun(name, last);
      if (cur && cur.record.state !== 'done') {
        const rev = await this.casRun({ ...cur.record, coalesced: [...cur.record.coalesced, trigger], updatedAt: trigger.at }, cur.revision);
        if (rev !== undefined) return { run: cur.record.run, coalesced: true };
        continue; // the record moved under us: read again
      }
      const n = (last ?? 0) + 1;
      const record: RunRecord = { pipeline: name, run: n, specRevision: spec.revision, spec: spec.spec, state: 'triggered', trigger, coalesced: [], steps: [], updatedAt: trigger.at };
      try {
        await this.kv.create(runKey(name, n), json(record));
        return { run: n, coalesced: false };
      } catch {
        continue; // another trigger created run n first: coalesce into it
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(`pipelines/run.${name}`);
  }

  async runNumbers(name: string): Promise<number[]> {
    return (await kvKeys(this.kv, `run.${name}.*`)).map((k) => Number(k.slice(`run.${name}.`.length))).sort((a, b) => a - b);
  }

  /** Compare-and-swap of a run record; false when it changed since `revision`. */
  async casRun(record: RunRecord, revision: number): Promise<number | undefined> {
    try {
      return await this.kv.update(runKey(record.pipeline, record.run), json(record), revision);
    } catch {
      return undefined;
    }
  }
}
