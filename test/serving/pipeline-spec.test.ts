/**
 * Pipeline spec validation (ml/registry/pipeline-spec.ts), no cluster: every step input fed,
 * tensors produced once, no cycle, datatypes and shapes compatible, the signature derived, and
 * the DAG run order; plus the runner's concurrency and error naming with a fake step sender.
 */
import { describe, expect, it } from 'vitest';
import { parsePipelineSpec, validatePipeline, type PipelineSpec, type StepModel } from '../../ml/registry/pipeline-spec.ts';
import { PipelineRunner, stepError } from '../../ml/serving/pipeline.ts';
import type { WireTensor } from '../../ml/index.ts';

const scaler: StepModel = { model: 'scaler', version: 1, format: 'onnx', signature: { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'Z', datatype: 'FP32', shape: [-1, 4] }] } };
const clf: StepModel = { model: 'clf', version: 2, format: 'onnx', signature: { inputs: [{ name: 'F', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'P', datatype: 'FP32', shape: [-1, 3] }, { name: 'L', datatype: 'INT64', shape: [-1] }] } };
const join2: StepModel = { model: 'join', version: 1, format: 'onnx', signature: { inputs: [{ name: 'A', datatype: 'FP32', shape: [-1, 3] }, { name: 'B', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 1] }] } };

const twoStep = (): PipelineSpec => ({
  inputs: [{ name: 'raw' }],
  outputs: [{ name: 'probs' }],
  steps: [
    { model: 'scaler', input_map: { X: 'raw' }, output_map: { Z: 'scaled' } },
    { model: 'clf', input_map: { F: 'scaled' }, output_map: { P: 'probs' } },
  ],
});

const err = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    expect((e as { code?: string }).code).toBe('SHOAL_ERR_BAD_MODEL');
    return (e as Error).message;
  }
  throw new Error('expected a SHOAL_ERR_BAD_MODEL');
};

describe('pipeline spec validation', () => {
  it('derives the public signature from the steps and orders them', () => {
    const { signature, order } = validatePipeline('p', twoStep(), [scaler, clf]);
    expect(signature).toEqual({ inputs: [{ name: 'raw', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 3] }] });
    expect(order).toEqual([0, 1]);
    // Steps listed in reverse still run producer first.
    const rev = twoStep();
    rev.steps.reverse();
    expect(validatePipeline('p', rev, [clf, scaler]).order).toEqual([1, 0]);
  });

  it('accepts declared datatypes/shapes that agree and narrows a variable dim', () => {
    const spec = twoStep();
    spec.inputs[0] = { name: 'raw', datatype: 'FP32', shape: [8, 4] };
    expect(validatePipeline('p', spec, [scaler, clf]).signature.inputs[0]).toEqual({ name: 'raw', datatype: 'FP32', shape: [8, 4] });
  });

  it('refuses a declared datatype or shape the steps do not take', () => {
    const a = twoStep();
    a.inputs[0] = { name: 'raw', datatype: 'FP64' };
    expect(err(() => validatePipeline('p', a, [scaler, clf]))).toMatch(/pipeline input "raw" is FP64 \(declared\) but step "scaler" input "X" takes FP32/);
    const b = twoStep();
    b.outputs[0] = { name: 'probs', shape: [-1, 5] };
    expect(err(() => validatePipeline('p', b, [scaler, clf]))).toMatch(/pipeline output "probs" is declared \[-1, 5\] but step "clf" gives \[-1, 3\]/);
  });

  it('refuses a step input nobody feeds, and an input_map key the model lacks', () => {
    const a = twoStep();
    a.steps[1]!.input_map = {};
    expect(err(() => validatePipeline('p', a, [scaler, clf]))).toMatch(/step "clf": input "F" \(FP32 \[-1, 4\]\) is not fed/);
    const b = twoStep();
    b.steps[1]!.input_map = { F: 'scaled', G: 'raw' };
    expect(err(() => validatePipeline('p', b, [scaler, clf]))).toMatch(/step "clf": input_map names "G", which model clf v2 does not take/);
  });

  it('refuses a tensor that does not exist, one produced twice, and an output the model lacks', () => {
    const a = twoStep();
    a.steps[1]!.input_map = { F: 'nothing' };
    expect(err(() => validatePipeline('p', a, [scaler, clf]))).toMatch(/"nothing", which is neither a pipeline input nor any step's output/);
    const b: PipelineSpec = { ...twoStep(), steps: [twoStep().steps[0]!, { name: 'again', model: 'scaler', input_map: { X: 'raw' }, output_map: { Z: 'scaled' } }, twoStep().steps[1]!] };
    expect(err(() => validatePipeline('p', b, [scaler, scaler, clf]))).toMatch(/tensor "scaled" is produced twice/);
    const c = twoStep();
    c.steps[0]!.output_map = { Q: 'scaled' };
    expect(err(() => validatePipeline('p', c, [scaler, clf]))).toMatch(/output_map names "Q", which model scaler v1 does not have/);
  });

  it('refuses a cycle', () => {
    const spec: PipelineSpec = {
      inputs: [{ name: 'raw' }],
      outputs: [{ name: 'y' }],
      steps: [
        { name: 'a', model: 'join', input_map: { A: 'p', B: 'raw' }, output_map: { Y: 'y' } },
        { name: 'b', model: 'scaler', input_map: { X: 'raw' }, output_map: { Z: 'z' } },
        { name: 'c', model: 'clf', input_map: { F: 'w' }, output_map: { P: 'p' } },
        { name: 'd', model: 'scaler', input_map: { X: 'z' }, output_map: { Z: 'w' } },
      ],
    };
    // Acyclic so far: b → d → c → a.
    expect(validatePipeline('p', spec, [join2, scaler, clf, scaler]).order).toEqual([1, 3, 2, 0]);
    // d now reads q, which e makes from d's own w: d ↔ e (c and a only wait on them).
    const cyc: PipelineSpec = { ...spec, steps: spec.steps.map((s) => (s.name === 'd' ? { ...s, input_map: { X: 'q' } } : s.name === 'c' ? { ...s, output_map: { P: 'p', L: 'unused' } } : s)) };
    cyc.steps.push({ name: 'e', model: 'scaler', input_map: { X: 'w' }, output_map: { Z: 'q' } });
    expect(err(() => validatePipeline('p', cyc, [join2, scaler, clf, scaler, scaler]))).toMatch(/the steps form a cycle: step "d" \(model scaler\), step "e" \(model scaler\) wait on each other$/);
  });

  it('refuses a datatype or shape mismatch along an edge', () => {
    const spec: PipelineSpec = { inputs: [{ name: 'raw' }], outputs: [{ name: 'y' }], steps: [{ model: 'clf', input_map: { F: 'raw' }, output_map: { L: 'l' } }, { model: 'scaler', input_map: { X: 'l' }, output_map: { Z: 'y' } }] };
    expect(err(() => validatePipeline('p', spec, [clf, scaler]))).toMatch(/step "scaler": input "X" takes FP32 but "l" from step "clf" is INT64/);
    spec.steps[0]!.output_map = { P: 'l' };
    expect(err(() => validatePipeline('p', spec, [clf, scaler]))).toMatch(/step "scaler": input "X" takes \[-1, 4\] but "l" from step "clf" is \[-1, 3\]/);
  });

  it('refuses unknown models, nested pipelines, unused inputs and outputs no step gives', () => {
    expect(err(() => validatePipeline('p', twoStep(), [scaler, { error: 'model clf is not registered' }]))).toMatch(/step "clf": model clf is not registered/);
    expect(err(() => validatePipeline('p', twoStep(), [scaler, { ...clf, format: 'pipeline' }]))).toMatch(/is itself a pipeline/);
    const a = twoStep();
    a.inputs.push({ name: 'extra' });
    expect(err(() => validatePipeline('p', a, [scaler, clf]))).toMatch(/pipeline input "extra" feeds no step/);
    const b = twoStep();
    b.outputs.push({ name: 'scaledd' });
    expect(err(() => validatePipeline('p', b, [scaler, clf]))).toMatch(/pipeline output "scaledd" is no step's output/);
  });

  it('parses JSON and names the malformed field', () => {
    expect(parsePipelineSpec('p', new TextEncoder().encode(JSON.stringify(twoStep())))).toEqual(twoStep());
    expect(err(() => parsePipelineSpec('p', new TextEncoder().encode('{nope')))).toMatch(/not JSON/);
    expect(err(() => parsePipelineSpec('p', { inputs: [{ name: 'x' }], outputs: [{ name: 'y' }], steps: [{ model: 'm', input_map: {} }] }))).toMatch(/malformed at \/steps\/0/);
  });
});

describe('pipeline runner (fake steps)', () => {
  const t = (name: string, v: number): WireTensor => ({ name, datatype: 'FP32', shape: [1], data: new Uint8Array(new Float32Array([v]).buffer) });
  const val = (w: WireTensor) => new Float32Array(w.data.slice().buffer)[0]!;
  const diamond: PipelineSpec = {
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'out' }],
    steps: [
      { name: 'left', model: 'm', input_map: { X: 'x' }, output_map: { Z: 'l' } },
      { name: 'right', model: 'm', input_map: { X: 'x' }, output_map: { Z: 'r' } },
      { name: 'sum', model: 'add', input_map: { A: 'l', B: 'r' }, output_map: { Y: 'out' } },
    ],
  };

  it('runs independent steps concurrently and feeds the join both', async () => {
    const started: string[] = [];
    const release: (() => void)[] = [];
    const runner = new PipelineRunner('d v1', diamond, async (i, step, inputs) => {
      const name = diamond.steps[i]!.name!;
      started.push(name);
      if (step.model === 'm') {
        // Both branches must be in flight before either answers.
        await new Promise<void>((r) => release.push(r));
        return { outputs: [t('Z', val(inputs[0]!) * (name === 'left' ? 2 : 3))], batch: 1 };
      }
      return { outputs: [t('Y', val(inputs.find((x) => x.name === 'A')!) + val(inputs.find((x) => x.name === 'B')!))], batch: 4 };
    });
    const done = runner.run([t('x', 5)]);
    await new Promise((r) => setImmediate(r));
    expect(started.sort()).toEqual(['left', 'right']);
    for (const r of release) r();
    const { outputs, batch } = await done;
    expect(val(outputs.get('out')!)).toBe(25);
    expect(batch).toBe(4);
    expect(started).toContain('sum');
  });

  it('fails with the first step error, naming the step, and keeps its code', async () => {
    const runner = new PipelineRunner('d v1', diamond, async (i, step) => {
      if (diamond.steps[i]!.name === 'right') throw stepError('d v1', 'right', step.model, { code: 'SHOAL_ERR_BAD_INPUT', message: 'input "X": nope' });
      return { outputs: [t('Z', 1), t('Y', 1)], batch: 1 };
    });
    await expect(runner.run([t('x', 1)])).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', status: 400, message: expect.stringMatching(/pipeline d v1, step "right" \(model m\): input "X": nope/) });
  });
});
