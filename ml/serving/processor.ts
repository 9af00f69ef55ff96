/**
 * Pre/post-processing modules (the "prediction service" pattern: KServe's transformers, Triton's
 * Python backend): a TypeScript or JavaScript module registered with a model version
 * (`shoal models register NAME FILE.onnx --processor proc.ts`), stored content-addressed by
 * sha256 beside the model, and run by each replica on a worker thread of its own — never on the
 * gateway, never on the replica's event loop. It exports:
 *
 *   signature                      the PUBLIC inputs/outputs ({inputs, outputs: [{name, datatype, shape}]}):
 *                                  what metadata shows and what every codec decodes and encodes against
 *   preprocess(inputs, ctx)        public input tensors → the ONNX model's input tensors (per request, before batching)
 *   postprocess(outputs, request)  the model's output tensors (this request's rows) → public output tensors
 *
 * Tensors are `{datatype, shape, data}` keyed by name; `data` is a typed array of the datatype
 * (a plain number array is accepted from the module), or strings for BYTES. `ctx` is `{model,
 * version, id}`; `request` is `{inputs, ctx}` (the public inputs). Either function may be
 * absent (identity), not both. Either may be async.
 *
 * A module that throws fails only its request: SHOAL_ERR_PREPROCESS / SHOAL_ERR_POSTPROCESS (500)
 * with its message, or SHOAL_ERR_BAD_INPUT (400) when the thrown error says `code:
 * 'SHOAL_ERR_BAD_INPUT'` or `status: 400`. What preprocess gives is checked against the model's
 * signature (names, datatypes, ranks, fixed dims, lengths), what postprocess gives against the
 * public one, each error naming the tensor. A call not answered within 30 s fails the same way
 * and the worker is restarted; so is one whose worker died (the next call starts a new one).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { ObjectStore } from '@nats-io/obj';
import { errorCode } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { packageCacheDir } from '../registry/package.ts';
import type { ProcessorRef } from '../registry/pipeline-spec.ts';
import { Signature, keys, type ModelVersion } from '../registry/schemas.ts';
import { allocate, fromJson, numel, type TensorData, type TensorSpec, type TypedArray } from '../tensor.ts';
import type { Decoded, Outputs } from './codecs/index.ts';
import { PROCESSOR_FILENAME, ProcessorHost, type LoadedModule, type ProcessorTensor, type ProcessorTensors } from './processor-host.ts';

export { PROCESSOR_FILENAME, ProcessorHost, type LoadedModule, type ProcessorContext, type ProcessorTensor, type ProcessorTensors } from './processor-host.ts';

const checkSignature = TypeCompiler.Compile(Signature);
/** Beside the module wherever it is written: `.ts`/`.js` are then ES modules, whatever directory holds them. */
const ESM_PACKAGE = '{"type":"module"}\n';

// ---- checks ------------------------------------------------------------------------------------

const isTensorLike = (v: unknown): v is ProcessorTensor => typeof v === 'object' && v !== null && 'datatype' in v && 'shape' in v && 'data' in v;

/**
 * A tensor the module gave, checked against `spec` and made the typed array serving uses.
 * Returns an error message (naming the tensor) instead of throwing, so the caller picks the code.
 */
function toSpec(spec: TensorSpec, t: unknown, what: string): { data: TensorData; shape: number[] } | string {
  const name = `${what} "${spec.name}"`;
  if (!isTensorLike(t)) return `${name} is not a tensor ({datatype, shape, data})`;
  if (t.datatype !== spec.datatype) return `${name} is ${String(t.datatype)} where ${spec.datatype} is expected`;
  const shape = t.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `${name}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`;
  if (shape.length !== spec.shape.length) return `${name}: shape [${shape.join(', ')}] has rank ${shape.length}, expected [${spec.shape.join(', ')}]`;
  for (let d = 0; d < shape.length; d++) if (spec.shape[d]! >= 0 && spec.shape[d] !== shape[d]) return `${name}: dimension ${d} is ${shape[d]}, expected [${spec.shape.join(', ')}]`;
  const n = numel(shape);
  const data = t.data as unknown;
  if ((spec.datatype as string) === 'BYTES') {
    if (!Array.isArray(data) || !data.every((s) => typeof s === 'string')) return `${name}: BYTES data must be a list of strings`;
    if (data.length !== n) return `${name}: shape [${shape.join(', ')}] needs ${n} elements, got ${data.length}`;
    return { data: data as string[], shape };
  }
  if (Array.isArray(data)) {
    try {
      return { data: fromJson(spec.name, spec.datatype, shape, data), shape };
    } catch (err) {
      return `${name}: ${(err as Error).message}`;
    }
  }
  const want = allocate(spec.datatype, 0).constructor;
  if (!ArrayBuffer.isView(data) || data.constructor !== want) return `${name}: data must be a ${want.name} (or a list of numbers) for ${spec.datatype}, got ${data === null ? 'null' : ArrayBuffer.isView(data) ? data.constructor.name : typeof data}`;
  if ((data as TypedArray).length !== n) return `${name}: shape [${shape.join(', ')}] needs ${n} elements, got ${(data as TypedArray).length}`;
  return { data: data as TypedArray, shape };
}

/**
 * The processor of one replica: wraps the replica's decode → batch → encode with preprocess
 * (after decoding against the public signature) and postprocess (before encoding against it).
 */
export class RequestProcessor {
  constructor(
    readonly host: ProcessorHost,
    readonly label: string,
    readonly ctx: { model: string; version: number },
    readonly publicSignature: Signature,
    readonly modelSignature: Signature,
  ) {}

  /** A request decoded against the public signature → the model's inputs, and the id `post` needs. */
  async pre(d: Decoded): Promise<{ model: Decoded; id: number }> {
    const inputs: ProcessorTensors = {};
    this.publicSignature.inputs.forEach((spec, i) => {
      inputs[spec.name] = { datatype: spec.datatype, shape: d.shapes[i]!, data: d.inputs[i] as TensorData };
    });
    const id = this.host.nextId();
    const got = await this.host.pre(id, inputs, { ...this.ctx, id: d.id });
    try {
      const fail = (why: string) => MlErrors.PREPROCESS(this.label, why);
      if (typeof got !== 'object' || got === null) throw fail(`preprocess must return {name: tensor}, got ${got === null ? 'null' : typeof got}`);
      const res = got as Record<string, unknown>;
      for (const k of Object.keys(res)) if (!this.modelSignature.inputs.some((s) => s.name === k)) throw fail(`preprocess gave "${k}", which is not an input of the model (inputs: ${this.modelSignature.inputs.map((s) => s.name).join(', ')})`);
      const model: Decoded = { inputs: [], shapes: [], outputs: undefined, id: d.id };
      for (const spec of this.modelSignature.inputs) {
        if (!(spec.name in res)) throw fail(`preprocess gave no tensor for model input "${spec.name}" (${spec.datatype} [${spec.shape.join(', ')}])`);
        const t = toSpec(spec, res[spec.name], 'model input');
        if (typeof t === 'string') throw fail(`preprocess output does not fit the model: ${t}`);
        (model.inputs as unknown[]).push(t.data);
        model.shapes.push(t.shape);
      }
      return { model, id };
    } catch (err) {
      this.host.forget(id);
      throw err;
    }
  }

  /** The model's outputs for request `id` → its public outputs. */
  async post(id: number, outs: Outputs): Promise<Outputs> {
    const outputs: ProcessorTensors = {};
    for (const spec of this.modelSignature.outputs) {
      const t = outs.get(spec.name);
      if (t) outputs[spec.name] = { datatype: spec.datatype, shape: [...t.dims], data: t.data as TensorData };
    }
    const got = await this.host.post(id, outputs);
    const fail = (why: string) => MlErrors.POSTPROCESS(this.label, why);
    if (typeof got !== 'object' || got === null) throw fail(`postprocess must return {name: tensor}, got ${got === null ? 'null' : typeof got}`);
    const res = got as Record<string, unknown>;
    const out: Outputs = new Map();
    for (const [k, v] of Object.entries(res)) {
      const spec = this.publicSignature.outputs.find((s) => s.name === k);
      if (!spec) throw fail(`postprocess gave "${k}", which is not an output of the public signature (outputs: ${this.publicSignature.outputs.map((s) => s.name).join(', ')})`);
      const t = toSpec(spec, v, 'output');
      if (typeof t === 'string') throw fail(t);
      out.set(k, { data: t.data as TypedArray, dims: t.shape });
    }
    for (const spec of this.publicSignature.outputs) if (!out.has(spec.name)) throw fail(`postprocess gave no tensor for output "${spec.name}"`);
    return out;
  }

  /** Drops the worker's copy of a request whose batch failed. */
  forget(id: number): void {
    this.host.forget(id);
  }

  close(): Promise<void> {
    return this.host.close();
  }
}

// ---- registration and loading ------------------------------------------------------------------

/** Two signature entries a tensor may pass between unchanged (same datatype, compatible shape). */
const fits = (a: TensorSpec, b: TensorSpec) => a.datatype === b.datatype && a.shape.length === b.shape.length && a.shape.every((d, i) => d < 0 || b.shape[i]! < 0 || d === b.shape[i]);

/**
 * Loads a module in a throw-away worker and checks its exports: a well-formed `signature`, and
 * `preprocess` and/or `postprocess` functions (where one is absent, the public side it would map
 * must be the model's). Returns the public signature; SHOAL_ERR_BAD_MODEL otherwise.
 */
export async function validateProcessor(name: string, bytes: Uint8Array, filename: string, modelSignature: Signature): Promise<Signature> {
  const bad = (why: string) => MlErrors.BAD_MODEL(name, `processor ${filename}: ${why}`);
  if (!PROCESSOR_FILENAME.test(filename)) throw bad('the file name must end in .ts, .mts, .js or .mjs (letters, digits, _ . - only)');
  if (bytes.length === 0) throw bad('the file is empty');
  const dir = await mkdtemp(join(tmpdir(), 'shoal-processor-'));
  const file = join(dir, filename);
  await writeFile(join(dir, 'package.json'), ESM_PACKAGE);
  await writeFile(file, bytes);
  const host = new ProcessorHost(file);
  try {
    let m: LoadedModule;
    try {
      m = await host.load();
    } catch (err) {
      throw bad((err as Error).message.replace(/^model ".*?" cannot be registered: /, ''));
    }
    if (m.signature === undefined) throw bad(`it exports no \`signature\` (its exports: ${m.exports.join(', ') || 'none'})`);
    if (!checkSignature.Check(m.signature)) {
      const e = checkSignature.Errors(m.signature).First();
      throw bad(`its \`signature\` is malformed at ${e?.path || '/'}: ${e?.message ?? 'invalid'} (expected {inputs, outputs: [{name, datatype, shape}]})`);
    }
    const sig = m.signature;
    if (!m.preprocess && !m.postprocess) throw bad(`it exports neither a \`preprocess\` nor a \`postprocess\` function (its exports: ${m.exports.join(', ') || 'none'})`);
    if (sig.inputs.length === 0 || sig.outputs.length === 0) throw bad('its signature needs at least one input and one output');
    for (const side of ['inputs', 'outputs'] as const) {
      const names = sig[side].map((t) => t.name);
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) throw bad(`its signature names ${side.slice(0, -1)} "${dup}" twice`);
    }
    if (!m.preprocess) {
      for (const spec of modelSignature.inputs) {
        const p = sig.inputs.find((t) => t.name === spec.name);
        if (!p || !fits(p, spec)) throw bad(`it has no preprocess, so its public inputs must be the model's, but model input "${spec.name}" (${spec.datatype} [${spec.shape.join(', ')}]) ${p ? `is public ${p.datatype} [${p.shape.join(', ')}]` : 'is missing'}`);
      }
    }
    if (!m.postprocess) {
      for (const p of sig.outputs) {
        const spec = modelSignature.outputs.find((t) => t.name === p.name);
        if (!spec || !fits(p, spec)) throw bad(`it has no postprocess, so its public outputs must be the model's, but output "${p.name}" ${spec ? `is ${spec.datatype} [${spec.shape.join(', ')}] in the model` : 'is not a model output'}`);
      }
    }
    return sig;
  } finally {
    await host.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The module of a version on this machine: from the node's cache (by sha256) or fetched from
 * the artifacts store, verified, and written there (privately, then renamed into place).
 */
export async function materializeProcessor(store: ObjectStore, label: string, ref: ProcessorRef, cacheDir = join(packageCacheDir(), 'processors')): Promise<string> {
  const dir = join(cacheDir, ref.sha256);
  const file = join(dir, ref.filename);
  if (await stat(file).then(() => true, () => false)) return file;
  let bytes: Uint8Array | null;
  try {
    bytes = await store.getBlob(keys.artifact(ref.sha256));
  } catch (err) {
    throw MlErrors.ARTIFACT_CORRUPT(`${label} (processor)`, ref.sha256, `unreadable (${(err as Error).message})`);
  }
  if (!bytes) throw MlErrors.ARTIFACT_MISSING(`${label} (processor)`, ref.sha256);
  const got = createHash('sha256').update(bytes).digest('hex');
  if (got !== ref.sha256) throw MlErrors.ARTIFACT_CORRUPT(`${label} (processor)`, ref.sha256, got);
  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, `${ref.sha256}.partial-`));
  try {
    await writeFile(join(work, 'package.json'), ESM_PACKAGE);
    await writeFile(join(work, ref.filename), bytes);
    try {
      await rename(work, dir);
    } catch (err) {
      // Another replica on this machine got there first: theirs is the same bytes.
      if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
    return file;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The replica's side (the inference actor's hook): for a version with a processor, its module
 * loaded on a worker thread; undefined for one without. The model's own signature is
 * `mv.processor.modelSignature`; clients see `mv.signature`.
 */
export async function startProcessor(store: () => Promise<ObjectStore>, mv: ModelVersion): Promise<RequestProcessor | undefined> {
  if (!mv.processor) return undefined;
  const label = `${mv.name} v${mv.version}`;
  const file = await materializeProcessor(await store(), label, mv.processor);
  const host = new ProcessorHost(file, label);
  try {
    await host.load();
  } catch (err) {
    await host.close();
    throw MlErrors.PREPROCESS(label, `its processor module does not load here: ${(err as Error).message}`);
  }
  return new RequestProcessor(host, label, { model: mv.name, version: mv.version }, mv.signature, mv.processor.modelSignature);
}

/** The version as the replica's model sees it: the ONNX file's own signature. */
export function modelView(mv: ModelVersion): ModelVersion {
  return mv.processor ? { ...mv, signature: mv.processor.modelSignature } : mv;
}

/** Whether an error came from a processor module (so it counts as the module's, not onnxruntime's). */
export const isProcessorError = (err: unknown): boolean => {
  const c = errorCode(err);
  return c === MlErrors.PREPROCESS.code || c === MlErrors.POSTPROCESS.code;
};
