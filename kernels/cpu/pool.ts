/** The CPU backend's worker pool (piscina). */
import { Piscina } from 'piscina';
import { fromWireError } from '../../cluster/index.ts';
import { KernelErrors } from '../errors.ts';
import { type HostArray, numel } from '../tensor.ts';
import type { CpuStepResult, CpuStepTask } from './executor.ts';

export class CpuPool {
  private readonly piscina: Piscina;
  private closed = false;

  constructor(workers: number) {
    this.piscina = new Piscina({
      filename: new URL('./worker-entry.mjs', import.meta.url).href,
      minThreads: workers,
      maxThreads: workers,
      // Tasks are whole steps; a short queue keeps backpressure visible to the caller.
      idleTimeout: 60_000,
    });
  }

  async run(task: CpuStepTask): Promise<HostArray[]> {
    if (this.closed) throw KernelErrors.CLOSED('the CPU worker pool');
    const transfer = task.feeds.map((f) => f.data.buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
    const res = (await this.piscina.run(task, { transferList: transfer })) as CpuStepResult | ArrayBuffer;
    if (!(res instanceof ArrayBuffer)) {
      if (res.type === 'error') throw fromWireError({ code: res.code, message: res.message });
      return res.outputs;
    }
    let off = 0;
    return task.outputs.map((id) => {
      const info = task.values[id]!;
      const n = numel(info.shape);
      const a = info.dtype === 'f32' ? new Float32Array(res, off, n) : info.dtype === 'i32' ? new Int32Array(res, off, n) : new Uint32Array(res, off, n);
      off += n * 4;
      return a;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina.destroy();
  }
}
