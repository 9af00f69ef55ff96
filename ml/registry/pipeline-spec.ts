/**
 * Pipeline models (Triton's ensembles): a version whose format is `pipeline` is a DAG of other
 * registered models served under one name. Each step names a model (and optionally a pinned
 * version), feeds each of the step model's inputs from a pipeline tensor (`input_map: {stepInput:
 * pipelineTensor}`) and names the step outputs it keeps (`output_map: {stepOutput:
 * pipelineTensor}`). A pipeline tensor is a pipeline input or exactly one step's output; the
 * pipeline's outputs are step outputs.
 *
 * {@link validatePipeline} is pure (the registry resolves the step models first): every step
 * input fed, every tensor produced once, no cycle, datatypes and shapes compatible along every
 * edge, and the public signature derived — declared datatypes and shapes, when given, must agree
 * with what the steps take and give. Every problem is SHOAL_ERR_BAD_MODEL naming the step and
 * tensor, and nothing is stored.
 *
 * Also here (not in schemas.ts, to keep it free of a cycle): the version record's reference to a
 * pre/post-processing module.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { MlErrors } from '../errors.ts';
import { DatatypeSchema, TensorSpec } from '../tensor.ts';

const Sig = Type.Object({ inputs: Type.Array(TensorSpec), outputs: Type.Array(TensorSpec) });
type Sig = Static<typeof Sig>;

/** The pre/post-processing module of a version (stored content-addressed beside its model). */
export const ProcessorRef = Type.Object({
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  sizeBytes: Type.Integer({ minimum: 0 }),
  /** The module's file name as registered (its extension tells tsx how to load it). */
  filename: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}\\.(ts|mts|js|mjs)$' }),
  /** The ONNX file's own signature (the version's `signature` is the processor's public one). */
  modelSignature: Sig,
});
export type ProcessorRef = Static<typeof ProcessorRef>;

const TensorName = Type.String({ minLength: 1, maxLength: 256 });

/** A pipeline input or output as declared; datatype and shape are derived from the steps when absent. */
export const PipelineTensor = Type.Object(
  {
    name: TensorName,
    datatype: Type.Optional(DatatypeSchema),
    shape: Type.Optional(Type.Array(Type.Integer({ minimum: -1 }), { maxItems: 16 })),
  },
  { additionalProperties: false },
);
export type PipelineTensor = Static<typeof PipelineTensor>;

export const PipelineStep = Type.Object(
  {
    /** Names the step in errors. @default the model's name (`model#i` when a model appears twice) */
    name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.#-]{1,64}$' })),
    model: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
    /** A pinned version: the step model's deployment must serve it. @default whatever its deployment serves */
    version: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Step input → the pipeline tensor that feeds it. */
    input_map: Type.Record(Type.String(), TensorName),
    /** Step output → the pipeline tensor it becomes (outputs not named here are not asked for). */
    output_map: Type.Record(Type.String(), TensorName),
  },
  { additionalProperties: false },
);
export type PipelineStep = Static<typeof PipelineStep>;

export const PipelineSpec = Type.Object(
  {
    inputs: Type.Array(PipelineTensor, { minItems: 1, maxItems: 64 }),
    outputs: Type.Array(PipelineTensor, { minItems: 1, maxItems: 64 }),
    steps: Type.Array(PipelineStep, { minItems: 1, maxItems: 64 }),
  },
  { additionalProperties: false },
);
export type PipelineSpec = Static<typeof PipelineSpec>;

const checkSpec = TypeCompiler.Compile(PipelineSpec);

/** A step's model as the registry resolved it, or why it could not. */
export type StepModel = { model: string; version: number; format: string; signature: Sig } | { error: string };

/** The step names, in spec order (explicit, else the model's name, `model#i` for repeats). */
export function stepNames(spec: PipelineSpec): string[] {
  const count = new Map<string, number>();
  for (const s of spec.steps) count.set(s.model, (count.get(s.model) ?? 0) + 1);
  return spec.steps.map((s, i) => s.name ?? (count.get(s.model)! > 1 ? `${s.model}#${i + 1}` : s.model));
}

/** Parses and schema-checks a spec (JSON bytes or a value); SHOAL_ERR_BAD_MODEL naming the field. */
export function parsePipelineSpec(name: string, source: Uint8Array | unknown): PipelineSpec {
  let v: unknown = source;
  if (source instanceof Uint8Array) {
    try {
      v = JSON.parse(new TextDecoder().decode(source));
    } catch (err) {
      throw MlErrors.BAD_MODEL(name, `the pipeline spec is not JSON: ${(err as Error).message}`);
    }
  }
  if (!checkSpec.Check(v)) {
    const e = checkSpec.Errors(v).First();
    throw MlErrors.BAD_MODEL(name, `the pipeline spec is malformed at ${e?.path || '/'}: ${e?.message ?? 'invalid'} (expected {inputs, outputs, steps: [{model, version?, input_map, output_map}]})`);
  }
  return v;
}

const fmt = (t: { datatype: string; shape: readonly number[] }) => `${t.datatype} [${t.shape.join(', ')}]`;

/** Two shapes that may describe the same tensor (rank equal, fixed dims equal where both are fixed); their merge. */
function mergeShape(a: readonly number[], b: readonly number[]): number[] | undefined {
  if (a.length !== b.length) return undefined;
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x >= 0 && y >= 0 && x !== y) return undefined;
    out.push(x >= 0 ? x : y);
  }
  return out;
}

/**
 * Checks a pipeline against its resolved step models and returns its public signature and an
 * order to run the steps in (a topological order; steps whose inputs are ready run at once).
 * `models[i]` is step i's model.
 */
export function validatePipeline(name: string, spec: PipelineSpec, models: readonly StepModel[]): { signature: Sig; order: number[] } {
  const bad = (why: string) => MlErrors.BAD_MODEL(name, why);
  const names = stepNames(spec);
  const label = (i: number) => (names[i] === spec.steps[i]!.model ? `step "${names[i]}"` : `step "${names[i]}" (model ${spec.steps[i]!.model})`);
  if (new Set(names).size !== names.length) throw bad(`two steps are named the same (${names.join(', ')})`);
  const pipelineInputs = new Map<string, PipelineTensor>();
  for (const t of spec.inputs) {
    if (pipelineInputs.has(t.name)) throw bad(`pipeline input "${t.name}" is declared twice`);
    pipelineInputs.set(t.name, t);
  }
  // Who produces each tensor (a step output), with its spec from the step model's signature.
  const producer = new Map<string, { step: number; spec: { datatype: string; shape: number[] } }>();
  spec.steps.forEach((s, i) => {
    const m = models[i];
    if (!m) throw bad(`${label(i)}: its model was not resolved`);
    if ('error' in m) throw bad(`${label(i)}: ${m.error}`);
    if (m.format === 'pipeline') throw bad(`${label(i)}: model ${s.model} v${m.version} is itself a pipeline; a step must be a model (pipelines do not nest)`);
    for (const [out, tensor] of Object.entries(s.output_map)) {
      const o = m.signature.outputs.find((x) => x.name === out);
      if (!o) throw bad(`${label(i)}: output_map names "${out}", which model ${s.model} v${m.version} does not have (outputs: ${m.signature.outputs.map((x) => x.name).join(', ')})`);
      if (pipelineInputs.has(tensor)) throw bad(`${label(i)}: output "${out}" → "${tensor}", which is a pipeline input; a tensor has one source`);
      const prev = producer.get(tensor);
      if (prev) throw bad(`tensor "${tensor}" is produced twice: by ${label(prev.step)} and by ${label(i)}`);
      producer.set(tensor, { step: i, spec: { datatype: o.datatype, shape: o.shape } });
    }
    if (Object.keys(s.output_map).length === 0) throw bad(`${label(i)}: output_map is empty (a step must give the pipeline something)`);
  });
  // Every step input fed, from a tensor that exists, of a compatible datatype and shape.
  const consumers = new Map<string, { datatype: string; shape: number[]; by: string }[]>();
  const deps: Set<number>[] = spec.steps.map(() => new Set());
  spec.steps.forEach((s, i) => {
    const m = models[i] as Exclude<StepModel, { error: string }>;
    for (const k of Object.keys(s.input_map)) {
      if (!m.signature.inputs.some((x) => x.name === k)) throw bad(`${label(i)}: input_map names "${k}", which model ${s.model} v${m.version} does not take (inputs: ${m.signature.inputs.map((x) => x.name).join(', ')})`);
    }
    for (const inp of m.signature.inputs) {
      const tensor = s.input_map[inp.name];
      if (tensor === undefined) throw bad(`${label(i)}: input "${inp.name}" (${fmt(inp)}) is not fed (add it to input_map)`);
      const p = producer.get(tensor);
      if (p) {
        deps[i]!.add(p.step);
        if (p.spec.datatype !== inp.datatype) throw bad(`${label(i)}: input "${inp.name}" takes ${inp.datatype} but "${tensor}" from ${label(p.step)} is ${p.spec.datatype}`);
        if (!mergeShape(p.spec.shape, inp.shape)) throw bad(`${label(i)}: input "${inp.name}" takes [${inp.shape.join(', ')}] but "${tensor}" from ${label(p.step)} is [${p.spec.shape.join(', ')}]`);
      } else if (!pipelineInputs.has(tensor)) {
        throw bad(`${label(i)}: input "${inp.name}" is fed from "${tensor}", which is neither a pipeline input nor any step's output`);
      }
      const list = consumers.get(tensor) ?? [];
      list.push({ datatype: inp.datatype, shape: inp.shape, by: `${label(i)} input "${inp.name}"` });
      consumers.set(tensor, list);
    }
  });
  // No cycle: Kahn's algorithm; the order it finds is the run order.
  const order: number[] = [];
  const indeg = deps.map((d) => d.size);
  const ready = indeg.flatMap((d, i) => (d === 0 ? [i] : []));
  while (ready.length > 0) {
    const i = ready.shift()!;
    order.push(i);
    deps.forEach((d, j) => {
      if (d.has(i) && --indeg[j]! === 0) ready.push(j);
    });
  }
  if (order.length !== spec.steps.length) {
    // Name only the steps on the cycle: drop, again and again, stuck steps no other stuck step waits on.
    const stuck = new Set(spec.steps.flatMap((_, i) => (order.includes(i) ? [] : [i])));
    for (let changed = true; changed; ) {
      changed = false;
      for (const i of stuck) {
        if (![...stuck].some((j) => deps[j]!.has(i))) {
          stuck.delete(i);
          changed = true;
        }
      }
    }
    throw bad(`the steps form a cycle: ${[...stuck].map(label).join(', ')} wait on each other`);
  }
  // The public signature: inputs from what their consumers take, outputs from their producers.
  const inputs = spec.inputs.map((t) => {
    const uses = consumers.get(t.name);
    if (!uses) throw bad(`pipeline input "${t.name}" feeds no step`);
    let datatype = t.datatype ?? uses[0]!.datatype;
    let shape: number[] | undefined = t.shape ?? uses[0]!.shape;
    for (const u of uses) {
      if (u.datatype !== datatype) throw bad(`pipeline input "${t.name}" is ${datatype}${t.datatype ? ' (declared)' : ''} but ${u.by} takes ${u.datatype}`);
      const merged = mergeShape(shape, u.shape);
      if (!merged) throw bad(`pipeline input "${t.name}" has shape [${shape.join(', ')}]${t.shape ? ' (declared)' : ''} but ${u.by} takes [${u.shape.join(', ')}]`);
      shape = t.shape ?? merged;
    }
    datatype = datatype as typeof uses[0]['datatype'];
    return { name: t.name, datatype, shape } as Sig['inputs'][number];
  });
  const seen = new Set<string>();
  const outputs = spec.outputs.map((t) => {
    if (seen.has(t.name)) throw bad(`pipeline output "${t.name}" is declared twice`);
    seen.add(t.name);
    const p = producer.get(t.name);
    if (!p) throw bad(`pipeline output "${t.name}" is no step's output (map a step output to it in output_map)`);
    if (t.datatype && t.datatype !== p.spec.datatype) throw bad(`pipeline output "${t.name}" is declared ${t.datatype} but ${label(p.step)} gives ${p.spec.datatype}`);
    if (t.shape && !mergeShape(t.shape, p.spec.shape)) throw bad(`pipeline output "${t.name}" is declared [${t.shape.join(', ')}] but ${label(p.step)} gives [${p.spec.shape.join(', ')}]`);
    return { name: t.name, datatype: p.spec.datatype, shape: t.shape ?? p.spec.shape } as Sig['outputs'][number];
  });
  return { signature: { inputs, outputs }, order };
}
