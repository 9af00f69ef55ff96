/**
 * What happens between a spot interruption notice and the machine's death, as callbacks the
 * runtime implements: **drain** (no new work, tell the node its deadline) → **checkpoint** the
 * actors that can (training) → **re-place** every actor elsewhere, all before `terminateAt`.
 * The pool is marked risky, so the placer and the autoscaler avoid it for a while.
 *
 * The placer's side is done here (mark the node draining, evacuate its bindings, place them
 * again); moving the actors themselves (stop the old copy after its checkpoint, start the new
 * one, directory CAS so it never runs twice) is the runtime's, through {@link InterruptionHooks}.
 */
import type { Placer } from '../placement.ts';
import type { PendingReason, Placement, PlacementRequest } from '../types.ts';
import type { PoolRisk } from './pool-risk.ts';

export interface Move {
  request: PlacementRequest;
  from: string;
  to: Placement;
}

export interface InterruptionHooks {
  /** Stop new work on the node (runtime: `{ type: 'drain', deadlineMs }` on its control subject). */
  drain?(nodeId: string, terminateAt: number): void | Promise<void>;
  /** Checkpoint these actors before `terminateAt` (training actors save their state). */
  checkpoint?(actors: PlacementRequest[], nodeId: string, terminateAt: number): void | Promise<void>;
  /** Start the moved actors at their new places; `waiting` could not be placed now (pending queue). */
  replace?(moves: Move[], waiting: { request: PlacementRequest; reason: PendingReason }[]): void | Promise<void>;
}

export interface InterruptionOutcome {
  nodeId: string;
  pool: string;
  terminateAt: number;
  moves: Move[];
  waiting: { request: PlacementRequest; reason: PendingReason }[];
  /** Hook steps that threw (the rest still ran). */
  errors: { step: 'drain' | 'checkpoint' | 'replace'; message: string }[];
}

export class InterruptionHandler {
  constructor(
    private readonly placer: Placer,
    private readonly risk: PoolRisk,
    private readonly hooks: InterruptionHooks = {},
  ) {}

  /** Runs drain → checkpoint → re-place for one notice. */
  async handle(notice: { nodeId: string; pool: string; terminateAt: number }): Promise<InterruptionOutcome> {
    const out: InterruptionOutcome = { nodeId: notice.nodeId, pool: notice.pool, terminateAt: notice.terminateAt, moves: [], waiting: [], errors: [] };
    this.risk.mark(notice.pool);
    const known = this.placer.node(notice.nodeId) !== undefined;
    if (known) this.placer.setDraining(notice.nodeId, true);
    await this.#step(out, 'drain', () => this.hooks.drain?.(notice.nodeId, notice.terminateAt));
    const actors = known ? this.placer.evacuate(notice.nodeId) : [];
    await this.#step(out, 'checkpoint', () => (actors.length ? this.hooks.checkpoint?.(actors, notice.nodeId, notice.terminateAt) : undefined));
    for (const evacuated of actors) {
      const request = unpin(evacuated, notice.nodeId);
      const r = this.placer.place(request);
      if (r.ok) out.moves.push({ request, from: notice.nodeId, to: r.placement });
      else out.waiting.push({ request, reason: r.reason });
    }
    await this.#step(out, 'replace', () => this.hooks.replace?.(out.moves, out.waiting));
    return out;
  }

  async #step(out: InterruptionOutcome, step: 'drain' | 'checkpoint' | 'replace', fn: () => void | Promise<void> | undefined): Promise<void> {
    try {
      await fn();
    } catch (err) {
      out.errors.push({ step, message: err instanceof Error ? err.message : String(err) });
    }
  }
}

/** A request pinned to the dying node may go anywhere now (the pin was a placement hint). */
function unpin(r: PlacementRequest, nodeId: string): PlacementRequest {
  if (r.constraints?.nodeId !== nodeId) return r;
  const { nodeId: _gone, ...rest } = r.constraints;
  return { ...r, constraints: rest };
}
