/**
 * `POST /v1/models/{name}/predict` for callers who do not want tensors: `{"instances": [row, …]}`
 * where a row is an array (single-input models) or an object by input name; the answer is
 * `{"predictions": [row, …]}` from the first output (or all outputs by name with several).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { MlErrors, type Signature } from '../../ml/index.ts';
import type { InferenceService, OipInput, OipOutput } from '../inference.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PredictBody = Type.Object({
  instances: Type.Array(Type.Union([Type.Array(Type.Unknown()), Type.Record(Type.String(), Type.Unknown())]), { minItems: 1, maxItems: 65_536 }),
  id: Type.Optional(Type.String({ maxLength: 256 })),
});

function dimsOf(v: unknown): number[] {
  const dims: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    dims.push(cur.length);
    cur = cur[0];
  }
  return dims;
}

/** Rows → OIP inputs: shape [rows, …dims of a row], datatype from the signature. */
export function rowsToInputs(sig: Signature, instances: unknown[]): OipInput[] {
  if (instances.every(Array.isArray)) {
    if (sig.inputs.length !== 1) throw MlErrors.BAD_INPUT(`the model takes ${sig.inputs.length} inputs (${sig.inputs.map((s) => s.name).join(', ')}): send each instance as an object by input name`);
    const spec = sig.inputs[0]!;
    return [{ name: spec.name, datatype: spec.datatype, shape: [instances.length, ...dimsOf(instances[0])], data: instances }];
  }
  if (instances.some(Array.isArray)) throw MlErrors.BAD_INPUT('instances must be all arrays or all objects');
  return sig.inputs.map((spec) => {
    const col = instances.map((row, i) => {
      const v = (row as Record<string, unknown>)[spec.name];
      if (v === undefined) throw MlErrors.BAD_INPUT(`instance ${i} has no "${spec.name}"`);
      return v;
    });
    return { name: spec.name, datatype: spec.datatype, shape: [instances.length, ...dimsOf(col[0])], data: col };
  });
}

function splitRows(o: OipOutput): unknown[] {
  const n = o.shape[0] ?? 1;
  const per = n > 0 ? o.data.length / n : 0;
  const rest = o.shape.slice(1);
  const nest = (flat: unknown[], dims: number[]): unknown => {
    if (dims.length <= 1) return flat;
    const step = flat.length / dims[0]!;
    return Array.from({ length: dims[0]! }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), dims.slice(1)));
  };
  return Array.from({ length: n }, (_, i) => {
    const row = (o.data as unknown[]).slice(i * per, (i + 1) * per);
    return rest.length === 0 ? row[0] : nest(row, rest);
  });
}

export function registerV1Routes(app: App, inference: InferenceService): void {
  app.post(
    '/v1/models/:name/predict',
    {
      schema: {
        tags: ['v1'],
        summary: 'Predict from JSON rows',
        params: Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
        body: PredictBody,
      },
    },
    async (req, reply) => {
      const name = req.params.name;
      const key = typeof req.headers['x-shoal-route-key'] === 'string' ? req.headers['x-shoal-route-key'] : undefined;
      const target = inference.catalog.resolve(name, undefined, key);
      const inputs = rowsToInputs(target.signature, req.body.instances);
      const res = await inference.infer(name, String(target.version), key, { inputs, ...(req.body.id ? { id: req.body.id } : {}) });
      void reply.header('x-shoal-model-version', res.model_version).header('x-shoal-route', target.route);
      const predictions =
        res.outputs.length === 1
          ? splitRows(res.outputs[0]!)
          : (() => {
              const cols = res.outputs.map((o) => [o.name, splitRows(o)] as const);
              return Array.from({ length: cols[0]?.[1].length ?? 0 }, (_, i) => Object.fromEntries(cols.map(([n, rows]) => [n, rows[i]])));
            })();
      return { model_name: name, model_version: res.model_version, ...(req.body.id ? { id: req.body.id } : {}), predictions };
    },
  );
}
