/**
 * The registry/control service: the server side of every change to models, aliases,
 * deployments and datasets, run inside the scheduler process (a control module, see
 * ml/control.ts) with the scheduler's rights. Other roles may only read the registry's buckets;
 * to change anything they send a request here (`RegistryClient`).
 *
 * Every scheduler process serves, in one queue group: the writes are compare-and-swap (version
 * numbers, alias moves, deployment records), so a standby may answer as well as the leader, and
 * a request reaches exactly one of them.
 *
 * Artifacts arrive through the `uploads` object store. The service reads the upload, checks its
 * sha256 against the request's, stores it content-addressed in the artifacts store (a model is
 * verified by onnxruntime as before; a dataset is decoded and checked), and deletes the upload —
 * whether the registration succeeded or not. A model package (a graph with external data, see
 * package.ts) is streamed to a scratch file instead of read whole: it may not fit in memory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { Subscription } from '@nats-io/transport-node';
import type { TSchema } from '@sinclair/typebox';
import { REGISTRY_OPS, isJetStreamUnavailable, resources, retrySettling, serve, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { deserialize, type Dataset } from '../datasets/dataset.ts';
import { DatasetStore, type DatasetVersion } from '../datasets/store.ts';
import { MlErrors } from '../errors.ts';
import { ModelDeployments } from '../serving/deployments.ts';
import { governHandlers, type BaseHandlers } from '../governance/registry-governance.ts';
import { REGISTRY_REQUESTS } from './protocol.ts';
import { PACKAGE_FORMAT, writeHashed } from './package.ts';
import { ModelRegistry, sha256, type RegisterOptions } from './registry.ts';
import { OwnerBook, checkReplicaQuota, type TenantQuotas } from '../governance/tenancy/index.ts';

export interface RegistryServiceOptions {
  /** A connection with the scheduler's rights. */
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** Queue group. @default `<prefix>-registry` */
  queue?: string;
  /** Per-tenant quotas (config `tenants`): replicas are checked at deploy and canary. @default {} */
  tenants?: TenantQuotas;
}

export interface RegistryService {
  stop(): Promise<void>;
}


export async function startRegistryService(o: RegistryServiceOptions): Promise<RegistryService> {
  const prefix = o.subjects.prefix;
  const { log } = o;
  const registry = await ModelRegistry.open(o.nc, prefix);
  const deployments = await ModelDeployments.open(o.nc, o.subjects, log);
  const datasets = await DatasetStore.open(o.nc, prefix);
  const uploads = await new Objm(o.nc).open(resources(prefix).stores.uploads);
  const quotas = o.tenants ?? {};
  const owners = Object.keys(quotas).length > 0 ? await (await OwnerBook.open(o.nc, prefix)).follow() : undefined;
  const replicaQuota = (name: string, track: 'stable' | 'canary', replicas: number | undefined) =>
    owners ? checkReplicaQuota(quotas, owners, (n) => deployments.get(n), name, track, replicas ?? 1) : Promise.resolve();

  let book: OwnerBook | undefined;
  const handlers: BaseHandlers = {
    owner: async (req) => {
      book ??= owners ?? (await OwnerBook.open(o.nc, prefix));
      const previous = await book.assign(req.kind, req.name, req.tenant);
      log.info({ kind: req.kind, name: req.name, tenant: req.tenant, previous }, 'owner assigned');
      return { kind: req.kind, name: req.name, tenant: req.tenant, previous };
    },
    register: async (req) => {
      const opts: RegisterOptions = {
        ...(req.aliases ? { aliases: req.aliases } : {}),
        ...(req.metrics ? { metrics: req.metrics } : {}),
        ...(req.lineage ? { lineage: req.lineage } : {}),
        ...(req.description !== undefined ? { description: req.description } : {}),
        ...(req.signature ? { signature: req.signature } : {}),
        ...(req.intendedUse ? { intendedUse: req.intendedUse } : {}),
        ...(req.limitations ? { limitations: req.limitations } : {}),
        ...(req.quantization ? { quantization: req.quantization } : {}),
        ...(req.rejected ? { rejected: req.rejected } : {}),
      };
      // A reference dataset must exist (else the uploads go, and DATASET_NOT_FOUND names it); the version records exactly which (name@digest).
      if (req.referenceDataset) {
        const v = await datasets.resolve(req.referenceDataset).catch(async (err: unknown) => {
          await Promise.all([req.upload, req.processor?.upload, req.sample?.upload, req.reference?.upload].map((u) => (u ? uploads.delete(u) : undefined))).catch(() => undefined);
          throw err;
        });
        opts.referenceDataset = `${v.name}@${v.digest}`;
      }
      const what = `model ${req.name}`;
      // A package streams through a scratch file (it may not fit in memory); a single file is read whole, as ever.
      // A processor module and a sample request come as their own uploads (taken, and deleted, whatever happens).
      const proc = req.processor;
      const withProcessor = <T>(o: RegisterOptions, fn: (o: RegisterOptions) => Promise<T>): Promise<T> =>
        proc ? withUpload(uploads, proc.upload, proc.sha256, `processor of ${what}`, (bytes) => fn({ ...o, processor: { bytes, filename: proc.filename } })) : fn(o);
      const registerWith = (o: RegisterOptions) =>
        req.format === 'pipeline'
          ? withUpload(uploads, req.upload, req.sha256, what, (bytes) => registry.registerPipeline(req.name, bytes, o))
          : req.format === PACKAGE_FORMAT
            ? withProcessor(o, (o2) => withUploadFile(uploads, req.upload, req.sha256, what, (file) => registry.registerPackage(req.name, file, o2)))
            : withProcessor(o, (o2) => withUpload(uploads, req.upload, req.sha256, what, (bytes) => registry.register(req.name, bytes, o2)));
      const sample = req.sample;
      const withSample = (o: RegisterOptions) =>
        sample
          ? withUpload(uploads, sample.upload, sample.sha256, `sample request of ${what}`, (bytes) => registerWith({ ...o, sample: bytes })).finally(() =>
              Promise.all([uploads.delete(req.upload), proc ? uploads.delete(proc.upload) : undefined]).catch(() => undefined),
            )
          : registerWith(o);
      const reference = req.reference;
      const mv = reference
        ? await withUpload(uploads, reference.upload, reference.sha256, `reference profile of ${what}`, (bytes) => withSample({ ...opts, reference: bytes })).finally(() =>
            Promise.all([uploads.delete(req.upload), proc ? uploads.delete(proc.upload) : undefined, sample ? uploads.delete(sample.upload) : undefined]).catch(() => undefined),
          )
        : await withSample(opts);
      log.info({ model: req.name, version: mv.version, sha256: mv.sha256, bytes: mv.sizeBytes, format: mv.format, sample: mv.sample?.sha256, reference: mv.reference?.sha256 }, 'model registered');
      return mv;
    },
    alias: async (req) => {
      const rec = await registry.setAlias(req.name, req.alias, req.version);
      log.info({ model: req.name, alias: req.alias, version: req.version }, 'alias moved');
      return rec;
    },
    'delete-alias': (req) => registry.deleteAlias(req.name, req.alias),
    'rollback-alias': async (req) => {
      const moved = await registry.rollbackAlias(req.name, req.alias ?? 'production');
      log.info({ model: req.name, alias: req.alias ?? 'production', ...moved }, 'alias rolled back');
      return moved;
    },
    deploy: async ({ name, ...opts }) => (await replicaQuota(name, 'stable', opts.replicas), deployments.deploy(name, opts)),
    canary: async ({ name, ...opts }) => (await replicaQuota(name, 'canary', opts.replicas), deployments.canary(name, opts)),
    weight: (req) => deployments.setWeight(req.name, req.weight),
    promote: (req) => deployments.promote(req.name, req.allowRejected ? { allowRejected: true } : {}),
    abort: async (req) => ({ rolledBack: await deployments.rollback(req.name, req.reason ?? 'rolled back on request', req.expectVersion) }),
    undeploy: async (req) => {
      await deployments.undeploy(req.name);
      return { undeployed: req.name };
    },
    'register-dataset': (req) =>
      withUpload(uploads, req.upload, req.sha256, `dataset ${req.name}`, async (bytes): Promise<DatasetVersion> => {
        const v = await datasets.put(req.name, decodeDataset(req.name, bytes), { ...(req.splitSeed !== undefined ? { splitSeed: req.splitSeed } : {}), ...(req.source !== undefined ? { source: req.source } : {}) });
        log.info({ dataset: req.name, digest: v.digest, rows: v.rows }, 'dataset registered');
        return v;
      }),
  };

  // The fairness gate, the audit log and the governance reads wrap the handlers (ml/governance).
  const governed = governHandlers(handlers, { nc: o.nc, subjects: o.subjects, log, registry, deployments, datasets });
  const queue = o.queue ?? `${prefix}-registry`;
  const subs: Subscription[] = REGISTRY_OPS.map((op) =>
    serve(o.nc, o.subjects.registry(op), REGISTRY_REQUESTS[op] as TSchema, (req, m) => (governed[op] as (r: unknown, m: unknown) => Promise<unknown>)(req, m), { queue, log }),
  );
  log.info({ ops: REGISTRY_OPS.length, queue }, 'registry service serving');
  return {
    async stop() {
      for (const s of subs) s.unsubscribe();
      owners?.stop();
    },
  };
}

/**
 * How long an upload's read is asked again while JetStream cannot answer (its stream electing a
 * leader after a server died or was cut off). Past it the caller gets JETSTREAM_UNAVAILABLE and the
 * upload stays, to be asked for again: a timeout is not a corrupt upload.
 */
const UPLOAD_SETTLE_MS = 30_000;

/** Takes an upload (checks its digest), runs `fn` on its bytes, and deletes it either way (but when JetStream could not answer). */
async function withUpload<T>(uploads: ObjectStore, upload: string, expected: string, what: string, fn: (bytes: Uint8Array) => Promise<T>): Promise<T> {
  let bytes: Uint8Array | null;
  try {
    bytes = await retrySettling(() => uploads.getBlob(upload), UPLOAD_SETTLE_MS);
  } catch (err) {
    if (isJetStreamUnavailable(err)) throw err;
    await uploads.delete(upload).catch(() => undefined);
    throw MlErrors.ARTIFACT_CORRUPT(`upload ${upload} (${what})`, expected, `unreadable (${(err as Error).message})`);
  }
  if (!bytes) throw MlErrors.UPLOAD_NOT_FOUND(upload);
  try {
    const got = sha256(bytes);
    if (got !== expected) throw MlErrors.ARTIFACT_CORRUPT(`upload ${upload} (${what})`, expected, got);
    return await fn(bytes);
  } finally {
    await uploads.delete(upload).catch(() => undefined);
  }
}

/** {@link withUpload} for uploads too large to hold: streamed to a scratch file (its digest checked on the way), which `fn` gets. */
async function withUploadFile<T>(uploads: ObjectStore, upload: string, expected: string, what: string, fn: (file: string) => Promise<T>): Promise<T> {
  const unreadable = (err: unknown) => MlErrors.ARTIFACT_CORRUPT(`upload ${upload} (${what})`, expected, `unreadable (${(err as Error).message})`);
  const dir = await mkdtemp(join(tmpdir(), 'shoal-upload-'));
  let keep = false;
  try {
    let r: Awaited<ReturnType<ObjectStore['get']>>;
    try {
      r = await retrySettling(() => uploads.get(upload), UPLOAD_SETTLE_MS);
    } catch (err) {
      keep = isJetStreamUnavailable(err);
      throw keep ? err : unreadable(err);
    }
    if (!r) throw MlErrors.UPLOAD_NOT_FOUND(upload);
    const file = join(dir, 'upload');
    // The object store fails the stream at its end when its own chunk digest does not match.
    const got = await writeHashed(r.data as unknown as AsyncIterable<Uint8Array>, file).catch((err: unknown) => {
      throw unreadable(err);
    });
    if (got.sha256 !== expected) throw MlErrors.ARTIFACT_CORRUPT(`upload ${upload} (${what})`, expected, got.sha256);
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (!keep) await uploads.delete(upload).catch(() => undefined);
  }
}

/** A serialized dataset, decoded and checked (a caller's bytes are not trusted to be well formed). */
function decodeDataset(name: string, bytes: Uint8Array): Dataset {
  let d: Dataset;
  try {
    d = deserialize(bytes);
  } catch (err) {
    throw MlErrors.BAD_DATASET(name, `the upload is not a serialized dataset: ${(err as Error).message}`);
  }
  const ok =
    Array.isArray(d.columns) &&
    d.columns.every((c) => typeof c === 'string') &&
    Number.isInteger(d.rows) &&
    d.rows >= 0 &&
    d.features instanceof Float32Array &&
    d.features.length === d.rows * d.columns.length &&
    d.labels instanceof Uint8Array &&
    d.labels.length === d.rows &&
    (d.sensitive === undefined || (d.sensitive instanceof Uint8Array && d.sensitive.length === d.rows)) &&
    (d.extraSensitive ?? []).every((e) => e.name.length > 0 && e.values.length === d.rows);
  if (!ok) throw MlErrors.BAD_DATASET(name, 'the upload is not a well-formed dataset (columns, rows, features, labels disagree)');
  return d;
}
