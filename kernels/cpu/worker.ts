/**
 * piscina worker: runs one CPU step task. Errors cross the thread as `{ type: 'error', code,
 * message }`, never as thrown objects. Outputs and the caller's staging buffer travel back as
 * transferred buffers (no copies).
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { errorCode } from '../../cluster/index.ts';
import type { HostArray } from '../tensor.ts';
import { executeCpuStep, type CpuStepResult, type CpuStepTask } from './executor.ts';

export interface WorkerTask extends CpuStepTask {
  /** The caller's reusable staging buffer holding the feeds; handed back with the result. */
  staging?: ArrayBuffer;
}

export type WorkerResult = CpuStepResult & { staging?: ArrayBuffer };

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  let result: WorkerResult;
  try {
    const outputs = await executeCpuStep(task);
    const seen = new Set<ArrayBufferLike>();
    // An output that is (a view of) the staging memory or shares a buffer is copied out.
    const owned: HostArray[] = outputs.map((a) => {
      const own = a.buffer !== task.staging && !seen.has(a.buffer) && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer;
      const out = own ? a : a.slice();
      seen.add(out.buffer);
      return out;
    });
    result = { type: 'ok', outputs: owned, staging: task.staging };
  } catch (err) {
    result = { type: 'error', code: errorCode(err) ?? 'SHOAL_ERR_KERNEL_CPU_FAILED', message: (err as Error).message ?? String(err), staging: task.staging };
  }
  const transfer: ArrayBuffer[] = [];
  if (task.staging) transfer.push(task.staging);
  if (result.type === 'ok') for (const a of result.outputs) transfer.push(a.buffer as ArrayBuffer);
  return move({ [transferableSymbol]: transfer, [valueSymbol]: result } as never) as unknown as WorkerResult;
}
