/**
 * The CPU backend's interpreter for a step: runs nodes in order with the JS twins, except
 * matmul-class nodes, which go to ONNX Runtime (MLAS) when it is available and the product is
 * big enough to beat a session call's fixed cost. Runs inline or inside a piscina worker;
 * everything it takes and returns is plain data.
 */
import { KernelErrors } from '../errors.ts';
import { ops } from '../ops/index.ts';
import { jsActivation } from '../ops/common.ts';
import type { GemmAttrs } from '../ops/gemm.ts';
import { matmulDims, type MatmulAttrs } from '../ops/matmul.ts';
import type { StepNode } from '../step.ts';
import { allocate, type HostArray, numel, type TensorInfo } from '../tensor.ts';
import { ortGemm } from './ort.ts';

export interface CpuStepTask {
  type: 'step';
  values: TensorInfo[];
  nodes: StepNode[];
  feeds: { id: number; data: HostArray }[];
  /** Value ids to return, in order. */
  outputs: number[];
  poison: boolean;
  /** Route matmul/gemm to ONNX Runtime. */
  ort: boolean;
  /** ONNX Runtime intra-op threads. */
  threads: number;
}

export type CpuStepResult = { type: 'ok'; outputs: HostArray[] } | { type: 'error'; code: string; message: string };

/** Below this many multiply-adds the JS loop beats an ONNX Runtime call's fixed cost. */
const ORT_MIN_MACS = 16384;

export async function executeCpuStep(task: CpuStepTask): Promise<HostArray[]> {
  const arrays: (HostArray | undefined)[] = new Array(task.values.length);
  for (const f of task.feeds) arrays[f.id] = f.data;
  for (const node of task.nodes) {
    const def = ops.get(node.op);
    if (!def || def.kind !== 'primitive') throw KernelErrors.UNKNOWN_OP(node.op);
    const inputs = node.inputs.map((id) => arrays[id]!);
    const infos = node.inputs.map((id) => task.values[id]!);
    if (task.ort && (node.op === 'matmul' || node.op === 'gemm')) {
      const y = await viaOrt(node, inputs as Float32Array[], infos, task.threads);
      if (y) {
        arrays[node.outputs[0]!] = y;
        continue;
      }
    }
    const outs = node.outputs.map((id) => {
      const info = task.values[id]!;
      const a = allocate(info.dtype, numel(info.shape));
      if (task.poison) (a as Float32Array).fill(NaN);
      arrays[id] = a;
      return a;
    });
    def.cpu(inputs, outs, infos, node.attrs);
  }
  return task.outputs.map((id) => arrays[id]!);
}

async function viaOrt(node: StepNode, inputs: Float32Array[], infos: TensorInfo[], threads: number): Promise<Float32Array | undefined> {
  const attrs = node.attrs as MatmulAttrs & Partial<GemmAttrs>;
  const d = matmulDims(node.op, infos[0]!, infos[1]!, attrs);
  if (d.M * d.N * d.K < ORT_MIN_MACS) return undefined;
  const biasInfo = infos[2];
  const bias = biasInfo === undefined ? 'none' : numel(biasInfo.shape) === d.N && biasInfo.shape.length === 1 ? 'vec' : 'scalar';
  let y: Float32Array | undefined;
  try {
    y = await ortGemm(inputs[0]!, inputs[1]!, inputs[2], { ...d, transA: attrs.transA, transB: attrs.transB, alpha: attrs.alpha, beta: attrs.beta ?? 0, bias }, threads);
  } catch (err) {
    throw KernelErrors.CPU_FAILED(node.op, (err as Error).message);
  }
  if (!y) return undefined;
  const act = attrs.activation ?? 'none';
  if (act !== 'none') {
    const f = jsActivation(act);
    for (let i = 0; i < y.length; i++) y[i] = f(y[i]!);
  }
  return y;
}
