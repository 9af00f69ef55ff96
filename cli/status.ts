/**
 * `shoal status`: what is connected, seen over NATS — every process's presence reply and the
 * scheduler's view of the nodes. Uses the `client` role's credentials from the data dir of a
 * local `shoal up`, or SHOAL_NATS_URL / SHOAL_NATS_PASS for a remote cluster.
 */
import { resolve } from 'node:path';
import {
  Errors,
  Role,
  clusterStatus,
  connectAs,
  readClusterInfo,
  readCredentials,
  natsCredential,
  subjects,
  type Config,
  type NatsConnection,
  type StatusReport,
} from '../cluster/index.ts';

export async function connectClient(config: Config): Promise<NatsConnection> {
  // A remote cluster (config nats.url / nats.user / nats.pass, env SHOAL_NATS_URL …), else the local `shoal up`'s.
  if (config.nats.url && config.nats.pass) {
    const { servers, credential } = natsCredential(Role.CLIENT, config.nats);
    return connectAs({ servers, role: Role.CLIENT, credential, reconnect: false });
  }
  const dataDir = resolve(config.dataDir);
  const info = readClusterInfo(dataDir);
  if (!info) throw Errors.CONNECT_FAILED(dataDir, `no cluster is running from ${dataDir} (start one with \`shoal up\`, or set SHOAL_NATS_URL and SHOAL_NATS_PASS)`);
  const creds = readCredentials(dataDir);
  return connectAs({ servers: info.natsUrl, role: Role.CLIENT, credential: creds.client, reconnect: false });
}

export type { StatusReport };

export async function collectStatus(nc: NatsConnection, config: Config, waitMs = 500): Promise<StatusReport> {
  return clusterStatus(nc, subjects(config.subjectPrefix), waitMs);
}

const ago = (ms: number) => (ms < 1000 ? `${ms}ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 60_000)}m`);
const uptime = (since: number) => ago(Date.now() - since);
const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)}GiB`;

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(`PROCESSES (${r.processes.length} answered)`);
  const rows = r.processes.map((p) => [p.role, p.id, String(p.pid), p.state, uptime(p.startedAt), p.role === 'gateway' ? `${String(p.details.url ?? '')}${p.details.grpc ? `  grpc ${String(p.details.grpc)}` : ''}` : p.role === 'node' ? String(p.details.profile ?? '') : p.role === 'scheduler' ? (p.details.leader ? 'leader' : 'standby') : '']);
  lines.push(...table(['ROLE', 'ID', 'PID', 'STATE', 'UP', 'DETAILS'], rows));
  lines.push('');
  if ('error' in r.scheduler) {
    lines.push(`NODES: scheduler unavailable (${r.scheduler.error})`);
  } else {
    lines.push(`NODES (scheduler ${r.scheduler.schedulerId})`);
    const nrows = r.scheduler.nodes.map((n) => [
      n.nodeId,
      n.alive ? n.state : 'dead',
      n.labels.pool,
      n.labels.zone,
      n.labels.spot ? 'spot' : 'on-demand',
      `$${n.labels.pricePerHour}/h`,
      `${n.capabilities.cpus} cpu ${gib(n.capabilities.memoryBytes)}`,
      n.capabilities.gpu ? `${n.capabilities.gpu.description || n.capabilities.gpu.vendor}${n.capabilities.gpu.software ? ' (software)' : ''}` : '-',
      n.capabilities.onnxruntime ? `ort ${n.capabilities.onnxruntime.version}` : '-',
      `${n.load.actors} actors, mbox ${n.load.mailboxDepth ?? 0}, cpu ${n.load.cpuPercent}%, el ${n.load.eventLoopDelayMs}ms${n.load.rejectedTells ? `, ${n.load.rejectedTells} refused tells` : ''}`,
      ago(n.lastSeenMsAgo),
    ]);
    lines.push(...table(['NODE', 'STATE', 'POOL', 'ZONE', 'MARKET', 'PRICE', 'RESOURCES', 'GPU', 'ONNX', 'LOAD', 'SEEN'], nrows));
    const pending = r.scheduler.pending ?? [];
    lines.push('', `ACTORS: ${r.scheduler.actors ?? 0} in the directory, ${pending.length} pending`);
    if (pending.length > 0) lines.push(...table(['PENDING', 'REASON'], pending.map((p) => [p.actorId, p.reason])));
  }
  return lines.join('\n');
}

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}
