/**
 * piscina worker: runs one CPU step task. Errors cross the thread as `{ type: 'error', code,
 * message }`, never as thrown objects. On success the outputs are packed into one ArrayBuffer
 * that is transferred, not cloned (piscina moves only a top-level transferable).
 */
import { move } from 'piscina';
import { errorCode } from '../../cluster/index.ts';
import { executeCpuStep, type CpuStepResult, type CpuStepTask } from './executor.ts';

export default async function run(task: CpuStepTask): Promise<CpuStepResult | ArrayBuffer> {
  try {
    const outputs = await executeCpuStep(task);
    const total = outputs.reduce((n, a) => n + a.byteLength, 0);
    const packed = new Uint8Array(total);
    let off = 0;
    for (const a of outputs) {
      packed.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
      off += a.byteLength;
    }
    return move(packed.buffer) as ArrayBuffer;
  } catch (err) {
    return { type: 'error', code: errorCode(err) ?? 'SHOAL_ERR_KERNEL_CPU_FAILED', message: (err as Error).message ?? String(err) };
  }
}
