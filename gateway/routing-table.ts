/**
 * The gateway's routing table: its view of the registry (models, versions, their signatures)
 * and the deployments (which versions serve — stable / canary, and whether ready), kept current
 * by a KV watch so that resolving a request's target costs no round trip. (Not the scheduler's
 * node-type catalogue: this one says where a request goes, not what machines one can buy.)
 */
import {
  isDeployment,
  type Deployment,
  MlErrors,
  ModelRecord,
  ModelVersion,
  TrackState,
  pickTrack,
  type ModelRegistry,
  type Route,
  type Signature,
} from '../ml/index.ts';
import { TypeCompiler } from '@sinclair/typebox/compiler';

const isRecord = TypeCompiler.Compile(ModelRecord);
const isVersion = TypeCompiler.Compile(ModelVersion);

export interface Target {
  model: string;
  version: number;
  service: string;
  signature: Signature;
  route: Route | 'pinned';
  maxBatchSize: number;
}

/** A ready shadow version of a model: where mirrored requests go, and how many of them. */
export interface ShadowTarget {
  model: string;
  version: number;
  service: string;
  maxBatchSize: number;
  /** Share of stable's requests mirrored to it. */
  fraction: number;
  /** The shadow track's `since` (its tallies are counted under it). */
  since: number;
}

export class RoutingTable {
  readonly records = new Map<string, ModelRecord>();
  readonly versions = new Map<string, ModelVersion>();
  readonly deployments = new Map<string, Deployment>();
  #stop: (() => void) | undefined;
  readonly #listeners: ((name: string) => void)[] = [];
  /**
   * Resolved stable/canary targets per model, built once and reused until the registry or a
   * deployment changes (the request path then allocates no Target and looks up no signature;
   * callers may key per-target state, such as metric children, on the object).
   */
  readonly #targets = new Map<string, { stable?: Target; canary?: Target; shadow?: ShadowTarget | null }>();

  constructor(private readonly registry: ModelRegistry) {}

  async start(): Promise<void> {
    this.#stop = await this.registry.watch((key, value) => this.#apply(key, value));
  }

  stop(): void {
    this.#stop?.();
  }

  onDeploymentChange(fn: (name: string) => void): void {
    this.#listeners.push(fn);
  }

  #apply(key: string, value: unknown): void {
    this.#targets.clear();
    const [kind, ...rest] = key.split('.');
    if (kind === 'model') {
      const name = rest.join('.');
      if (value === undefined) this.records.delete(name);
      else if (isRecord.Check(value)) this.records.set(name, value);
    } else if (kind === 'version') {
      const k = rest.join('.');
      if (value === undefined) this.versions.delete(k);
      else if (isVersion.Check(value)) this.versions.set(k, value);
    } else if (kind === 'deploy') {
      const name = rest.join('.');
      if (value === undefined) this.deployments.delete(name);
      else if (isDeployment.Check(value)) this.deployments.set(name, value);
      for (const l of this.#listeners) l(name);
    }
  }

  version(name: string, v: number): ModelVersion | undefined {
    return this.versions.get(`${name}.${v}`);
  }

  /** Registered model, or MODEL_NOT_FOUND. */
  record(name: string): ModelRecord {
    const r = this.records.get(name);
    if (!r) throw MlErrors.MODEL_NOT_FOUND(name);
    return r;
  }

  /** Parses a version path segment: a number or an alias. */
  versionOf(name: string, ref: string): number {
    const rec = this.record(name);
    const v = /^\d+$/.test(ref) ? Number(ref) : rec.aliases[ref];
    if (v === undefined || !rec.versions.includes(v)) throw MlErrors.MODEL_VERSION_NOT_FOUND(name, ref);
    return v;
  }

  /** Versions that serve now (ready tracks), stable first. */
  serving(name: string): { version: number; service: string; route: Route; maxBatchSize: number }[] {
    const d = this.deployments.get(name);
    if (!d) return [];
    const out: { version: number; service: string; route: Route; maxBatchSize: number }[] = [];
    if (d.stable.state === TrackState.READY) out.push({ version: d.stable.version, service: d.stable.service, route: 'stable', maxBatchSize: d.stable.maxBatchSize });
    if (d.canary?.state === TrackState.READY) out.push({ version: d.canary.version, service: d.canary.service, route: 'canary', maxBatchSize: d.canary.maxBatchSize });
    return out;
  }

  /**
   * Where a request goes: a pinned version (path `/versions/{v}`) must be serving; otherwise the
   * deployment's split between stable and a ready canary decides.
   */
  resolve(name: string, versionRef: string | undefined, routeKey: string | undefined): Target {
    this.record(name);
    const d = this.deployments.get(name);
    if (versionRef !== undefined) {
      const v = this.versionOf(name, versionRef);
      const s = this.serving(name).find((x) => x.version === v);
      if (!s) throw MlErrors.MODEL_NOT_READY(`${name} v${v}`, 'this version is not deployed (or its replicas are still starting)');
      return { model: name, version: v, service: s.service, signature: this.#signature(name, v), route: 'pinned', maxBatchSize: s.maxBatchSize };
    }
    if (!d) throw MlErrors.MODEL_NOT_READY(name, 'it is registered but not deployed');
    const route = pickTrack(d, routeKey);
    const t = route === 'canary' && d.canary ? d.canary : d.stable;
    if (t.state !== TrackState.READY) throw MlErrors.MODEL_NOT_READY(`${name} v${t.version}`, 'its replicas are still starting');
    let cached = this.#targets.get(name);
    if (!cached) this.#targets.set(name, (cached = {}));
    return (cached[route] ??= { model: name, version: t.version, service: t.service, signature: this.#signature(name, t.version), route, maxBatchSize: t.maxBatchSize });
  }

  /** The stable target of a deployment (fallback when a canary fails). */
  stable(name: string): Target | undefined {
    const d = this.deployments.get(name);
    if (!d || d.stable.state !== TrackState.READY) return undefined;
    let cached = this.#targets.get(name);
    if (!cached) this.#targets.set(name, (cached = {}));
    return (cached.stable ??= { model: name, version: d.stable.version, service: d.stable.service, signature: this.#signature(name, d.stable.version), route: 'stable', maxBatchSize: d.stable.maxBatchSize });
  }

  /** The model's shadow when it is ready (mirrored to, never routed to: a pinned request to its version is refused). */
  shadow(name: string): ShadowTarget | undefined {
    let cached = this.#targets.get(name);
    if (cached?.shadow !== undefined) return cached.shadow ?? undefined;
    const s = this.deployments.get(name)?.shadow;
    const t = s && s.state === TrackState.READY && s.fraction > 0 ? { model: name, version: s.version, service: s.service, maxBatchSize: s.maxBatchSize, fraction: s.fraction, since: s.since } : undefined;
    if (!cached) this.#targets.set(name, (cached = {}));
    cached.shadow = t ?? null;
    return t;
  }

  #signature(name: string, v: number): Signature {
    const mv = this.version(name, v);
    if (!mv) throw MlErrors.MODEL_VERSION_NOT_FOUND(name, String(v));
    return mv.signature;
  }
}
