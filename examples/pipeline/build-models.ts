/**
 * Builds the two step models of the pipeline example with Shoal's ONNX writer:
 *
 *   iris-scaler      X [N, 4] → (X − mean) / std → Z [N, 4]        (standardizes the measurements)
 *   iris-classifier  Z [N, 4] → MatMul + Add → Softmax → P [N, 3]   (setosa, versicolor, virginica)
 *
 * The means and deviations are the Iris data set's; the classifier's weights are set by hand
 * (petal length and width decide), enough to show the pipeline, not a trained model.
 *
 *   npx tsx examples/pipeline/build-models.ts [DIR]   (writes DIR/iris-scaler.onnx and DIR/iris-classifier.onnx; default: examples/pipeline)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { floatTensor, onnxModel } from '../../kernels/index.ts';

export const IRIS_MEAN = [5.843, 3.057, 3.758, 1.199];
export const IRIS_STD = [0.825, 0.434, 1.759, 0.76];
export const IRIS_CLASSES = ['setosa', 'versicolor', 'virginica'];

const opts = { irVersion: 7, opset: 13, producer: 'shoal-examples' };

/** X [N, F] → (X − mean) / std → Z [N, F]. */
export function scalerModel(mean: readonly number[] = IRIS_MEAN, std: readonly number[] = IRIS_STD): Uint8Array {
  const F = mean.length;
  return onnxModel(
    {
      name: 'scaler',
      nodes: [
        { op: 'Sub', inputs: ['X', 'mean'], outputs: ['c'] },
        { op: 'Div', inputs: ['c', 'std'], outputs: ['Z'] },
      ],
      initializers: [floatTensor('mean', [F], Float32Array.from(mean)), floatTensor('std', [F], Float32Array.from(std))],
      inputs: [{ name: 'X', dims: ['N', F] }],
      outputs: [{ name: 'Z', dims: ['N', F] }],
    },
    opts,
  );
}

/** Z [N, 4] → softmax(Z·W + B) → P [N, 3]. */
export function classifierModel(): Uint8Array {
  // Rows: sepal length, sepal width, petal length, petal width; columns: the three classes.
  const W = Float32Array.from([0, 0, 0, 0, 0, 0, -3, 0, 3, -3, 0, 3]);
  const B = Float32Array.from([0, 3.5, 0]);
  return onnxModel(
    {
      name: 'classifier',
      nodes: [
        { op: 'MatMul', inputs: ['Z', 'W'], outputs: ['l0'] },
        { op: 'Add', inputs: ['l0', 'B'], outputs: ['l'] },
        { op: 'Softmax', inputs: ['l'], outputs: ['P'], attributes: { axis: { i: -1 } } },
      ],
      initializers: [floatTensor('W', [4, 3], W), floatTensor('B', [3], B)],
      inputs: [{ name: 'Z', dims: ['N', 4] }],
      outputs: [{ name: 'P', dims: ['N', 3] }],
    },
    opts,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? fileURLToPath(new URL('.', import.meta.url));
  writeFileSync(join(dir, 'iris-scaler.onnx'), scalerModel());
  writeFileSync(join(dir, 'iris-classifier.onnx'), classifierModel());
  console.log(`wrote ${join(dir, 'iris-scaler.onnx')} and ${join(dir, 'iris-classifier.onnx')}`);
}
