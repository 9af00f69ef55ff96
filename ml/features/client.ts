/**
 * What callers (CLI, product code, later the replicas) use: applies and pushes go to the features
 * service (`service.ts`) by request; reads (views, online rows, vectors) go straight to KV, which
 * the client and gateway roles may read.
 */
import { ContentType, request, type NatsConnection, type Subjects, systemClock, type Clock } from '../../cluster/index.ts';
import type { MaterializeResult } from './offline.ts';
import type { BuildRequest, BuildResult } from './training-set.ts';
import { OnlineStore, type OnlineRow } from './online.ts';
import type { FeatureEvent, FeatureViewRecord, FeatureViewVersion, PushResult, RawValue } from './schemas.ts';
import { encodeOne, encodeRows } from './transforms.ts';
import { FeatureViews, type ApplyResult } from './views.ts';
import type { AggregatorPlacement } from './service.ts';

export interface EntityVector {
  entity: Record<string, string>;
  found: boolean;
  expired: string[];
  vector: Float32Array;
}

export class FeatureClient {
  readonly #nc: NatsConnection;
  readonly #s: Subjects;
  readonly views: FeatureViews;
  readonly online: OnlineStore;

  private constructor(nc: NatsConnection, s: Subjects, views: FeatureViews, online: OnlineStore) {
    this.#nc = nc;
    this.#s = s;
    this.views = views;
    this.online = online;
  }

  static async open(nc: NatsConnection, s: Subjects, clock: Clock = systemClock): Promise<FeatureClient> {
    return new FeatureClient(nc, s, await FeatureViews.open(nc, s.prefix), await OnlineStore.open(nc, s.prefix, clock));
  }

  /** Applies a view; for an aggregate view the reply also says where its aggregate actor is. */
  apply(definition: unknown, snapshot?: readonly Record<string, RawValue>[]): Promise<ApplyResult & { aggregator?: AggregatorPlacement }> {
    return request<ApplyResult & { aggregator?: AggregatorPlacement }>(this.#nc, this.#s.featuresApply, { definition, ...(snapshot ? { snapshot } : {}) }, { timeoutMs: 30_000, idempotent: true }); // versioned by content
  }

  push(view: string, event: FeatureEvent, contentType: ContentType = ContentType.MSGPACK): Promise<PushResult> {
    return request<PushResult>(this.#nc, this.#s.featurePush(view), event, { contentType, idempotent: true, timeoutMs: 15_000 }); // de-duplicated by event id; waits out a server's death
  }

  /** Compacts the view's offline log to a Parquet file (features service). */
  materialize(view: string): Promise<MaterializeResult> {
    return request<MaterializeResult>(this.#nc, this.#s.featuresMaterialize, { view }, { timeoutMs: 120_000 });
  }

  /** Builds a point-in-time-correct training set, stored as a dataset version (features service). */
  buildDataset(req: BuildRequest): Promise<BuildResult> {
    return request<BuildResult>(this.#nc, this.#s.featuresBuild, req, { timeoutMs: 300_000, contentType: ContentType.MSGPACK });
  }

  list(): Promise<FeatureViewRecord[]> {
    return this.views.list();
  }

  show(name: string, version?: number): Promise<FeatureViewVersion> {
    return this.views.require(name, version);
  }

  /** Raw online rows of many entities (TTL applied), against the view's latest (or given) version. */
  async rows(view: string, entities: readonly Record<string, string>[], version?: number): Promise<OnlineRow[]> {
    const v = await this.views.require(view, version);
    return this.online.read(v.definition, entities);
  }

  /** Serving path: many entities' online values → their transformed vectors (one encodeOne each). */
  async vectors(view: string, entities: readonly Record<string, string>[], version?: number): Promise<EntityVector[]> {
    const v = await this.views.require(view, version);
    const enc = this.views.encoder(v);
    const rows = await this.online.read(v.definition, entities);
    return rows.map((r) => ({ entity: r.entity, found: r.found, expired: r.expired, vector: encodeOne(enc, r.values) }));
  }

  /** Training path: snapshot rows → one row-major matrix, by the same encoder. */
  async matrix(view: string, rows: readonly Record<string, RawValue>[], version?: number): Promise<Float32Array> {
    const v = await this.views.require(view, version);
    return encodeRows(this.views.encoder(v), rows);
  }
}
