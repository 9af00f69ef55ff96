/**
 * Connecting to NATS as a role. Every process connects with its role's credentials and its
 * role's inbox prefix; connection failures become typed errors (auth vs. unreachable).
 */
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { Errors, ShoalError } from './errors.ts';
import { type Credential, type Credentials } from './auth.ts';
import { TENANT_ROLE, inboxOf } from './roles.ts';
import { Role } from './wire.ts';

export type { NatsConnection };

export interface ConnectOptions {
  servers: string | string[];
  role: Role;
  credential: Credential;
  /** The node a node-role connection belongs to (its inbox is its own). @default from the user name `node-<id>` */
  nodeId?: string;
  /** Connection name shown in the server's monitoring. */
  name?: string;
  /** Keep reconnecting forever after a first successful connect. @default true */
  reconnect?: boolean;
  timeoutMs?: number;
  /** Ping the server this often; two unanswered and the client reconnects elsewhere (config `nats.pingIntervalMs`). @default 10000 */
  pingIntervalMs?: number;
}

/** Unanswered pings after which a client drops its server and reconnects to another. */
const MAX_PINGS_OUT = 2;

/**
 * How long one dial (connect or reconnect) may take: twice the ping interval, between 2 s and 5 s.
 * After a host dies, a client's first reconnect dial may go to that host and hang until this
 * passes; an operator who lowers `nats.pingIntervalMs` to leave a dead server sooner gets the
 * shorter dial with it (1 s pings: 2 s, the netns suite's), and the default (10 s) keeps 5 s.
 */
export const dialTimeoutMs = (pingIntervalMs = 10_000): number => Math.min(5000, Math.max(2000, 2 * pingIntervalMs));

export async function connectAs(opts: ConnectOptions): Promise<NatsConnection> {
  const servers = Array.isArray(opts.servers) ? opts.servers : opts.servers.split(',').map((s) => s.trim());
  try {
    return await connect({
      servers,
      user: opts.credential.user,
      pass: opts.credential.pass,
      name: opts.name ?? `shoal-${opts.role}`,
      inboxPrefix: inboxOf(opts.role, opts.role === Role.NODE ? (opts.nodeId ?? nodeIdOfUser(opts.credential.user)) : undefined),
      reconnect: opts.reconnect ?? true,
      maxReconnectAttempts: -1,
      timeout: opts.timeoutMs ?? dialTimeoutMs(opts.pingIntervalMs),
      pingInterval: opts.pingIntervalMs ?? 10_000,
      maxPingOut: MAX_PINGS_OUT,
      // nats.js otherwise builds an Error (for its stack) on every request, even successful ones:
      // a measurable cost on the hot paths (ask, inference). Errors still carry code + message.
      noAsyncTraces: true,
    });
  } catch (err) {
    throw connectError(servers.join(','), err);
  }
}

/**
 * Connects as a tenant's own NATS user (README "Tenants over NATS"): NKey auth with the tenant's
 * seed (`shoal keys new --tenant T --nats`) and the tenant's inbox prefix, `_INBOX_tenant-<T>` —
 * the only inbox it may subscribe to, so without it no request gets its reply. What a client in
 * another language does the same way (Go: `nats.NkeyOptionFromSeed` + `nats.CustomInboxPrefix`).
 */
export async function connectTenant(opts: { servers: string | string[]; tenant: string; seed: string; name?: string; reconnect?: boolean; timeoutMs?: number }): Promise<NatsConnection> {
  const servers = Array.isArray(opts.servers) ? opts.servers : opts.servers.split(',').map((s) => s.trim());
  try {
    return await connect({
      servers,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(opts.seed)),
      name: opts.name ?? `shoal-tenant-${opts.tenant}`,
      inboxPrefix: inboxOf(TENANT_ROLE, opts.tenant),
      reconnect: opts.reconnect ?? true,
      maxReconnectAttempts: -1,
      timeout: opts.timeoutMs ?? 5000,
      pingInterval: 10_000,
      maxPingOut: MAX_PINGS_OUT,
    });
  } catch (err) {
    throw connectError(servers.join(','), err);
  }
}

/** `node-<id>` → `<id>` (the per-node user name). */
function nodeIdOfUser(user: string): string {
  if (!user.startsWith('node-')) throw Errors.BAD_CONFIG('SHOAL_NATS_USER', `a node connects as its own user node-<nodeId>, got "${user}"`);
  return user.slice('node-'.length);
}

export function connectError(servers: string, err: unknown): ShoalError {
  const msg = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.name : '';
  if (/authoriz|authenticat|AUTHORIZATION_VIOLATION/i.test(`${name} ${msg}`)) return Errors.AUTH_FAILED(msg);
  return Errors.CONNECT_FAILED(servers, msg);
}

/** Where `shoal up` keeps generated credentials (mode 0600) for local tools like `shoal status`. */
export const credentialsPath = (dataDir: string) => join(dataDir, 'credentials.json');
/** What `shoal up` writes next to the credentials: where NATS and the gateway listen. */
export const clusterInfoPath = (dataDir: string) => join(dataDir, 'cluster.json');

export interface ClusterInfo {
  natsUrl: string;
  gatewayUrl?: string;
  /** `host:port` of the gateway's gRPC service, when on. */
  gatewayGrpc?: string;
  /**
   * Each process's Prometheus endpoint by name (`scheduler`, `node:<id>`, `gateway`), for a
   * scrape config (docs/prometheus.yml) or a quick `curl`.
   */
  metrics?: Record<string, string>;
  supervisorPid: number;
  natsPid: number;
  /** With `nats.cluster` > 1: each server of the embedded cluster (`natsPid` is then 0). */
  natsServers?: { name: string; url: string; pid: number }[];
  startedAt: number;
}

export function readCredentials(dataDir: string): Credentials {
  try {
    return JSON.parse(readFileSync(credentialsPath(dataDir), 'utf8')) as Credentials;
  } catch (err) {
    throw Errors.CONNECT_FAILED(dataDir, `no credentials at ${credentialsPath(dataDir)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); is \`shoal up\` running with this dataDir?`);
  }
}

export function readClusterInfo(dataDir: string): ClusterInfo | undefined {
  try {
    return JSON.parse(readFileSync(clusterInfoPath(dataDir), 'utf8')) as ClusterInfo;
  } catch {
    return undefined;
  }
}

/**
 * How a process of the cluster finds NATS: config `nats.url`, `nats.user`, `nats.pass` (env
 * `SHOAL_NATS_URL`, `SHOAL_NATS_USER`, `SHOAL_NATS_PASS`, set by `shoal up`, or by whoever runs the
 * process in production). A node's user is its own, `node-<nodeId>` (the default when `nodeId`
 * is given).
 */
export function natsCredential(role: Role, nats: { url?: string | undefined; user?: string | undefined; pass?: string | undefined }, nodeId?: string): { servers: string; credential: Credential } {
  const servers = nats.url;
  const user = nats.user ?? (role === Role.NODE && nodeId ? `node-${nodeId}` : role);
  const pass = nats.pass;
  if (!servers) throw Errors.BAD_CONFIG('nats.url', 'not set (SHOAL_NATS_URL): the process needs the NATS server URL');
  if (!pass) throw Errors.BAD_CONFIG('nats.pass', `not set (SHOAL_NATS_PASS): the ${role} role needs its password`);
  return { servers, credential: { user, pass } };
}

/** What a probe of one server URL found. */
export interface ServerProbe {
  url: string;
  ok: boolean;
  /** Why it is not usable (refused, timed out, not a NATS server). */
  why?: string;
  /** The server's `server_name`, from its INFO. */
  serverName?: string;
}

/** `nats://h:p`, `h:p` or `h` → host and port (NATS's default 4222). */
function hostPort(url: string): { host: string; port: number } {
  const u = new URL(/^[a-z]+:\/\//i.test(url) ? url : `nats://${url}`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 4222 };
}

/**
 * Opens a TCP connection to each server and reads the INFO line a NATS server sends first (no
 * credentials needed): tells a server that is up from one that is down or is not NATS.
 */
export function probeNatsServers(urls: readonly string[], timeoutMs = 2000): Promise<ServerProbe[]> {
  return Promise.all(
    urls.map(
      (url) =>
        new Promise<ServerProbe>((resolve) => {
          let target: { host: string; port: number };
          try {
            target = hostPort(url);
          } catch {
            resolve({ url, ok: false, why: 'not a URL' });
            return;
          }
          let buf = '';
          const sock = tcpConnect(target);
          const done = (p: Omit<ServerProbe, 'url'>) => {
            clearTimeout(timer);
            sock.destroy();
            resolve({ url, ...p });
          };
          const timer = setTimeout(() => done({ ok: false, why: `no answer within ${timeoutMs} ms` }), timeoutMs);
          sock.setEncoding('utf8');
          sock.on('data', (d: string) => {
            buf += d;
            const nl = buf.indexOf('\n');
            if (nl < 0 && buf.length < 64_000) return;
            const line = buf.slice(0, nl < 0 ? undefined : nl).trim();
            if (!line.startsWith('INFO ')) return done({ ok: false, why: 'not a NATS server (no INFO line)' });
            try {
              const info = JSON.parse(line.slice(5)) as { server_name?: string };
              done({ ok: true, ...(info.server_name ? { serverName: info.server_name } : {}) });
            } catch {
              done({ ok: false, why: 'not a NATS server (bad INFO line)' });
            }
          });
          sock.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, why: err.code ?? err.message }));
          sock.on('close', () => done({ ok: false, why: 'connection closed before INFO' }));
        }),
    ),
  );
}

/**
 * The servers of `nats.servers` that answer; throws CONNECT_FAILED naming every server and why
 * when none does. Those that do not answer are returned for the caller to report.
 */
export async function reachableServers(servers: string, timeoutMs = 2000): Promise<{ reachable: string[]; unreachable: ServerProbe[] }> {
  const urls = servers.split(',').map((s) => s.trim()).filter(Boolean);
  const probes = await probeNatsServers(urls, timeoutMs);
  const reachable = probes.filter((p) => p.ok).map((p) => p.url);
  const unreachable = probes.filter((p) => !p.ok);
  if (reachable.length === 0) throw Errors.CONNECT_FAILED(urls.join(','), `none of the ${urls.length} server(s) answered: ${unreachable.map((p) => `${p.url} (${p.why})`).join(', ')}`);
  return { reachable, unreachable };
}
