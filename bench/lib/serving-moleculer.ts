/**
 * The Moleculer comparison for `npm run bench:serving`: services over NATS (Moleculer's NATS
 * transporter, JSON serializer), the way a Node team would build it with the peer framework.
 *   --role service --nats URL   a Moleculer node with an `mlp.infer` action calling onnxruntime
 *   --role gateway --nats URL   Fastify in front, one `broker.call('mlp.infer')` per request
 * Prints `listening <port>` (gateway) or `ready` (service).
 */
import Fastify from 'fastify';
import { ServiceBroker } from 'moleculer';
import * as ort from 'onnxruntime-node';
import { mlpModel } from '../../test/fixtures/onnx.ts';

const arg = (name: string) => process.argv[process.argv.indexOf(`--${name}`) + 1]!;
const role = arg('role');
const broker = new ServiceBroker({ nodeID: `bench-${role}-${process.pid}`, transporter: arg('nats'), logger: false, requestTimeout: 10_000 });

if (role === 'service') {
  const session = await ort.InferenceSession.create(mlpModel({ seed: 1 }), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
  broker.createService({
    name: 'mlp',
    actions: {
      async infer(ctx: { params: { shape: number[]; data: number[] } }) {
        const { shape, data } = ctx.params;
        const out = await session.run({ X: new ort.Tensor('float32', Float32Array.from(data), shape) });
        const y = out.Y as ort.Tensor;
        return { shape: y.dims, data: Array.from(y.data as Float32Array) };
      },
    },
  });
  await broker.start();
  process.stdout.write('ready\n');
} else {
  await broker.start();
  await broker.waitForServices(['mlp']);
  const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 });
  app.post('/v2/models/mlp/infer', async (req, reply) => {
    const body = req.body as { id?: string; inputs: { shape: number[]; data: unknown[] }[] };
    const inp = body.inputs?.[0];
    if (!inp || inp.shape.length !== 2 || inp.shape[1] !== 32) return reply.status(400).send({ error: 'bad input' });
    const y = (await broker.call('mlp.infer', { shape: inp.shape, data: (inp.data as unknown[]).flat(2) })) as { shape: number[]; data: number[] };
    return { model_name: 'mlp', model_version: '1', id: body.id, outputs: [{ name: 'Y', datatype: 'FP32', shape: y.shape, data: y.data }] };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`);
}
process.on('SIGTERM', () => void broker.stop().then(() => process.exit(0)));
