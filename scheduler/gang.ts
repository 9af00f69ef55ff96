/**
 * Gang placement: all members of a group (the N workers of one data-parallel job) are bound
 * together or none is. Members are tried largest first (the hard ones fail early and cheaply);
 * on the first member that does not fit, every member placed so far is released and the gang
 * waits with a reason that says how far it got.
 */
import { withDetails } from '../cluster/index.ts';
import { gangImpossibleReason } from './catalogue.ts';
import { SchedulerErrors } from './errors.ts';
import type { Placer } from './placement.ts';
import { normalizeRequest } from './request.ts';
import { PendingCode, type ImpossibleReason, type PendingReason, type Placement, type PlacementRequest } from './types.ts';

export type GangResult = { ok: true; placements: Placement[] } | { ok: false; reason: PendingReason; placeable: number };

/** Why the gang can never be placed whole (given the placer's catalogue), or undefined. */
export function checkGang(placer: Placer, members: readonly PlacementRequest[]): ImpossibleReason | undefined {
  if (!placer.catalogue) return undefined;
  return gangImpossibleReason(members.map(normalizeRequest), placer.catalogue);
}

/** Throws `SHOAL_ERR_UNSCHEDULABLE` for a gang that can never be placed whole. */
export function assertGangPlaceable(placer: Placer, group: string, members: readonly PlacementRequest[]): void {
  const r = checkGang(placer, members);
  if (r) throw withDetails(SchedulerErrors.UNSCHEDULABLE(`gang ${group}`, r.message), { group, reason: r.code });
}

/** Binds every member or none. Members already bound (a retry) count as placed. */
export function placeGang(placer: Placer, members: readonly PlacementRequest[]): GangResult {
  if (members.length === 0) return { ok: true, placements: [] };
  // Largest first by GPUs, then by CPU: GPUs are the scarce, lumpy resource.
  const order = [...members].sort((a, b) => size(b) - size(a));
  const placed: Placement[] = [];
  const fresh: string[] = [];
  for (const m of order) {
    const already = placer.placementOf(m.id);
    const r = already ? ({ ok: true, placement: already } as const) : placer.place(m);
    if (!r.ok) {
      for (const id of fresh) placer.release(id);
      return {
        ok: false,
        placeable: placed.length,
        reason: { code: PendingCode.GANG_INCOMPLETE, message: `gang of ${members.length}: ${placed.length} fit now, member ${m.id} does not (${r.reason.message})` },
      };
    }
    if (!already) fresh.push(m.id);
    placed.push(r.placement);
  }
  const byId = new Map(placed.map((p) => [p.requestId, p]));
  return { ok: true, placements: members.map((m) => byId.get(m.id)!) };
}

function size(r: PlacementRequest): number {
  const n = normalizeRequest(r);
  return n.gpu * 1e6 + n.cpu + n.memoryBytes / 2 ** 40;
}
