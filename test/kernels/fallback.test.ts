import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { createKernels, nodeKernels, tensor } from '../../kernels/index.ts';

describe('no adapter', () => {
  it('auto falls back to the CPU with one log line; gpu is a typed error', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const k = await createKernels({ adapter: 'no-such-adapter-for-shoal', logger, cpuWorkers: 0 });
    try {
      expect(k.gpu).toBeUndefined();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/WebGPU unavailable, kernels run on the CPU backend: no WebGPU adapter: .*no-such-adapter-for-shoal/);
      const [y] = await k.run('unary', [tensor(new Float32Array([-1, 3]))], { fn: 'relu' });
      expect(Array.from(y!.data)).toEqual([0, 3]);
      await expect(k.run('unary', [tensor(new Float32Array([1]))], { fn: 'relu' }, { backend: 'gpu' })).rejects.toMatchObject({ code: 'SHOAL_ERR_NO_GPU_ADAPTER' });
    } finally {
      await k.close();
    }
    await expect(createKernels({ backend: 'gpu', adapter: 'no-such-adapter-for-shoal' })).rejects.toMatchObject({ code: 'SHOAL_ERR_NO_GPU_ADAPTER' });
    await expect(createKernels({ backend: 'bogus' as 'gpu' })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_CONFIG' });
  });
});

describe('kernels handed to actors', () => {
  it('nodeKernels(ctx) returns the node\'s instance, and names the actor when its host gave none', async () => {
    const k = await createKernels({ backend: 'cpu', cpuWorkers: 0 });
    try {
      expect(nodeKernels({ kernels: k, actorId: 'a1' })).toBe(k);
      expect(() => nodeKernels({ kernels: undefined, actorId: 'a1' })).toThrow(/actor a1 needs the node's kernels/);
      expect(() => nodeKernels({ kernels: { step() {} }, actorId: 'a2' })).toThrow(expect.objectContaining({ code: 'SHOAL_ERR_INTERNAL' }));
    } finally {
      await k.close();
    }
  });
});
