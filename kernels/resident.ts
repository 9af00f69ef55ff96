/**
 * A tensor that stays with the kernels between steps (model parameters, optimizer state). Its
 * latest value lives on the host, on the GPU, or both; a step moves it where the step runs and
 * `assign` replaces it without a readback.
 */
import type { DType, HostArray, Tensor, TensorInfo } from './tensor.ts';
import { numel } from './tensor.ts';

export interface ResidentOwner {
  readResident(r: ResidentTensor): Promise<Tensor>;
  disposeResident(r: ResidentTensor): void;
}

export class ResidentTensor implements TensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly name: string;
  /** @internal latest host copy, valid when `hostValid` */
  host: HostArray | undefined;
  /** @internal GPU copy, valid when `gpuValid` */
  gpu: GPUBuffer | undefined;
  /** @internal */
  hostValid = false;
  /** @internal */
  gpuValid = false;
  /** @internal */
  disposed = false;

  constructor(
    private readonly owner: ResidentOwner,
    t: Tensor,
    name: string,
  ) {
    this.dtype = t.dtype;
    this.shape = [...t.shape];
    this.name = name;
    this.host = t.data.slice();
    this.hostValid = true;
  }

  get size(): number {
    return numel(this.shape);
  }

  /** The current value, read back from the GPU if it lives there. */
  read(): Promise<Tensor> {
    return this.owner.readResident(this);
  }

  /** Frees the GPU copy (back to the pool) and the host copy. */
  dispose(): void {
    if (!this.disposed) this.owner.disposeResident(this);
    this.disposed = true;
  }
}
