/**
 * The processor host on its own (ml/serving/processor.ts), no cluster: a module on a worker
 * thread, what its functions give checked against the signatures, and a worker that dies (the
 * module ends its thread) failing only the request in flight — the next one gets a new worker.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessorHost, RequestProcessor, validateProcessor } from '../../ml/serving/processor.ts';
import type { Signature } from '../../ml/index.ts';
import * as ort from 'onnxruntime-node';
import { NUMERIC_PROCESSOR, source, textClassifierModel, textClassifierProcessor } from '../fixtures/onnx-pipes.ts';

const MODEL_SIG: Signature = { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 2] }] };

/** The numeric processor, plus a sentinel (a[0] = 999) on which the module ends its worker thread. */
const DYING = `${NUMERIC_PROCESSOR.replace("const first = a.data[0];", "const first = a.data[0];\n  if (first === 999) process.exit(3);\n  if (first === 1234) for (;;);")}`;

describe('processor host (worker thread, no cluster)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-proc-host-'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  writeFileSync(join(dir, 'dying.ts'), DYING);
  const host = new ProcessorHost(join(dir, 'dying.ts'), 'dying v1', { callTimeoutMs: 2000 });
  let proc: RequestProcessor;

  afterAll(async () => {
    await host.close();
  });

  it('validates a module and returns its public signature', async () => {
    const sig = await validateProcessor('m', source(NUMERIC_PROCESSOR), 'numeric.ts', MODEL_SIG);
    expect(sig.inputs).toEqual([{ name: 'a', datatype: 'FP64', shape: [-1, 4] }]);
    const loaded = await host.load();
    proc = new RequestProcessor(host, 'dying v1', { model: 'dying', version: 1 }, loaded.signature as Signature, MODEL_SIG);
  });

  const decoded = (first: number, rows = 1) => ({ inputs: [Float64Array.from({ length: rows * 4 }, (_, i) => (i === 0 ? first : i))], shapes: [[rows, 4]], outputs: undefined, id: 'r' });

  it('pre → model inputs checked against the model signature; post → public outputs', async () => {
    const { model, id } = await proc.pre(decoded(2, 2));
    expect(model.shapes).toEqual([[2, 4]]);
    expect(Array.from(model.inputs[0] as Float32Array)).toEqual([1, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]);
    const out = await proc.post(id, new Map([['Y', { data: Float32Array.from([0.1, 0.9, 0.7, 0.3]), dims: [2, 2] }]]));
    expect(Array.from(out.get('best')!.data as Int32Array)).toEqual([1, 0]);
    // A plain number array from the module became the datatype's typed array.
    expect(out.get('prob')!.data).toBeInstanceOf(Float32Array);
    expect(Array.from(out.get('prob')!.data as Float32Array)).toEqual([Math.fround(0.9), Math.fround(0.7)]);
    expect(out.get('main')).toEqual({ data: new Uint8Array([0, 0]), dims: [2] });
  });

  it('a worker that dies fails the request in flight; the next request gets a new worker', async () => {
    await expect(proc.pre(decoded(999))).rejects.toMatchObject({ code: 'SHOAL_ERR_PREPROCESS', message: expect.stringMatching(/preprocess of dying v1 failed: the processor's worker stopped: exit code 3/) });
    const { model } = await proc.pre(decoded(4));
    expect((model.inputs[0] as Float32Array)[0]).toBe(2);
  });

  it('a module stuck in a loop: the call fails after the timeout, the worker is restarted, the next request is served', async () => {
    await expect(proc.pre(decoded(1234))).rejects.toMatchObject({ code: 'SHOAL_ERR_PREPROCESS', message: expect.stringMatching(/the module did not answer within 2000 ms \(its worker is restarted\)/) });
    const { model } = await proc.pre(decoded(6));
    expect((model.inputs[0] as Float32Array)[0]).toBe(3);
  });

  it("the text classifier example's module on a worker: strings → counts → the example model → label and score", async () => {
    const exDir = mkdtempSync(join(tmpdir(), 'shoal-proc-example-'));
    writeFileSync(join(exDir, 'package.json'), '{"type":"module"}');
    const { bytes, filename } = textClassifierProcessor();
    writeFileSync(join(exDir, filename), bytes);
    const exHost = new ProcessorHost(join(exDir, filename), 'sentiment v1');
    try {
      const loaded = await exHost.load();
      const modelSig: Signature = { inputs: [{ name: 'counts', datatype: 'FP32', shape: [-1, 1024] }], outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 2] }] };
      const p = new RequestProcessor(exHost, 'sentiment v1', { model: 'sentiment', version: 1 }, loaded.signature as Signature, modelSig);
      // Strings as a BYTES tensor's data (what the codecs give once BYTES is served).
      const texts = ['I love it, great support!', 'Awful and slow. I want a refund.'];
      const { model, id } = await p.pre({ inputs: [texts as never], shapes: [[2]], outputs: undefined, id: undefined });
      expect(model.shapes).toEqual([[2, 1024]]);
      const session = await ort.InferenceSession.create(textClassifierModel());
      const probs = (await session.run({ counts: new ort.Tensor('float32', model.inputs[0] as Float32Array, [2, 1024]) })).probs as ort.Tensor;
      await session.release();
      const out = await p.post(id, new Map([['probs', { data: probs.data as Float32Array, dims: probs.dims }]]));
      expect(out.get('label')).toEqual({ data: ['positive', 'negative'], dims: [2] });
      for (const v of out.get('score')!.data as Float32Array) expect(v).toBeGreaterThan(0.9);
    } finally {
      await exHost.close();
    }
  });
});
