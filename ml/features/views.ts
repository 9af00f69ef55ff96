/**
 * Feature view versions in KV (bucket `<prefix>-features`): `<name>` is the head record (latest
 * version, all versions), `<name>.v<N>` one version (definition + fitted parameters + digest).
 * Applying a definition compares its digest with the latest version's: identical → the same
 * version comes back; different → a new version, claimed by `create` (compare-and-swap, as the
 * model registry numbers its versions), so concurrent applies never share a number.
 *
 * Only the scheduler's features service writes here; other roles read.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { Value } from '@sinclair/typebox/value';
import { isCasConflict, kvKeys, openBucket, resources, type NatsConnection } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { FeatureViewDef, type FeatureViewRecord, type FeatureViewVersion, type FittedView, type RawValue } from './schemas.ts';
import { checkDefinition, compileEncoder, fitView, type Encoder } from './transforms.ts';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export const featureKeys = {
  view: (name: string) => name,
  version: (name: string, v: number) => `${name}.v${v}`,
} as const;

/** JSON with object keys sorted: the digest of equal definitions is equal whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Parses and checks a definition (schema, then the rules the schema cannot say); the error names the field. */
export function parseViewDef(body: unknown): FeatureViewDef {
  if (!Value.Check(FeatureViewDef, body)) {
    const e = Value.Errors(FeatureViewDef, body).First();
    throw MlErrors.BAD_INPUT(`feature view${e ? ` ${e.path || '/'}: ${e.message}` : ' is invalid'}`);
  }
  checkDefinition(body);
  return body;
}

export interface ApplyResult {
  version: FeatureViewVersion;
  /** True when the definition (and fitted parameters) were new. */
  created: boolean;
}

export class FeatureViews {
  readonly #kv: KV;
  readonly #encoders = new Map<string, Encoder>();

  private constructor(kv: KV) {
    this.#kv = kv;
  }

  static async open(nc: NatsConnection, prefix = 'shoal'): Promise<FeatureViews> {
    return new FeatureViews(await openBucket(nc, resources(prefix).buckets.features));
  }

  /**
   * Applies a definition. With a snapshot, the parameters are fitted on it; without one, the
   * latest version is kept when its definition is identical, and otherwise parameters are fitted
   * on no rows (which works only when nothing needs fitting: the version is stored unfitted and
   * cannot encode until applied again with a snapshot).
   */
  async apply(body: unknown, snapshot?: readonly Record<string, RawValue>[]): Promise<ApplyResult> {
    const def = parseViewDef(body);
    for (let attempt = 0; attempt < 10; attempt++) {
      const head = await this.#head(def.name);
      const latest = head ? await this.version(def.name, head.record.latest) : undefined;
      let fitted: FittedView | null;
      if (snapshot) fitted = fitView(def, snapshot);
      else if (latest && canonicalJson(latest.definition) === canonicalJson(def)) return { version: latest, created: false };
      else {
        try {
          fitted = fitView(def, []);
        } catch {
          fitted = null;
        }
      }
      const digest = createHash('sha256').update(canonicalJson({ definition: def, fitted })).digest('hex');
      if (latest && latest.digest === digest) return { version: latest, created: false };
      const version = (head?.record.latest ?? 0) + 1;
      const now = new Date().toISOString();
      const v: FeatureViewVersion = { name: def.name, version, definition: def, digest, fitted, createdAt: now };
      try {
        await this.#kv.create(featureKeys.version(def.name, version), utf8.encode(JSON.stringify(v)));
        const rec: FeatureViewRecord = { name: def.name, latest: version, versions: [...(head?.record.versions ?? []), version], updatedAt: now };
        if (head) await this.#kv.update(featureKeys.view(def.name), utf8.encode(JSON.stringify(rec)), head.revision);
        else await this.#kv.create(featureKeys.view(def.name), utf8.encode(JSON.stringify(rec)));
        return { version: v, created: true };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(`feature view ${def.name}`);
  }

  async list(): Promise<FeatureViewRecord[]> {
    const out: FeatureViewRecord[] = [];
    for (const k of await kvKeys(this.#kv)) {
      if (k.includes('.')) continue;
      const h = await this.#head(k);
      if (h) out.push(h.record);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async get(name: string): Promise<FeatureViewRecord> {
    const h = await this.#head(name);
    if (!h) throw MlErrors.FEATURE_VIEW_NOT_FOUND(name);
    return h.record;
  }

  /** One version (the latest without `version`); undefined when the view or version does not exist. */
  async version(name: string, version?: number): Promise<FeatureViewVersion | undefined> {
    let v = version;
    if (v === undefined) {
      const h = await this.#head(name);
      if (!h) return undefined;
      v = h.record.latest;
    }
    const e = await this.#kv.get(featureKeys.version(name, v));
    if (!e || e.operation !== 'PUT') return undefined;
    return JSON.parse(fromUtf8.decode(e.value)) as FeatureViewVersion;
  }

  /** Like `version`, but a missing view is FEATURE_VIEW_NOT_FOUND. */
  async require(name: string, version?: number): Promise<FeatureViewVersion> {
    const v = await this.version(name, version);
    if (!v) throw MlErrors.FEATURE_VIEW_NOT_FOUND(version === undefined ? name : `${name}@${version}`);
    return v;
  }

  /** The encoder of a version (compiled once per version and cached). */
  encoder(v: FeatureViewVersion): Encoder {
    const key = `${v.name}@${v.version}:${v.digest}`;
    let enc = this.#encoders.get(key);
    if (!enc) this.#encoders.set(key, (enc = compileEncoder(v.definition, v.fitted)));
    return enc;
  }

  async #head(name: string): Promise<{ record: FeatureViewRecord; revision: number } | undefined> {
    const e = await this.#kv.get(featureKeys.view(name));
    if (!e || e.operation !== 'PUT') return undefined;
    return { record: JSON.parse(fromUtf8.decode(e.value)) as FeatureViewRecord, revision: e.revision };
  }
}
