/**
 * The shadow track of a deployment: a version placed beside the stable one exactly as a canary
 * is (ModelDeployments.startSideTrack — starting, replicas probed, ready), to which gateways
 * mirror a `fraction` of stable's requests once it is ready; its answers are compared with
 * stable's and never returned (shadow.ts, gateway/shadow-mirror.ts). Set and cleared by
 * compare-and-swap of the deployment record, like the canary; one shadow per model at a time.
 * Kept out of deployments.ts, which owns the placement this reuses.
 */
import { Errors } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { refuseRejected } from '../registry/rejected.ts';
import { TrackState, type Deployment, type Track } from './canary.ts';
import type { ModelDeployments, TrackOptions } from './deployments.ts';

export interface ShadowOptions extends TrackOptions {
  /** Share of the stable version's requests mirrored to the shadow, 0..1. @default 0.1 */
  fraction?: number;
}

/**
 * Starts `opts.version` (default: the latest version) as the shadow; it gets mirrored requests
 * once ready. Starting the version that already is the shadow returns the record as it is
 * (a resumed pipeline stage does not start a second one).
 */
export async function startShadow(deployments: ModelDeployments, name: string, opts: ShadowOptions): Promise<Deployment> {
  const version = await deployments.resolveVersion(name, opts.version ?? 'latest');
  refuseRejected(await deployments.registry.version(name, version), opts.allowRejected);
  if (opts.minReplicas === 0 || opts.scaleToZero) throw Errors.USAGE('minReplicas 0 (scale to zero) is for the stable track: a shadow always runs its replicas');
  const fraction = opts.fraction ?? 0.1;
  if (!(fraction >= 0 && fraction <= 1)) throw MlErrors.BAD_INPUT(`shadow fraction must be within 0..1, got ${fraction}`);
  const d0 = await deployments.require(name);
  if (d0.stable.version === version) throw MlErrors.CANARY_NOT_READY(name, `v${version} is the stable version: it cannot shadow itself`);
  // One service per version: a shadow and a canary of the same version would share (and stop) each other's replicas.
  if (d0.canary?.version === version) throw MlErrors.CANARY_NOT_READY(name, `v${version} is the canary: promote or roll it back first`);
  if (d0.shadow) {
    if (d0.shadow.version === version && d0.shadow.state === TrackState.READY) return d0;
    if (d0.shadow.version !== version) throw MlErrors.CANARY_NOT_READY(name, `v${d0.shadow.version} is already the shadow; clear it first`);
  }
  // No model monitor: a shadow's answers are logged for nobody (and clearing it stops replicas only).
  const { monitoring: _monitoring, ...track } = opts;
  return deployments.startSideTrack(name, 'shadow', version, track, { fraction }, `fraction ${fraction}`);
}

/**
 * Removes the shadow from the record (gateways stop mirroring), then stops its replicas — unless
 * the version serves as stable or canary meanwhile. With `expectVersion`, only that version.
 */
export async function clearShadow(deployments: ModelDeployments, name: string, reason: string, expectVersion?: number): Promise<boolean> {
  if (!(await deployments.get(name))) return false;
  let removed: Track | undefined;
  let stillServes = false;
  await deployments.change(name, (d) => {
    removed = undefined;
    if (!d?.shadow || (expectVersion !== undefined && d.shadow.version !== expectVersion)) return undefined;
    removed = d.shadow;
    stillServes = d.stable.version === d.shadow.version || d.canary?.version === d.shadow.version;
    const next: Deployment = { ...d, updatedAt: Date.now() };
    delete next.shadow;
    return { ...next, history: [...d.history, { at: Date.now(), event: 'shadow-cleared', version: d.shadow.version, detail: reason }].slice(-50) };
  });
  if (!removed) return false;
  if (!stillServes) await deployments.stopReplicas(removed);
  return true;
}
