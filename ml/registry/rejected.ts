/**
 * A version marked rejected at registration (a quantized version slower than its source, or
 * losing more than a point of its main metric: ml/quantize/report.ts) is not served by
 * accident: deploy, canary and promote refuse it unless the caller says `allowRejected`.
 */
import { MlErrors } from '../errors.ts';
import type { ModelVersion } from './schemas.ts';

/** Throws SHOAL_ERR_MODEL_REJECTED for a rejected version unless `allow`. */
export function refuseRejected(mv: Pick<ModelVersion, 'name' | 'version' | 'rejected'>, allow: boolean | undefined): void {
  if (mv.rejected && !allow) throw MlErrors.MODEL_REJECTED(`${mv.name} v${mv.version}`, mv.rejected.reason);
}
