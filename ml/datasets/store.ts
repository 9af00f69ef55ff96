/**
 * Versioned datasets: the bytes in the artifacts object store under `datasets/<sha256>` (the
 * digest is the version, as with DVC; re-checked on every load), metadata in the `datasets` KV
 * bucket: `<name>` → the latest version and its history, `<name>.<digest>` → that version's
 * facts (rows, columns, class balance, splits with their seed).
 *
 * `resolve` and `load` work for any role that may read the bucket and the artifacts store;
 * `put` is the registry service's (other processes call `RegistryClient.registerDataset`).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { decode, encode, kvKeys, resources } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { deserialize, serialize, sha256hex, split, type Dataset } from './dataset.ts';

export interface DatasetVersion {
  name: string;
  digest: string;
  rows: number;
  columns: string[];
  positives: number;
  sensitiveName?: string;
  /** More declared sensitive attributes (`Dataset.extraSensitive`). */
  extraSensitiveNames?: string[];
  /** Columns declared personal data (issue #20). */
  pii?: string[];
  splits: { seed: number; train: number; validation: number; holdout: number };
  createdAt: number;
  source: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

export class DatasetStore {
  private constructor(
    private readonly kv: KV,
    private readonly store: ObjectStore,
  ) {}

  static async open(nc: NatsConnection, prefix = 'shoal'): Promise<DatasetStore> {
    const r = resources(prefix);
    return new DatasetStore(await new Kvm(nc).open(r.buckets.datasets), await new Objm(nc).open(r.stores.artifacts));
  }

  /** Stores `d` under `name`; the same content twice is the same version. */
  async put(name: string, d: Dataset, opts: { splitSeed?: number; source?: string } = {}): Promise<DatasetVersion> {
    if (!NAME.test(name)) throw MlErrors.BAD_DATASET(name, 'name must be letters, digits, _ or - (≤ 64)');
    if (d.rows === 0) throw MlErrors.BAD_DATASET(name, 'it has no rows');
    const bytes = serialize(d);
    const digest = sha256hex(bytes);
    const obj = `datasets/${digest}`;
    const info = await this.store.info(obj);
    if (!info || info.deleted) await this.store.putBlob({ name: obj, description: `dataset ${name}` }, bytes);
    const seed = opts.splitSeed ?? 42;
    const s = split(d.rows, seed);
    let positives = 0;
    for (const l of d.labels) positives += l;
    const v: DatasetVersion = {
      name,
      digest,
      rows: d.rows,
      columns: d.columns,
      positives,
      ...(d.sensitiveName ? { sensitiveName: d.sensitiveName } : {}),
      ...(d.extraSensitive?.length ? { extraSensitiveNames: d.extraSensitive.map((e) => e.name) } : {}),
      ...(d.pii?.length ? { pii: d.pii } : {}),
      splits: { seed, train: s.train.length, validation: s.validation.length, holdout: s.holdout.length },
      createdAt: Date.now(),
      source: opts.source ?? 'api',
    };
    await this.kv.put(`${name}.${digest}`, encode(v));
    const head = await this.kv.get(name);
    const prev = head && head.operation === 'PUT' ? (decode(head.value) as { latest: string; history: string[] }) : { latest: '', history: [] as string[] };
    if (prev.latest !== digest) await this.kv.put(name, encode({ latest: digest, history: [...prev.history, digest].slice(-100) }));
    return v;
  }

  /** `name`, `name@<digest or prefix>`, or `sha256:<digest>`. */
  async resolve(ref: string): Promise<DatasetVersion> {
    const [name, at] = ref.startsWith('sha256:') ? [undefined, ref.slice(7)] : (ref.split('@', 2) as [string, string | undefined]);
    if (name !== undefined) {
      if (!NAME.test(name)) throw MlErrors.DATASET_NOT_FOUND(ref);
      const head = await this.kv.get(name);
      if (!head || head.operation !== 'PUT') throw MlErrors.DATASET_NOT_FOUND(ref);
      const h = decode(head.value) as { latest: string; history: string[] };
      const digest = at ? h.history.find((d) => d.startsWith(at)) : h.latest;
      if (!digest) throw MlErrors.DATASET_NOT_FOUND(ref);
      const e = await this.kv.get(`${name}.${digest}`);
      if (!e || e.operation !== 'PUT') throw MlErrors.DATASET_NOT_FOUND(ref);
      return decode(e.value) as DatasetVersion;
    }
    for (const k of await kvKeys(this.kv, `*.${at}`)) {
      const e = await this.kv.get(k);
      if (e && e.operation === 'PUT') return decode(e.value) as DatasetVersion;
    }
    throw MlErrors.DATASET_NOT_FOUND(ref);
  }

  /** The data of a version, verified against its digest. */
  async load(v: DatasetVersion): Promise<Dataset> {
    const bytes = await this.store.getBlob(`datasets/${v.digest}`);
    if (!bytes) throw MlErrors.ARTIFACT_MISSING(`dataset ${v.name}`, v.digest);
    const got = sha256hex(bytes);
    if (got !== v.digest) throw MlErrors.ARTIFACT_CORRUPT(`dataset ${v.name}`, v.digest, got);
    return deserialize(bytes);
  }
}
