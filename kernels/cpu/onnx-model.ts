/**
 * Builds tiny ONNX models by writing the protobuf by hand: a Gemm (or MatMul) node with
 * symbolic dimensions, so one session serves every shape with the same attributes. Only the
 * handful of ModelProto fields these graphs need are encoded.
 */

class Writer {
  private readonly bytes: number[] = [];

  varint(v: number): this {
    let n = BigInt(v);
    while (n > 0x7fn) {
      this.bytes.push(Number((n & 0x7fn) | 0x80n));
      n >>= 7n;
    }
    this.bytes.push(Number(n));
    return this;
  }
  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, v: number): this {
    return this.tag(field, 0).varint(v);
  }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    this.bytes.push(...b);
    return this;
  }
  bytesField(field: number, data: Uint8Array): this {
    this.tag(field, 2).varint(data.length);
    this.bytes.push(...data);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }
  message(field: number, w: Writer): this {
    return this.bytesField(field, w.finish());
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

const FLOAT = 1;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;

/** ValueInfoProto for a float tensor; dims are numbers or symbolic names. */
function valueInfo(name: string, dims: readonly (number | string)[]): Writer {
  const shape = new Writer();
  for (const d of dims) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new Writer().int(1, FLOAT).message(2, shape);
  const type = new Writer().message(1, tensorType);
  return new Writer().string(1, name).message(2, type);
}

function attr(name: string, v: { f: number } | { i: number }): Writer {
  const w = new Writer().string(1, name);
  if ('f' in v) return w.float(2, v.f).int(20, ATTR_FLOAT);
  return w.int(3, v.i).int(20, ATTR_INT);
}

export interface GemmModelSpec {
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** 'vec' → bias [N], 'scalar' → bias [1]. */
  bias: 'none' | 'vec' | 'scalar';
}

/**
 * `Y = alpha·op(A)·op(B) (+ beta·bias)` with inputs A, B (, bias) and output Y. With no
 * transposes, alpha 1 and no bias this is a plain MatMul node, the same graph a direct
 * onnxruntime MatMul call would use.
 */
export function gemmModel(spec: GemmModelSpec): Uint8Array {
  const plain = !spec.transA && !spec.transB && spec.alpha === 1 && spec.bias === 'none';
  const node = new Writer().string(1, 'A').string(1, 'B');
  if (spec.bias !== 'none') node.string(1, 'bias');
  node.string(2, 'Y').string(3, plain ? 'matmul' : 'gemm').string(4, plain ? 'MatMul' : 'Gemm');
  if (!plain) {
    node.message(5, attr('alpha', { f: spec.alpha }));
    node.message(5, attr('beta', { f: spec.beta }));
    node.message(5, attr('transA', { i: spec.transA ? 1 : 0 }));
    node.message(5, attr('transB', { i: spec.transB ? 1 : 0 }));
  }
  const graph = new Writer().message(1, node).string(2, 'shoal_gemm');
  graph.message(11, valueInfo('A', spec.transA ? ['K', 'M'] : ['M', 'K']));
  graph.message(11, valueInfo('B', spec.transB ? ['N', 'K'] : ['K', 'N']));
  if (spec.bias !== 'none') graph.message(11, valueInfo('bias', spec.bias === 'vec' ? ['N'] : [1]));
  graph.message(12, valueInfo('Y', ['M', 'N']));
  const opset = new Writer().string(1, '').int(2, 17);
  return new Writer().int(1, 8).string(2, 'shoal').message(7, graph).message(8, opset).finish();
}
