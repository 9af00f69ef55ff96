/**
 * A session worker thread (see session-pool.ts): holds one onnxruntime session and runs what the
 * replica posts to it, one run at a time, posting the outputs back with their buffers transferred.
 * Errors go back as plain `{ message }` (onnxruntime's own words, first line).
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { transferables, type PoolTensor, type SessionValueInfo, type WorkerReply, type WorkerRequest } from './session-pool.ts';

const port = parentPort!;
let session: ort.InferenceSession | undefined;

/** onnxruntime's message on one line (its detail, e.g. which index and what it expected, is on the next ones). */
const firstLine = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim()).filter(Boolean).join(' ').slice(0, 1000) || 'onnxruntime error';

function post(m: WorkerReply, transfer: ArrayBuffer[] = []): void {
  try {
    port.postMessage(m, transfer);
  } catch {
    // A buffer the runtime will not let go of: send a copy.
    port.postMessage(m);
  }
}

const info = (m: ort.InferenceSession.ValueMetadata): SessionValueInfo =>
  m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] as (number | string)[] } : { name: m.name, isTensor: false };

async function load(model: Uint8Array | string, intraOpThreads: number): Promise<void> {
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: intraOpThreads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
  session = await (typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options));
  post({ type: 'loaded', inputs: session.inputMetadata.map(info), outputs: session.outputMetadata.map(info) });
}

async function run(id: number, feeds: Record<string, PoolTensor>): Promise<void> {
  const s = session;
  if (!s) throw new Error('no session loaded');
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.type as never, t.data as never, t.dims);
  const res = await s.run(ortFeeds);
  const outputs: Record<string, PoolTensor> = {};
  for (const [name, v] of Object.entries(res)) {
    const t = v as ort.Tensor;
    outputs[name] = { type: t.type, dims: t.dims, data: t.data as PoolTensor['data'] };
  }
  post({ type: 'ran', id, outputs }, transferables(Object.values(outputs)));
}

port.on('message', (m: WorkerRequest) => {
  switch (m.type) {
    case 'load':
      load(m.model, m.options.intraOpThreads).catch((err: unknown) => post({ type: 'failed', message: firstLine(err) }));
      return;
    case 'run':
      run(m.id, m.feeds).catch((err: unknown) => post({ type: 'failed', id: m.id, message: firstLine(err) }));
      return;
    case 'release':
      void (async () => {
        await session?.release().catch(() => undefined);
        session = undefined;
        post({ type: 'released' });
      })();
  }
});
