/**
 * A NATS cluster on one machine: `size` real nats-servers (odd: JetStream's RAFT needs a
 * majority), each with its own `server_name`, store (`<dir>/nats-<i>/jetstream`), client port and
 * route port, routed to each other on loopback with a generated route credential. Used by
 * `shoal up --nats.cluster 3` and by the test harness.
 *
 * Ports are pinned after the first start: a server restarted (`restart(i)`) comes back on the
 * same client and route ports with the same name and store, so clients' URL lists stay right and
 * JetStream catches the server up as the same peer.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Errors } from './errors.ts';
import { checkClusterSize } from './config.ts';
import type { Credential, Credentials, TenantUser } from './auth.ts';
import { startNatsServer, type NatsServerHandle } from './nats-server.ts';

/**
 * Longest a replicated stream (or KV bucket) whose leader's server died takes no write: nats-server's
 * RAFT followers campaign after 4–9 s without the leader (server/raft.go, fixed in 2.9), then win
 * within a campaign of up to 0.8 s. A lease TTL under this cannot be kept when the lease stream's
 * leader dies with the lease holder.
 */
export const RAFT_ELECTION_MAX_MS = 9_800;

export interface NatsClusterOptions {
  /** Each server's config, log and store go under `<dir>/nats-<i>` (i from 1). */
  dir: string;
  /** How many servers; odd (1, 3, 5, ...). */
  size: number;
  host?: string;
  /** Client port of the first server (0 = a free one); the others always take free ports. @default 0 */
  port?: number;
  credentials: Credentials;
  nodeIds?: readonly string[];
  /** Tenants' own NATS users (config `nats.tenantUsers`), on every server. */
  tenantUsers?: readonly TenantUser[];
  prefix?: string;
  bin?: string;
  /** The cluster's name in its routes. @default shoal */
  name?: string;
  readyTimeoutMs?: number;
}

export interface NatsClusterHandle {
  /** Every server's client URL, in server order (what clients get, comma-joined in `url`). */
  urls: string[];
  url: string;
  names: string[];
  /** The running handle of server `i` (undefined while it is down). */
  server(i: number): NatsServerHandle | undefined;
  /** Gives these nodes a user on every running server (and on any server started later). */
  addNodes(nodeIds: readonly string[]): Promise<void>;
  /** Starts server `i` again — same name, ports and store — after it exited. */
  restart(i: number): Promise<NatsServerHandle>;
  /** Stops every server (SIGTERM, SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<void>;
}

/** A port free right now on `host` (the kernel's pick); the caller binds it soon after. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function startNatsCluster(opts: NatsClusterOptions): Promise<NatsClusterHandle> {
  checkClusterSize(opts.size);
  const host = opts.host ?? '127.0.0.1';
  const name = opts.name ?? 'shoal';
  const routeCredential: Credential = { user: 'route', pass: randomBytes(18).toString('base64url') };
  const routePorts: number[] = [];
  for (let i = 0; i < opts.size; i++) routePorts.push(await freePort(host));
  const routes = routePorts.map((p) => `nats-route://${host}:${p}`);
  const names = routePorts.map((_, i) => `${name}-${i + 1}`);
  const clientPorts: number[] = routePorts.map((_, i) => (i === 0 ? (opts.port ?? 0) : 0));
  const nodeIds = new Set(opts.nodeIds ?? []);
  const handles: (NatsServerHandle | undefined)[] = routePorts.map(() => undefined);

  const startOne = async (i: number): Promise<NatsServerHandle> => {
    const h = await startNatsServer({
      dir: join(opts.dir, `nats-${i + 1}`),
      host,
      port: clientPorts[i]!,
      credentials: opts.credentials,
      nodeIds: [...nodeIds],
      ...(opts.tenantUsers ? { tenantUsers: opts.tenantUsers } : {}),
      serverName: names[i]!,
      cluster: { name, host, port: routePorts[i]!, credential: routeCredential, routes },
      ...(opts.prefix ? { prefix: opts.prefix } : {}),
      ...(opts.bin ? { bin: opts.bin } : {}),
      ...(opts.readyTimeoutMs ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
    });
    clientPorts[i] = h.port; // pinned: a restart comes back where clients look for it
    handles[i] = h;
    h.process.once('exit', () => {
      if (handles[i] === h) handles[i] = undefined;
    });
    return h;
  };

  const stop = async (timeoutMs = 10_000) => {
    await Promise.all(handles.map((h) => h?.stop(timeoutMs)));
  };
  try {
    // Together: each waits for its client listener only, not for its routes.
    await Promise.all(routePorts.map((_, i) => startOne(i)));
  } catch (err) {
    await stop(2000);
    throw err;
  }
  const urls = clientPorts.map((p) => `nats://${host}:${p}`);
  return {
    urls,
    url: urls.join(','),
    names,
    server: (i) => handles[i],
    async addNodes(ids) {
      for (const id of ids) nodeIds.add(id);
      await Promise.all(handles.map((h) => h?.addNodes(ids)));
    },
    async restart(i) {
      if (handles[i]) throw Errors.NATS_SERVER_FAILED(`${names[i]} is still running (pid ${handles[i]!.pid})`);
      return startOne(i);
    },
    stop,
  };
}
