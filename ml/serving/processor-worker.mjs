// The worker thread of a pre/post-processing module (processor.ts). Plain JavaScript on purpose:
// on Node 20 a worker thread does not inherit the parent's module hooks, so it registers tsx
// itself before importing a TypeScript module (as nodes/task-worker.mjs does).
//
// Messages in (a union on `type`): load {url}; pre {id, inputs, ctx}; post {id, outputs};
// forget {id}. Out: loaded {signature, preprocess, postprocess}; result {id, tensors};
// error {id, code, message}. A request's public inputs stay here between its `pre` and its
// `post` (the module's postprocess gets them), and are dropped on `forget` or after `post`.
// Errors cross the thread as plain {code, message} data.
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();

let mod;
/** Public inputs and context per request id, from `pre` until `post` or `forget`. */
const requests = new Map();

const fail = (id, code, err) => {
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : JSON.stringify(err);
  // A module may refuse a request as the client's fault: an error whose code is SHOAL_ERR_BAD_INPUT (or status 400).
  const own = err && typeof err === 'object' && (err.code === 'SHOAL_ERR_BAD_INPUT' || err.status === 400) ? 'SHOAL_ERR_BAD_INPUT' : code;
  parentPort.postMessage({ type: 'error', id, code: own, message: String(message ?? 'unknown error') });
};

parentPort.on('message', async (m) => {
  switch (m.type) {
    case 'load': {
      try {
        mod = await import(m.url);
      } catch (err) {
        fail(0, 'SHOAL_ERR_BAD_MODEL', `cannot import the module: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
        return;
      }
      const fns = { preprocess: typeof mod.preprocess === 'function', postprocess: typeof mod.postprocess === 'function' };
      let signature;
      try {
        // Plain data only (it crosses the thread): a clone proves it.
        signature = structuredClone(mod.signature);
      } catch (err) {
        fail(0, 'SHOAL_ERR_BAD_MODEL', `its signature export is not plain data: ${err.message}`);
        return;
      }
      parentPort.postMessage({ type: 'loaded', signature, ...fns, exports: Object.keys(mod) });
      return;
    }
    case 'pre': {
      const request = { inputs: m.inputs, ctx: m.ctx };
      try {
        const tensors = mod.preprocess ? await mod.preprocess(m.inputs, m.ctx) : m.inputs;
        requests.set(m.id, request);
        parentPort.postMessage({ type: 'result', id: m.id, tensors });
      } catch (err) {
        fail(m.id, 'SHOAL_ERR_PREPROCESS', err);
      }
      return;
    }
    case 'post': {
      const request = requests.get(m.id);
      requests.delete(m.id);
      try {
        const tensors = mod.postprocess ? await mod.postprocess(m.outputs, request) : m.outputs;
        parentPort.postMessage({ type: 'result', id: m.id, tensors });
      } catch (err) {
        fail(m.id, 'SHOAL_ERR_POSTPROCESS', err);
      }
      return;
    }
    case 'forget':
      requests.delete(m.id);
      return;
  }
});
