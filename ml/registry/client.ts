/**
 * The thin client of the registry service: what the CLI, the gateway and node actors use to
 * change models, aliases, deployments and datasets. Each call is one request on
 * `<prefix>.registry.<op>`; artifact bytes go first to the `uploads` object store under a fresh
 * name, so a model or dataset may be far larger than one NATS message.
 *
 * Errors are the service's own (SHOAL_ERR_BAD_MODEL, …, carried in the reply headers), plus
 * SHOAL_ERR_NO_RESPONDERS when no scheduler runs the service and SHOAL_ERR_PERMISSION_DENIED
 * when the caller's role may not do the operation.
 */
import { Readable } from 'node:stream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { nuid } from '@nats-io/transport-node';
import { Errors, request, resources, retrySettling, type NatsConnection, type RegistryOp, type Subjects } from '../../cluster/index.ts';
import { ACTOR_HEADER, type AuditEntry, type AuditQuery } from '../governance/audit/log.ts';
import type { ModelCard } from '../governance/card/card.ts';
import type { StoredPolicy } from '../governance/fairness/gate.ts';
import type { FairnessPolicy } from '../governance/fairness/policy.ts';
import { serialize, type Dataset } from '../datasets/dataset.ts';
import type { DatasetVersion } from '../datasets/store.ts';
import { MlErrors } from '../errors.ts';
import { isDeployment, type Deployment } from '../serving/canary.ts';
import type { CanaryOptions, DeployOptions } from '../serving/deployments.ts';
import type { RegistryRequest } from './protocol.ts';
import { PACKAGE_FORMAT, hashing } from './package.ts';
import { ModelRegistry, sha256, type RegisterOptions } from './registry.ts';
import { keys, type ModelRecord, type ModelVersion } from './schemas.ts';

const fromUtf8 = new TextDecoder();

/** Longest a deployment change may take on the service's side beyond its own waits. */
const SLACK_MS = 30_000;
/**
 * How long to wait for a track to start: the service waits up to `readyTimeoutMs` for the spawn
 * and again for the replicas to answer, so twice that, and some slack.
 */
const startTimeout = (readyTimeoutMs = 60_000) => 2 * readyTimeoutMs + SLACK_MS;

/** How long an upload's put is asked again while JetStream settles. */
const UPLOAD_SETTLE_MS = 30_000;

export class RegistryClient {
  #uploads: Promise<ObjectStore> | undefined;
  #reader: Promise<ModelRegistry> | undefined;

  constructor(
    readonly nc: NatsConnection,
    readonly subjects: Subjects,
    /** Who asks (`cli:<user>`, `tenant:<t>`, `job:<id>`): sent as the `Shoal-Actor` header, recorded in the audit log. */
    readonly actor?: string,
  ) {}

  // ---- models ----------------------------------------------------------------------------------

  /** Uploads the ONNX file and registers it as the next version of `name`. */
  async register(name: string, bytes: Uint8Array, opts: RegisterOptions = {}): Promise<ModelVersion> {
    if (bytes.length === 0) throw MlErrors.BAD_MODEL(name, 'the file is empty');
    const { processor, sample, reference, ...rest } = opts;
    return this.#withReference(name, reference, (r) =>
      this.#withSample(name, sample, (s) =>
        this.#withProcessor(processor, (proc) => this.#withUpload(bytes, `onnx model ${name}`, (upload) => this.#call('register', { name, ...upload, ...rest, ...proc, ...s, ...r }, 120_000))),
      ),
    );
  }

  /**
   * Registers a pipeline model (ml/registry/pipeline-spec.ts): its spec (a value, or JSON bytes)
   * goes up as the upload; the service checks it against the step models and derives its signature.
   */
  async registerPipeline(name: string, spec: Uint8Array | object, opts: Omit<RegisterOptions, 'processor' | 'signature' | 'sample'> = {}): Promise<ModelVersion> {
    const json = spec instanceof Uint8Array ? spec : new TextEncoder().encode(JSON.stringify(spec));
    return this.#withUpload(json, `pipeline ${name}`, (upload) => this.#call('register', { name, ...upload, format: 'pipeline', ...opts }, 60_000));
  }

  /** Uploads a processor module first (when there is one) and hands `fn` the request's `processor` field. */
  async #withProcessor<T>(p: RegisterOptions['processor'], fn: (field: { processor?: { upload: string; sha256: string; filename: string } }) => Promise<T>): Promise<T> {
    if (!p) return fn({});
    if (p.bytes.length === 0) throw MlErrors.BAD_MODEL(p.filename, 'the processor file is empty');
    return this.#withUpload(p.bytes, `processor ${p.filename}`, (u) => fn({ processor: { ...u, filename: p.filename } }));
  }

  /**
   * Uploads a package — a tarball of an ONNX graph and its external data files, as a stream
   * (`packDirectory(dir)`, or a `.tar` file's read stream) — and registers it as the next version
   * of `name`. The stream is hashed as it goes up; nothing of it is held in memory.
   */
  async registerPackage(name: string, tarball: AsyncIterable<Uint8Array>, opts: RegisterOptions = {}): Promise<ModelVersion> {
    const { processor, sample, reference, ...rest } = opts;
    return this.#withReference(name, reference, (r) =>
      this.#withSample(name, sample, (s) =>
        this.#withProcessor(processor, (proc) => this.#withUpload(tarball, `onnx package ${name}`, (upload) => this.#call('register', { name, ...upload, format: PACKAGE_FORMAT, ...rest, ...proc, ...s, ...r }, 600_000))),
      ),
    );
  }

  /** Uploads a sample request first (when there is one) and hands `fn` the request field naming it. */
  async #withSample<T>(name: string, sample: Uint8Array | undefined, fn: (s: { sample?: { upload: string; sha256: string } }) => Promise<T>): Promise<T> {
    if (!sample) return fn({});
    if (sample.length === 0) throw MlErrors.BAD_MODEL(name, 'the sample request is empty');
    return this.#withUpload(sample, `sample request of ${name}`, (upload) => fn({ sample: upload }));
  }

  /** Uploads a reference profile first (when there is one): a `ReferenceProfile` value or its JSON bytes. */
  async #withReference<T>(name: string, reference: Uint8Array | undefined, fn: (r: { reference?: { upload: string; sha256: string } }) => Promise<T>): Promise<T> {
    if (!reference) return fn({});
    if (reference.length === 0) throw MlErrors.BAD_MODEL(name, 'the reference profile is empty');
    return this.#withUpload(reference, `reference profile of ${name}`, (upload) => fn({ reference: upload }));
  }

  async setAlias(name: string, alias: string, version: number): Promise<ModelRecord> {
    return this.#call('alias', { name, alias, version });
  }

  async deleteAlias(name: string, alias: string): Promise<ModelRecord> {
    return this.#call('delete-alias', { name, alias });
  }

  /** Moves `alias` back to the version it pointed at before. */
  async rollbackAlias(name: string, alias = 'production'): Promise<{ from: number; to: number }> {
    return this.#call('rollback-alias', { name, alias });
  }

  // ---- deployments -----------------------------------------------------------------------------

  async deploy(name: string, opts: DeployOptions & Governed = {}): Promise<Deployment> {
    return this.#call('deploy', { name, ...opts }, startTimeout(opts.readyTimeoutMs));
  }

  async canary(name: string, opts: CanaryOptions & Governed): Promise<Deployment> {
    return this.#call('canary', { name, ...opts }, startTimeout(opts.readyTimeoutMs));
  }

  async setWeight(name: string, weight: number): Promise<Deployment> {
    return this.#call('weight', { name, weight });
  }

  /** The canary becomes stable (first scaled to the stable's capacity); `production` moves to it. */
  async promote(name: string, opts: Governed & { allowRejected?: boolean } = {}): Promise<Deployment> {
    return this.#call('promote', { name, ...opts }, startTimeout());
  }

  /** Rolls the canary back (only if it is still `expectVersion`, when given); false if there was none. */
  async rollback(name: string, reason: string, expectVersion?: number): Promise<boolean> {
    const r = await this.#call<{ rolledBack: boolean }>('abort', { name, reason, expectVersion }, SLACK_MS);
    return r.rolledBack;
  }

  async undeploy(name: string): Promise<void> {
    await this.#call('undeploy', { name }, SLACK_MS);
  }

  /** The deployment record of `name` (a read of the models bucket), or undefined. */
  async deployment(name: string): Promise<Deployment | undefined> {
    const reg = await this.reader();
    const e = await reg.kv.get(keys.deployment(name));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    const dep = JSON.parse(fromUtf8.decode(e.value)) as unknown;
    if (!isDeployment.Check(dep)) throw MlErrors.REGISTRY_CONFLICT(`${keys.deployment(name)} (malformed)`);
    return dep;
  }

  /** The registry for reads (records, versions, artifacts). */
  reader(): Promise<ModelRegistry> {
    this.#reader ??= ModelRegistry.open(this.nc, this.subjects.prefix).catch((err: unknown) => {
      this.#reader = undefined;
      throw err;
    });
    return this.#reader;
  }

  // ---- governance (ml/governance) ------------------------------------------------------------------

  /** Sets (`null`: clears) the model's fairness policy; refused when it names an undeclared attribute. */
  async setFairnessPolicy(name: string, policy: FairnessPolicy | null, reason?: string): Promise<{ name: string; policy: StoredPolicy | null }> {
    return this.#call('fairness-policy', { name, policy, reason });
  }

  /** The model card of `name` at `version` (a number or an alias). */
  async card(name: string, version: number | string): Promise<ModelCard> {
    return this.#call('card', { name, version });
  }

  /** Audit log entries, oldest first. */
  async audit(q: AuditQuery = {}): Promise<AuditEntry[]> {
    return (await this.#call<{ entries: AuditEntry[] }>('audit', { ...q }, 30_000)).entries;
  }

  // ---- datasets --------------------------------------------------------------------------------

  /** Uploads `d` and registers it under `name` (the same content twice is the same version). */
  async registerDataset(name: string, d: Dataset, opts: { splitSeed?: number; source?: string } = {}): Promise<DatasetVersion> {
    return this.#withUpload(serialize(d), `dataset ${name}`, (upload) => this.#call('register-dataset', { name, ...upload, ...opts }, 120_000));
  }

  // ---- internals -------------------------------------------------------------------------------

  async #call<R>(op: RegistryOp, body: RegistryRequest<RegistryOp>, timeoutMs = 15_000): Promise<R> {
    return request<R>(this.nc, this.subjects.registry(op), compact(body), { timeoutMs, ...(this.actor ? { headers: { [ACTOR_HEADER]: this.actor } } : {}) });
  }

  /**
   * Puts `bytes` in the uploads store under a fresh name and runs `fn` with `{ upload, sha256 }`.
   * The service deletes the upload once it has taken it; here it is deleted only when the request
   * never reached a service (an upload nobody takes expires from the store after a day).
   */
  async #withUpload<T>(content: Uint8Array | AsyncIterable<Uint8Array>, description: string, fn: (u: { upload: string; sha256: string }) => Promise<T>): Promise<T> {
    // Opening the store and putting bytes in memory are asked again while JetStream settles (a
    // stream electing a leader after a server died); a put under the same fresh name replaces.
    this.#uploads ??= retrySettling(() => new Objm(this.nc).open(resources(this.subjects.prefix).stores.uploads), UPLOAD_SETTLE_MS).catch((err: unknown) => {
      this.#uploads = undefined;
      throw err;
    });
    const uploads = await this.#uploads;
    const upload = `upload-${nuid.next()}`;
    let digest: string;
    if (content instanceof Uint8Array) {
      await retrySettling(() => uploads.putBlob({ name: upload, description }, content), UPLOAD_SETTLE_MS);
      digest = sha256(content);
    } else {
      const { stream, result } = hashing(content);
      await uploads.put({ name: upload, description }, Readable.toWeb(Readable.from(stream)) as ReadableStream<Uint8Array>);
      digest = result().sha256;
    }
    try {
      return await fn({ upload, sha256: digest });
    } catch (err) {
      if (Errors.NO_RESPONDERS.is(err) || Errors.PERMISSION_DENIED.is(err)) await uploads.delete(upload).catch(() => undefined);
      throw err;
    }
  }
}

/** Deploy, canary and promote may override the fairness gate, with a reason (audited). */
export interface Governed {
  fairnessOverride?: { reason: string };
}

/** Drops undefined fields (MessagePack would send them as nil, which the schemas refuse). */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
