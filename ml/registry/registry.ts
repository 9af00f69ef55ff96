/**
 * The model registry: ONNX artifacts in the JetStream object store, content-addressed by sha256
 * and verified on every load; metadata in the `models` KV bucket — one immutable record per
 * version, and a head record per model (latest version, aliases and their history) changed
 * only by compare-and-swap, so versions are monotonic and alias moves never get lost.
 *
 * Reads work for every role that may read the bucket (and the artifacts store, for
 * `loadArtifact`). Writes are the registry service's (ml/registry/service.ts, in the scheduler
 * process): other processes change the registry through `RegistryClient`.
 *
 * Aliases work like MLflow's: `production`, `canary`, … point at a version and can be moved;
 * `rollbackAlias` moves one back to the version it pointed at before.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { KV, KvEntry } from '@nats-io/kv';
import { Kvm } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import * as ort from 'onnxruntime-node';
import { isCasConflict, isJetStreamUnavailable, kvKeys, resources, retrySettling, type NatsConnection } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { decodeOip } from '../serving/codecs/oip.ts';
import { ORT_TYPE, datatypeFromOrt, type TensorSpec } from '../tensor.ts';
import { PACKAGE_FORMAT, materializePackage, unpackPackage } from './package.ts';
import { parsePipelineSpec, validatePipeline, type ProcessorRef, type StepModel } from './pipeline-spec.ts';
import { validateProcessor } from '../serving/processor.ts';
import { REFERENCE_PROFILE_FORMAT, type ReferenceProfile } from '../monitoring/stats/index.ts';
import { ALIAS_NAME, MODEL_NAME, ModelRecord, ModelVersion, keys, type Lineage, type Signature } from './schemas.ts';

export interface RegisterOptions {
  metrics?: Record<string, number>;
  lineage?: Lineage;
  description?: string;
  /** Point these aliases at the new version. */
  aliases?: string[];
  /** Override the signature read from the ONNX file (dimension names it lacks are taken from the file). */
  signature?: Signature;
  /** A pre/post-processing module stored with the version (ml/serving/processor.ts). */
  processor?: { bytes: Uint8Array; filename: string };
  /**
   * A sample OIP v2 `infer` request body (JSON bytes), stored with the version: checked against
   * the (public) signature now (a request that does not fit refuses the registration, nothing
   * stored) and sent to every replica as its warm-up.
   */
  sample?: Uint8Array;
  /**
   * The version's reference profile, JSON bytes of a `ReferenceProfile` (ml/monitoring/stats):
   * checked (a malformed one refuses the registration) and stored content-addressed.
   */
  reference?: Uint8Array;
  /** A registered dataset to monitor against (`name@<digest>`), recorded with the version. */
  referenceDataset?: string;
  /** Model card text (ml/governance/card): what the version is for, and its known limitations. */
  intendedUse?: string;
  limitations?: string;
  /** A quantized version's report (ml/quantize), stored with the version. */
  quantization?: Record<string, unknown>;
  /** Marks the version rejected: deploy, canary and promote refuse it unless asked with allowRejected. */
  rejected?: { reason: string };
}

const MODEL_RE = new RegExp(MODEL_NAME);
const ALIAS_RE = new RegExp(ALIAS_NAME);
const checkVersion = TypeCompiler.Compile(ModelVersion);
const checkRecord = TypeCompiler.Compile(ModelRecord);
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
/** How long a stored artifact's read is asked again while JetStream settles (see `#verified`). */
const READ_SETTLE_MS = 20_000;


export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Reads the input/output signature of an ONNX model (symbolic dims become -1): its bytes, or the
 * path of its graph (a package's, whose external data files lie beside it).
 */
export async function readSignature(name: string, model: Uint8Array | string): Promise<Signature> {
  let session: ort.InferenceSession;
  try {
    const options = { intraOpNumThreads: 1, interOpNumThreads: 1 };
    session = await (typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options));
  } catch (err) {
    throw MlErrors.BAD_MODEL(name, `onnxruntime cannot load it: ${(err as Error).message.split('\n')[0]}`);
  }
  try {
    const spec = (m: ort.InferenceSession.ValueMetadata): TensorSpec => {
      if (!m.isTensor) throw MlErrors.BAD_MODEL(name, `${m.name} is not a tensor`);
      const datatype = datatypeFromOrt(m.type);
      if (!datatype) throw MlErrors.BAD_MODEL(name, `${m.name} has element type ${m.type}; serving supports ${[...new Set(Object.values(ORT_TYPE))].join(', ')}`);
      return { name: m.name, datatype, ...specShape(m.shape as (number | string)[]) };
    };
    return { inputs: session.inputMetadata.map(spec), outputs: session.outputMetadata.map(spec) };
  } finally {
    await session.release();
  }
}

/** onnxruntime's dims → the signature's shape (-1 where dynamic) and each dimension's symbolic name ('' where none). */
export function specShape(dims: readonly (number | string)[]): { shape: number[]; dimParams: string[] } {
  return { shape: dims.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)), dimParams: dims.map((d) => (typeof d === 'string' ? d : '')) };
}

/** The signature a registration records: read from the model, or the one given completed from it. */
async function signatureOf(name: string, model: Uint8Array | string, opts: RegisterOptions): Promise<Signature> {
  const read = await readSignature(name, model);
  return opts.signature ? withDimParams(opts.signature, read) : read;
}

/**
 * A signature given with a registration, completed from the model: every tensor the model has
 * gets the model's dimension names where the given one has none (batching matches on them).
 */
function withDimParams(given: Signature, read: Signature): Signature {
  const fill = (mine: TensorSpec[], theirs: TensorSpec[]) =>
    mine.map((t) => {
      if (t.dimParams) return t;
      const m = theirs.find((x) => x.name === t.name);
      return m?.dimParams && m.dimParams.length === t.shape.length ? { ...t, dimParams: m.dimParams } : t;
    });
  return { inputs: fill(given.inputs, read.inputs), outputs: fill(given.outputs, read.outputs), ...(given.pii ? { pii: given.pii } : {}) };
}

/**
 * A sample request body checked against the signature as a replica will decode it: valid JSON,
 * an OIP v2 `infer` body, every input present with the right datatype, shape and data.
 */
export function checkSample(name: string, signature: Signature, sample: Uint8Array): void {
  try {
    decodeOip(signature, name, sample);
  } catch (err) {
    throw MlErrors.BAD_MODEL(name, `the sample request does not fit the model's signature: ${(err as Error).message}`);
  }
}

export interface ModelSummary {
  name: string;
  latest: number;
  versions: number[];
  aliases: Record<string, number>;
  updatedAt: number;
}

export class ModelRegistry {
  #store: Promise<ObjectStore> | undefined;

  private constructor(
    readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly prefix: string,
  ) {}

  /**
   * Opens the bucket the scheduler created (`prefix` = subject prefix); the artifacts store is
   * opened on first use, so a reader of metadata only (the gateway) needs no right on it.
   */
  static async open(nc: NatsConnection, prefix = 'shoal'): Promise<ModelRegistry> {
    return new ModelRegistry(await new Kvm(nc).open(resources(prefix).buckets.models), nc, prefix);
  }

  /** The artifacts object store. */
  store(): Promise<ObjectStore> {
    this.#store ??= new Objm(this.nc).open(resources(this.prefix).stores.artifacts).catch((err: unknown) => {
      this.#store = undefined;
      throw err;
    });
    return this.#store;
  }

  // ---- writes -----------------------------------------------------------------------------------

  /** Stores the artifact (once per content), allocates the next version (CAS) and records it. */
  async register(name: string, bytes: Uint8Array, opts: RegisterOptions = {}): Promise<ModelVersion> {
    checkNames(name, opts);
    if (bytes.length === 0) throw MlErrors.BAD_MODEL(name, 'the file is empty');
    const modelSignature = await signatureOf(name, bytes, opts);
    // A processor is checked (loaded on a worker) before anything is stored; clients then see its signature.
    const proc = opts.processor ? await registerProcessor(this, name, opts.processor, modelSignature) : undefined;
    const signature = proc?.publicSignature ?? modelSignature;
    const sample = opts.sample ? await this.#putSample(name, signature, opts.sample) : undefined;
    const reference = opts.reference ? await this.#putReference(name, opts.reference) : undefined;
    const digest = sha256(bytes);
    const objName = keys.artifact(digest);
    const store = await this.store();
    const existing = await store.info(objName);
    if (!existing || existing.deleted || existing.size !== bytes.length) {
      await store.putBlob({ name: objName, description: `onnx model ${name}` }, bytes);
    }
    return this.#addVersion(name, { sha256: digest, sizeBytes: bytes.length, format: 'onnx', signature, ...(proc ? { processor: proc.ref } : {}), ...(sample ? { sample } : {}), ...(reference ? { reference } : {}) }, opts);
  }

  /**
   * Registers a pipeline (pipeline-spec.ts) from its JSON: every step model resolved (its pinned
   * version, else the one a deploy would serve: `production`, else the latest), the DAG checked
   * and its public signature derived. The spec lives in the version record; its sha256 is the
   * JSON's.
   */
  async registerPipeline(name: string, json: Uint8Array, opts: RegisterOptions = {}): Promise<ModelVersion> {
    checkNames(name, opts);
    const spec = parsePipelineSpec(name, json);
    const models: StepModel[] = await Promise.all(
      spec.steps.map(async (s): Promise<StepModel> => {
        try {
          const rec = await this.get(s.model);
          const v = s.version ?? rec.aliases.production ?? resolveRef(rec, 'latest');
          const mv = await this.version(s.model, v);
          return { model: s.model, version: mv.version, format: mv.format, signature: mv.signature };
        } catch (err) {
          return { error: MlErrors.MODEL_NOT_FOUND.is(err) ? `model ${s.model} is not registered` : (err as Error).message };
        }
      }),
    );
    const { signature } = validatePipeline(name, spec, models);
    const reference = opts.reference ? await this.#putReference(name, opts.reference) : undefined;
    return this.#addVersion(name, { sha256: sha256(json), sizeBytes: json.length, format: 'pipeline', signature, pipeline: spec, ...(reference ? { reference } : {}) }, opts);
  }

  /**
   * Registers a package (package.ts: a tarball of an ONNX graph and its external data files) from
   * a local file: unpacked into a scratch directory so onnxruntime can load the graph with its
   * data beside it (a graph it cannot load is refused with its words, and nothing is stored),
   * then stored, streamed, under its sha256 like any artifact.
   */
  async registerPackage(name: string, tarFile: string, opts: RegisterOptions = {}): Promise<ModelVersion> {
    checkNames(name, opts);
    const work = await mkdtemp(join(tmpdir(), 'shoal-register-'));
    try {
      const { graph, sha256: digest, size } = await unpackPackage(createReadStream(tarFile), work, name);
      const modelSignature = await signatureOf(name, graph, opts);
      const proc = opts.processor ? await registerProcessor(this, name, opts.processor, modelSignature) : undefined;
      const signature = proc?.publicSignature ?? modelSignature;
      const sample = opts.sample ? await this.#putSample(name, signature, opts.sample) : undefined;
      const reference = opts.reference ? await this.#putReference(name, opts.reference) : undefined;
      const objName = keys.artifact(digest);
      const store = await this.store();
      const existing = await store.info(objName);
      if (!existing || existing.deleted || existing.size !== size) {
        await store.put({ name: objName, description: `onnx package ${name}` }, Readable.toWeb(createReadStream(tarFile)) as ReadableStream<Uint8Array>);
      }
      return await this.#addVersion(name, { sha256: digest, sizeBytes: size, format: PACKAGE_FORMAT, signature, ...(proc ? { processor: proc.ref } : {}), ...(sample ? { sample } : {}), ...(reference ? { reference } : {}) }, opts);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Checks a sample request against the signature, then stores it content-addressed (once per content). */
  async #putSample(name: string, signature: Signature, sample: Uint8Array): Promise<NonNullable<ModelVersion['sample']>> {
    checkSample(name, signature, sample);
    const digest = sha256(sample);
    const store = await this.store();
    const existing = await store.info(keys.artifact(digest));
    if (!existing || existing.deleted || existing.size !== sample.length) await store.putBlob({ name: keys.artifact(digest), description: `sample request of ${name}` }, sample);
    return { sha256: digest, sizeBytes: sample.length };
  }

  /** Checks a reference profile's JSON, then stores it content-addressed (once per content). */
  async #putReference(name: string, bytes: Uint8Array): Promise<NonNullable<ModelVersion['reference']>> {
    const rows = checkReference(name, bytes);
    const digest = sha256(bytes);
    const store = await this.store();
    const existing = await store.info(keys.artifact(digest));
    if (!existing || existing.deleted || existing.size !== bytes.length) await store.putBlob({ name: keys.artifact(digest), description: `reference profile of ${name}` }, bytes);
    return { sha256: digest, sizeBytes: bytes.length, rows };
  }

  /** Claims the next version number of `name` for an artifact already stored, and moves the head. */
  async #addVersion(name: string, artifact: Pick<ModelVersion, 'sha256' | 'sizeBytes' | 'format' | 'signature' | 'processor' | 'pipeline' | 'sample' | 'reference'>, opts: RegisterOptions): Promise<ModelVersion> {
    const { sha256: digest, signature } = artifact;
    const now = Date.now();
    const head = (await this.#getRecord(name))?.record;
    // A training job's registration asked again (its first request went unanswered while
    // JetStream settled, or its coordinator was re-placed) finds the version it made: one job,
    // one version.
    const job = opts.lineage?.trainingJobId;
    if (job && head) {
      for (const v of [...head.versions].reverse()) {
        const had = await this.version(name, v).catch(() => undefined);
        if (had?.lineage?.trainingJobId === job && had.sha256 === digest) return had;
      }
    }
    // Claim the next version number by creating its (immutable) record: `create` refuses an
    // existing key, so two concurrent registrations never share a number. Then move the head.
    let version = head?.latest ?? 0;
    let mv: ModelVersion;
    for (;;) {
      version++;
      mv = {
        name,
        version,
        sha256: digest,
        sizeBytes: artifact.sizeBytes,
        format: artifact.format,
        signature,
        ...(artifact.processor ? { processor: artifact.processor } : {}),
        ...(artifact.pipeline ? { pipeline: artifact.pipeline } : {}),
        ...(artifact.sample ? { sample: artifact.sample } : {}),
        ...(artifact.reference ? { reference: artifact.reference } : {}),
        ...(opts.referenceDataset ? { referenceDataset: opts.referenceDataset } : {}),
        metrics: opts.metrics ?? {},
        lineage: opts.lineage ?? {},
        ...(opts.description ? { description: opts.description } : {}),
        ...(opts.intendedUse || opts.limitations ? { card: { ...(opts.intendedUse ? { intendedUse: opts.intendedUse } : {}), ...(opts.limitations ? { limitations: opts.limitations } : {}) } } : {}),
        ...(opts.quantization ? { quantization: opts.quantization } : {}),
        ...(opts.rejected ? { rejected: opts.rejected } : {}),
        createdAt: now,
      };
      try {
        await this.kv.create(keys.version(name, version), utf8.encode(JSON.stringify(mv)));
        break;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    await this.#mutate(name, (rec) => {
      const next: ModelRecord = rec
        ? { ...structuredClone(rec), latest: Math.max(rec.latest, version), versions: [...new Set([...rec.versions, version])].sort((a, b) => a - b), updatedAt: now }
        : { name, latest: version, versions: [version], aliases: {}, aliasHistory: {}, createdAt: now, updatedAt: now };
      for (const a of opts.aliases ?? []) moveAlias(next, a, version);
      return next;
    });
    return mv!;
  }

  /** Points `alias` at `version` (remembering where it pointed, for rollback). */
  async setAlias(name: string, alias: string, version: number): Promise<ModelRecord> {
    if (!ALIAS_RE.test(alias)) throw MlErrors.BAD_MODEL(name, `alias "${alias}" must match ${ALIAS_NAME}`);
    return this.#mutate(name, (rec) => {
      if (!rec) throw MlErrors.MODEL_NOT_FOUND(name);
      if (!rec.versions.includes(version)) throw MlErrors.MODEL_VERSION_NOT_FOUND(name, String(version));
      const next = structuredClone(rec);
      moveAlias(next, alias, version);
      next.updatedAt = Date.now();
      return next;
    });
  }

  async deleteAlias(name: string, alias: string): Promise<ModelRecord> {
    return this.#mutate(name, (rec) => {
      if (!rec) throw MlErrors.MODEL_NOT_FOUND(name);
      if (rec.aliases[alias] === undefined) throw MlErrors.MODEL_VERSION_NOT_FOUND(name, alias);
      const next = structuredClone(rec);
      delete next.aliases[alias];
      delete next.aliasHistory[alias];
      next.updatedAt = Date.now();
      return next;
    });
  }

  /** Moves `alias` back to the version it pointed at before; returns that version. */
  async rollbackAlias(name: string, alias = 'production'): Promise<{ from: number; to: number }> {
    let moved: { from: number; to: number } | undefined;
    await this.#mutate(name, (rec) => {
      if (!rec) throw MlErrors.MODEL_NOT_FOUND(name);
      const from = rec.aliases[alias];
      if (from === undefined) throw MlErrors.MODEL_VERSION_NOT_FOUND(name, alias);
      const history = [...(rec.aliasHistory[alias] ?? [])];
      const to = history.pop();
      if (to === undefined) throw MlErrors.NO_PREVIOUS_VERSION(name, alias);
      moved = { from, to };
      return { ...rec, aliases: { ...rec.aliases, [alias]: to }, aliasHistory: { ...rec.aliasHistory, [alias]: history }, updatedAt: Date.now() };
    });
    return moved!;
  }

  // ---- reads ------------------------------------------------------------------------------------

  async get(name: string): Promise<ModelRecord> {
    const v = await this.#getRecord(name);
    if (!v) throw MlErrors.MODEL_NOT_FOUND(name);
    return v.record;
  }

  async version(name: string, version: number): Promise<ModelVersion> {
    const e = await this.kv.get(keys.version(name, version));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) {
      await this.get(name); // MODEL_NOT_FOUND first, if that is the problem
      throw MlErrors.MODEL_VERSION_NOT_FOUND(name, String(version));
    }
    return parseVersion(e.value);
  }

  /**
   * Marks a registered version rejected after the fact (a pipeline candidate that failed its
   * gates: ml/pipelines): deploy, canary and promote then refuse it unless asked with allowRejected.
   */
  async markRejected(name: string, version: number, reason: string): Promise<ModelVersion> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const e = await this.kv.get(keys.version(name, version));
      if (!e || e.operation !== 'PUT' || e.value.length === 0) return this.version(name, version);
      const mv = parseVersion(e.value);
      const next: ModelVersion = { ...mv, rejected: { reason: reason.slice(0, 1000) } };
      try {
        await this.kv.update(keys.version(name, version), utf8.encode(JSON.stringify(next)), e.revision);
        return next;
      } catch {
        continue;
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(keys.version(name, version));
  }

  /** A version by number, alias, or `latest`. */
  async resolve(name: string, ref: number | string = 'latest'): Promise<ModelVersion> {
    const rec = await this.get(name);
    return this.version(name, resolveRef(rec, ref));
  }

  async list(): Promise<ModelSummary[]> {
    const names = (await kvKeys(this.kv, 'model.*')).map((k) => k.slice('model.'.length));
    const out: ModelSummary[] = [];
    for (const n of names) {
      const v = await this.#getRecord(n);
      if (v) out.push({ name: n, latest: v.record.latest, versions: v.record.versions, aliases: v.record.aliases, updatedAt: v.record.updatedAt });
    }
    return out;
  }

  async versions(name: string): Promise<ModelVersion[]> {
    const rec = await this.get(name);
    return Promise.all(rec.versions.map((v) => this.version(name, v)));
  }

  /** The ONNX bytes of a version, verified against its sha256 (ARTIFACT_CORRUPT if not). */
  async loadArtifact(name: string, version: number): Promise<{ version: ModelVersion; bytes: Uint8Array }> {
    const mv = await this.version(name, version);
    return { version: mv, bytes: await this.#verified(`${name} v${version}`, mv.sha256) };
  }

  /**
   * Stored bytes by their sha256, checked against it: ARTIFACT_MISSING when absent, ARTIFACT_CORRUPT
   * when damaged (the object store's own chunk digest failed, or the bytes are not `sha`). A read
   * JetStream cannot answer now (its stream electing a leader) is asked again for a while, then
   * fails as JETSTREAM_UNAVAILABLE — never as corrupt.
   */
  async #verified(label: string, sha: string): Promise<Uint8Array> {
    const store = await this.store();
    let bytes: Uint8Array | null;
    try {
      bytes = await retrySettling(() => store.getBlob(keys.artifact(sha)), READ_SETTLE_MS);
    } catch (err) {
      if (isJetStreamUnavailable(err)) throw err;
      throw MlErrors.ARTIFACT_CORRUPT(label, sha, `unreadable (${(err as Error).message})`);
    }
    if (!bytes) throw MlErrors.ARTIFACT_MISSING(label, sha);
    const got = sha256(bytes);
    if (got !== sha) throw MlErrors.ARTIFACT_CORRUPT(label, sha, got);
    return bytes;
  }

  /** The sample request body stored with a version (verified against its sha256), or undefined when it has none. */
  async loadSample(mv: ModelVersion): Promise<Uint8Array | undefined> {
    if (!mv.sample) return undefined;
    return this.#verified(`sample request of ${mv.name} v${mv.version}`, mv.sample.sha256);
  }

  /** The reference profile stored with a version (verified against its sha256), or undefined when it has none. */
  async loadReference(mv: ModelVersion): Promise<ReferenceProfile | undefined> {
    if (!mv.reference) return undefined;
    const bytes = await this.#verified(`reference profile of ${mv.name} v${mv.version}`, mv.reference.sha256);
    return JSON.parse(fromUtf8.decode(bytes)) as ReferenceProfile;
  }

  /**
   * What onnxruntime loads for a version: a single-file model's bytes (verified, as
   * `loadArtifact`), or the graph path of a package unpacked on this machine (cached by sha256;
   * verified when fetched).
   */
  async loadModel(name: string, version: number): Promise<{ version: ModelVersion; model: Uint8Array | string }> {
    const mv = await this.version(name, version);
    if (mv.format !== PACKAGE_FORMAT) return { version: mv, model: (await this.loadArtifact(name, version)).bytes };
    const label = `${name} v${version}`;
    const graph = await materializePackage(mv.sha256, label, async () => {
      const r = await (await this.store()).get(keys.artifact(mv.sha256));
      if (!r) throw MlErrors.ARTIFACT_MISSING(label, mv.sha256);
      // The object store checks its own digest as the stream ends (the stream then fails).
      return r.data as unknown as AsyncIterable<Uint8Array>;
    });
    return { version: mv, model: graph };
  }

  /** Every record now, then every change: for caches (the gateway's routing table). */
  async watch(onChange: (key: string, value: unknown) => void): Promise<() => void> {
    const w = await this.kv.watch({ key: '>' });
    void (async () => {
      for await (const e of w as AsyncIterable<KvEntry>) {
        if (e.operation !== 'PUT' || e.value.length === 0) onChange(e.key, undefined);
        else {
          try {
            onChange(e.key, JSON.parse(fromUtf8.decode(e.value)));
          } catch {
            /* a foreign value: ignore */
          }
        }
      }
    })();
    return () => w.stop();
  }

  // ---- internals --------------------------------------------------------------------------------

  async #getRecord(name: string): Promise<{ record: ModelRecord; revision: number } | undefined> {
    const e = await this.kv.get(keys.model(name));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    const record = JSON.parse(fromUtf8.decode(e.value)) as unknown;
    if (!checkRecord.Check(record)) throw MlErrors.REGISTRY_CONFLICT(`${keys.model(name)} (malformed)`);
    return { record, revision: e.revision };
  }

  /** Read-modify-write of the head record by CAS, retried when someone else wrote first. */
  async #mutate(name: string, fn: (rec: ModelRecord | undefined) => ModelRecord): Promise<ModelRecord> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.#getRecord(name);
      const next = fn(cur?.record);
      try {
        const data = utf8.encode(JSON.stringify(next));
        if (cur) await this.kv.update(keys.model(name), data, cur.revision);
        else await this.kv.create(keys.model(name), data);
        return next;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (attempt + 1)));
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(keys.model(name));
  }
}

/** Checks a processor module (processor.ts) and stores it content-addressed: its reference, and the public signature it declares. */
async function registerProcessor(reg: ModelRegistry, name: string, p: { bytes: Uint8Array; filename: string }, modelSignature: Signature): Promise<{ ref: ProcessorRef; publicSignature: Signature }> {
  const publicSignature = await validateProcessor(name, p.bytes, p.filename, modelSignature);
  const digest = sha256(p.bytes);
  const store = await reg.store();
  const existing = await store.info(keys.artifact(digest));
  if (!existing || existing.deleted || existing.size !== p.bytes.length) await store.putBlob({ name: keys.artifact(digest), description: `processor of ${name}` }, p.bytes);
  return { ref: { sha256: digest, sizeBytes: p.bytes.length, filename: p.filename, modelSignature }, publicSignature };
}

/** A reference profile's JSON, checked for its shape (BAD_MODEL naming what is wrong); its row count. */
export function checkReference(name: string, bytes: Uint8Array): number {
  let p: Partial<ReferenceProfile> | null;
  try {
    p = JSON.parse(fromUtf8.decode(bytes)) as Partial<ReferenceProfile> | null;
  } catch (err) {
    throw MlErrors.BAD_MODEL(name, `the reference profile is not JSON: ${(err as Error).message}`);
  }
  const bad = (why: string) => MlErrors.BAD_MODEL(name, `the reference profile ${why}`);
  if (!p || typeof p !== 'object') throw bad('must be an object');
  if (p.format !== REFERENCE_PROFILE_FORMAT) throw bad(`has format ${JSON.stringify(p.format)}; expected "${REFERENCE_PROFILE_FORMAT}" (build it with buildReferenceProfile)`);
  if (!Number.isInteger(p.rows) || p.rows! < 0) throw bad('needs rows (a non-negative integer)');
  if (!p.schema || typeof p.schema.features !== 'object' || typeof p.schema.outputs !== 'object') throw bad('needs schema.features and schema.outputs');
  if (!p.profile || typeof p.profile.features !== 'object' || typeof p.profile.outputs !== 'object') throw bad('needs profile.features and profile.outputs');
  return p.rows!;
}

function checkNames(name: string, opts: RegisterOptions): void {
  if (!MODEL_RE.test(name)) throw MlErrors.BAD_MODEL(name, `name must match ${MODEL_NAME}`);
  for (const a of opts.aliases ?? []) if (!ALIAS_RE.test(a)) throw MlErrors.BAD_MODEL(name, `alias "${a}" must match ${ALIAS_NAME}`);
}

function moveAlias(rec: ModelRecord, alias: string, version: number): void {
  const prev = rec.aliases[alias];
  if (prev === version) return;
  if (prev !== undefined) rec.aliasHistory[alias] = [...(rec.aliasHistory[alias] ?? []), prev].slice(-50);
  rec.aliases[alias] = version;
}

export function resolveRef(rec: ModelRecord, ref: number | string): number {
  if (typeof ref === 'number' || /^\d+$/.test(ref)) {
    const v = Number(ref);
    if (!rec.versions.includes(v)) throw MlErrors.MODEL_VERSION_NOT_FOUND(rec.name, String(ref));
    return v;
  }
  if (ref === 'latest') {
    if (rec.latest === 0) throw MlErrors.MODEL_VERSION_NOT_FOUND(rec.name, ref);
    return rec.latest;
  }
  const v = rec.aliases[ref];
  if (v === undefined) throw MlErrors.MODEL_VERSION_NOT_FOUND(rec.name, ref);
  return v;
}

export function parseVersion(bytes: Uint8Array): ModelVersion {
  const v = JSON.parse(fromUtf8.decode(bytes)) as unknown;
  if (!checkVersion.Check(v)) throw MlErrors.REGISTRY_CONFLICT('version record (malformed)');
  return v;
}
