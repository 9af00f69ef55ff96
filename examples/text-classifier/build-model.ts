/**
 * Builds the text classifier's ONNX model with Shoal's ONNX writer: a bag-of-words logistic
 * regression over the hashed vocabulary of processor.ts — `counts` [N, VOCAB] → MatMul + Add →
 * Softmax → `probs` [N, 2] (negative, positive). The weights are set by hand from two short word
 * lists, enough to show the mechanics, not a trained model.
 *
 *   npx tsx examples/text-classifier/build-model.ts [out.onnx]   (default: examples/text-classifier/model.onnx)
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { floatTensor, onnxModel } from '../../kernels/index.ts';
import { LABELS, VOCAB, hashToken } from './processor.ts';

export const POSITIVE = ['good', 'great', 'love', 'excellent', 'happy', 'fast', 'helpful', 'amazing', 'recommend'];
export const NEGATIVE = ['bad', 'awful', 'hate', 'terrible', 'slow', 'broken', 'refund', 'poor', 'useless'];

export function textClassifierModel(): Uint8Array {
  const W = new Float32Array(VOCAB * LABELS.length);
  const seen = new Map<number, string>();
  for (const [words, cls] of [[NEGATIVE, 0], [POSITIVE, 1]] as const) {
    for (const w of words) {
      const h = hashToken(w);
      if (seen.has(h)) throw new Error(`"${w}" and "${seen.get(h)}" hash to the same bucket ${h}: pick other words or a larger VOCAB`);
      seen.set(h, w);
      W[h * LABELS.length + cls] = 2;
      W[h * LABELS.length + (1 - cls)] = -2;
    }
  }
  return onnxModel(
    {
      name: 'text-classifier',
      nodes: [
        { op: 'MatMul', inputs: ['counts', 'W'], outputs: ['logits0'] },
        { op: 'Add', inputs: ['logits0', 'B'], outputs: ['logits'] },
        { op: 'Softmax', inputs: ['logits'], outputs: ['probs'], attributes: { axis: { i: -1 } } },
      ],
      initializers: [floatTensor('W', [VOCAB, LABELS.length], W), floatTensor('B', [LABELS.length], new Float32Array(LABELS.length))],
      inputs: [{ name: 'counts', dims: ['N', VOCAB] }],
      outputs: [{ name: 'probs', dims: ['N', LABELS.length] }],
    },
    { irVersion: 7, opset: 13, producer: 'shoal-examples' },
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? fileURLToPath(new URL('./model.onnx', import.meta.url));
  writeFileSync(out, textClassifierModel());
  console.log(`wrote ${out}`);
}
