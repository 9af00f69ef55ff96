/**
 * Presence: every Shoal process answers `shoal.sys.ping` with its ProcessInfo, so a tool can
 * list what is connected (`shoal status`) with one scatter-gather request.
 */
import { hostname } from 'node:os';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { requestAll, serve } from './rpc.ts';
import type { Subjects } from './subjects.ts';
import { request } from './rpc.ts';
import { Ping, ProcessInfo, type ProcessState, type Role, type SchedulerStatus } from './wire.ts';
import type { Logger } from './logger.ts';
import { SHOAL_VERSION } from './version.ts';

export interface PresenceSource {
  role: Role;
  id: string;
  state: () => ProcessState;
  details?: () => Record<string, unknown>;
}

export function announce(nc: NatsConnection, s: Subjects, src: PresenceSource, log?: Logger): Subscription {
  const startedAt = Date.now();
  const host = hostname();
  return serve(
    nc,
    s.sysPing,
    Ping,
    (): ProcessInfo => ({
      role: src.role,
      id: src.id,
      pid: process.pid,
      host,
      state: src.state(),
      startedAt,
      version: SHOAL_VERSION,
      details: src.details?.() ?? {},
    }),
    log ? { log } : {},
  );
}

export async function discover(nc: NatsConnection, s: Subjects, maxWaitMs = 500): Promise<ProcessInfo[]> {
  const all = await requestAll<ProcessInfo>(nc, s.sysPing, { type: 'ping' } satisfies Ping, maxWaitMs);
  const order = { scheduler: 0, node: 1, gateway: 2, client: 3 } as const;
  return all.sort((a, b) => order[a.role] - order[b.role] || a.id.localeCompare(b.id));
}

/** What is connected (presence replies) and the scheduler leader's view (or why it did not answer). */
export interface StatusReport {
  processes: ProcessInfo[];
  scheduler: SchedulerStatus | { error: string };
}

/** `shoal status`, `GET /v1/status` and the dashboard's Cluster page: one scatter-gather ping and the leader's status. */
export async function clusterStatus(nc: NatsConnection, s: Subjects, waitMs = 500): Promise<StatusReport> {
  const [processes, scheduler] = await Promise.all([
    discover(nc, s, waitMs),
    request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' }, { timeoutMs: 2000, idempotent: true }).catch((err: unknown) => ({ error: (err as Error).message })),
  ]);
  return { processes, scheduler };
}
