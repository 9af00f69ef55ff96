/**
 * The text classifier's processor module (registered with `--processor`): clients send raw
 * strings (`text`, BYTES), get a `label` (BYTES) and its `score` (FP32) per string; the ONNX
 * model between them only ever sees word counts.
 *
 * Self-contained on purpose: the registry stores this one file, and a replica loads it on a
 * worker thread from its cache, so it may import Node's built-ins but no file beside it.
 * (build-model.ts imports `hashToken` from here, so the model's vocabulary and the tokenizer
 * cannot drift apart.)
 */

/** Buckets of the hashed vocabulary: the model's input width. */
export const VOCAB = 1024;
/** What each of the model's output columns means. */
export const LABELS = ['negative', 'positive'];

/** Lower case, split on anything that is not a letter, digit or apostrophe. */
export function tokenize(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9']+/).filter((t) => t.length > 0);
}

/** FNV-1a (32 bit) of the token's UTF-16 code units, into one of VOCAB buckets. */
export function hashToken(token: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) {
    h ^= token.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % VOCAB;
}

/** What clients see (metadata) and send: one string per row in, a label and a score per row out. */
export const signature = {
  inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1] }],
  outputs: [
    { name: 'label', datatype: 'BYTES', shape: [-1] },
    { name: 'score', datatype: 'FP32', shape: [-1] },
  ],
};

interface Tensor {
  datatype: string;
  shape: number[];
  data: ArrayLike<number> | string[];
}

/** Strings → bag-of-words counts over the hashed vocabulary (the model's `counts` [N, VOCAB]). */
export function preprocess(inputs: Record<string, Tensor>): Record<string, Tensor> {
  const texts = inputs.text!.data as string[];
  const counts = new Float32Array(texts.length * VOCAB);
  texts.forEach((text, row) => {
    for (const t of tokenize(text)) counts[row * VOCAB + hashToken(t)]! += 1;
  });
  return { counts: { datatype: 'FP32', shape: [texts.length, VOCAB], data: counts } };
}

/** Class probabilities [N, 2] → the likelier label and its probability, per row. */
export function postprocess(outputs: Record<string, Tensor>): Record<string, Tensor> {
  const probs = outputs.probs!.data as Float32Array;
  const [rows, classes] = outputs.probs!.shape as [number, number];
  const label: string[] = [];
  const score = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (probs[r * classes + c]! > probs[r * classes + best]!) best = c;
    label.push(LABELS[best]!);
    score[r] = probs[r * classes + best]!;
  }
  return { label: { datatype: 'BYTES', shape: [rows], data: label }, score: { datatype: 'FP32', shape: [rows], data: score } };
}
