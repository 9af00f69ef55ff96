/**
 * The scheduler's error codes (placement, autoscaling, providers, leader lease).
 * Documented in `docs/errors.md` (section "Scheduler"); `test/errors.test.ts` checks that.
 */
import { defineError } from '../cluster/index.ts';

export const SchedulerErrors = {
  /** Impossible request: no node type in the catalogue (or no known pool) could ever host it. */
  UNSCHEDULABLE: defineError('SHOAL_ERR_UNSCHEDULABLE', 422, (id: string, why: string) => `request ${id} can never be placed: ${why}`, 'scheduler'),
  BUDGET_EXCEEDED: defineError('SHOAL_ERR_BUDGET_EXCEEDED', 402, (wantPerHour: number, capPerHour: number) => `launch refused: fleet cost would be $${wantPerHour.toFixed(3)}/h, over the budget cap $${capPerHour.toFixed(3)}/h`, 'scheduler'),
  PROVIDER_FAILED: defineError('SHOAL_ERR_PROVIDER_FAILED', 502, (provider: string, op: string, why: string) => `provider ${provider}: ${op} failed: ${why}`, 'scheduler'),
  NO_SPOT_CAPACITY: defineError('SHOAL_ERR_NO_SPOT_CAPACITY', 503, (pool: string) => `pool ${pool} has no spot capacity right now`, 'scheduler'),
  NOT_LEADER: defineError('SHOAL_ERR_NOT_LEADER', 503, (schedulerId: string, leader: string | undefined) => `scheduler ${schedulerId} is not the leader${leader ? ` (the leader is ${leader})` : ''}`, 'scheduler'),
  BAD_OPTION: defineError('SHOAL_ERR_SCHEDULER_BAD_OPTION', 400, (option: string, why: string) => `invalid scheduler option ${option}: ${why}`, 'scheduler'),
  UNKNOWN_NODE: defineError('SHOAL_ERR_UNKNOWN_NODE', 404, (nodeId: string) => `no node ${nodeId} is known to the scheduler`, 'scheduler'),
  UNKNOWN_POOL: defineError('SHOAL_ERR_UNKNOWN_POOL', 404, (pool: string) => `no pool ${pool} in the node-type catalogue`, 'scheduler'),
} as const;
