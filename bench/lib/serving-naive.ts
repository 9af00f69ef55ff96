/**
 * Baselines for `npm run bench:serving`, one process each:
 *   --mode echo   a bare Fastify route that returns the body (the ceiling)
 *   --mode naive  what a user would write: Fastify + onnxruntime, one `session.run` per request
 * Prints `listening <port>` when ready.
 */
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';
import { channelSumModel, mlpModel } from '../../test/fixtures/onnx.ts';
import { TOKEN_STACK, tokenStackModel } from '../../test/fixtures/onnx-real.ts';

const mode = process.argv[process.argv.indexOf('--mode') + 1];
// 64 MiB, as Shoal's gateway: the large-tensor row sends 16 MiB bodies.
const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });

if (mode === 'echo') {
  app.post('/v2/models/mlp/infer', async (req) => req.body);
} else {
  const session = await ort.InferenceSession.create(mlpModel({ seed: 1 }), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
  app.post('/v2/models/mlp/infer', async (req, reply) => {
    const body = req.body as { id?: string; inputs: { name: string; shape: number[]; data: unknown[] }[] };
    const inp = body.inputs?.[0];
    if (!inp || inp.shape.length !== 2 || inp.shape[1] !== 32) return reply.status(400).send({ error: 'bad input' });
    const x = Float32Array.from((inp.data as unknown[]).flat(2) as number[]);
    if (x.length !== inp.shape[0]! * 32) return reply.status(400).send({ error: 'bad input' });
    const out = await session.run({ X: new ort.Tensor('float32', x, inp.shape) });
    const y = out.Y as ort.Tensor;
    return { model_name: 'mlp', model_version: '1', id: body.id, outputs: [{ name: 'Y', datatype: 'FP32', shape: y.dims, data: Array.from(y.data as Float32Array) }] };
  });
  // The large-tensor row: an image model's reduction, the OIP binary tensor data extension in, JSON out.
  const pool = await ort.InferenceSession.create(channelSumModel(), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.post('/v2/models/pool/infer', async (req, reply) => {
    const raw = req.body as Buffer;
    const hl = Number(req.headers['inference-header-content-length']);
    const head = JSON.parse(raw.subarray(0, hl).toString()) as { inputs: { name: string; shape: number[] }[] };
    const shape = head.inputs[0]?.shape ?? [];
    // A copy: the bytes after the header need not be 4-byte aligned.
    const x = new Float32Array(raw.buffer.slice(raw.byteOffset + hl, raw.byteOffset + raw.length));
    if (shape.length !== 4 || x.length !== shape.reduce((a, b) => a * b, 1)) return reply.status(400).send({ error: 'bad input' });
    const y = (await pool.run({ X: new ort.Tensor('float32', x, shape) })).Y as ort.Tensor;
    return { model_name: 'pool', model_version: '1', outputs: [{ name: 'Y', datatype: 'FP32', shape: y.dims, data: Array.from(y.data as Float32Array) }] };
  });
  // The compute-heavy row: more than 10 ms a row, one session on this event loop.
  const heavy = await ort.InferenceSession.create(tokenStackModel(), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
  app.post('/v2/models/heavy/infer', async (req, reply) => {
    const body = req.body as { id?: string; inputs: { name: string; shape: number[]; data: unknown[] }[] };
    const inp = body.inputs?.[0];
    if (!inp || inp.shape.length !== 2 || inp.shape[1] !== TOKEN_STACK.dim) return reply.status(400).send({ error: 'bad input' });
    const x = Float32Array.from((inp.data as unknown[]).flat(2) as number[]);
    if (x.length !== inp.shape[0]! * TOKEN_STACK.dim) return reply.status(400).send({ error: 'bad input' });
    const y = (await heavy.run({ X: new ort.Tensor('float32', x, inp.shape) })).Y as ort.Tensor;
    return { model_name: 'heavy', model_version: '1', id: body.id, outputs: [{ name: 'Y', datatype: 'FP32', shape: y.dims, data: Array.from(y.data as Float32Array) }] };
  });
}
await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
