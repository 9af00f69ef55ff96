/**
 * A real nats-server per suite: random port, temp store, authorization on (the same generated
 * per-role credentials, per-node users and permissions `shoal up` uses). Call `stop()` in
 * afterAll.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Role,
  connectAs,
  connectTenant,
  credentialOf,
  generateCredentials,
  loadConfig,
  startNatsServer,
  type Credential,
  type Credentials,
  type NatsConnection,
  type NatsServerHandle,
  type TenantUser,
} from '../../cluster/index.ts';

export interface TestNats {
  url: string;
  port: number;
  dir: string;
  credentials: Credentials;
  server: NatsServerHandle;
  /**
   * Connects with a role's credentials (closed by `stop()`). The node role is per node: pass
   * `{ nodeId }`; the node's user is added to the server first if it has none yet.
   */
  connect(role: Exclude<Role, 'node'>): Promise<NatsConnection>;
  connect(role: Role, opts: { nodeId?: string }): Promise<NatsConnection>;
  /** Connects as a tenant's own NATS user (NKey seed; README "Tenants over NATS"), closed by `stop()`. */
  connectTenant(tenant: string, seed: string): Promise<NatsConnection>;
  /** Gives these tenants' NKeys a user (rewrites the server config and reloads it). */
  addTenants(users: readonly TenantUser[]): Promise<void>;
  /** Gives these nodes a user (rewrites the server config and reloads it). */
  addNodes(nodeIds: readonly string[]): Promise<void>;
  /** A node's own credential (derived from the node secret). */
  nodeCredential(nodeId: string): Credential;
  /** Environment a cluster process needs to connect as `role` (as node `nodeId` for the node role). */
  env(role: Role, nodeId?: string): NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export async function startTestNats(opts: { prefix?: string; nodeIds?: string[] } = {}): Promise<TestNats> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-test-'));
  const credentials = generateCredentials();
  // The binary as the config names it (nats.serverBin, SHOAL_NATS_SERVER), else PATH.
  const bin = loadConfig({ argv: [] }).nats.serverBin;
  const server = await startNatsServer({ dir, port: 0, credentials, ...(bin ? { bin } : {}), ...(opts.nodeIds ? { nodeIds: opts.nodeIds } : {}), ...(opts.prefix ? { prefix: opts.prefix } : {}) });
  const conns: NatsConnection[] = [];
  return {
    url: server.url,
    port: server.port,
    dir,
    credentials,
    server,
    async connectTenant(tenant: string, seed: string) {
      const nc = await connectTenant({ servers: server.url, tenant, seed, reconnect: false });
      conns.push(nc);
      return nc;
    },
    addTenants: (users) => server.addTenants(users),
    async connect(role: Role, o: { nodeId?: string } = {}) {
      if (role === Role.NODE) await server.addNodes([requireNode(o.nodeId)]);
      const nc = await connectAs({ servers: server.url, role, credential: credentialOf(credentials, role, o.nodeId), reconnect: false, ...(o.nodeId ? { nodeId: o.nodeId } : {}) });
      conns.push(nc);
      return nc;
    },
    addNodes: (ids) => server.addNodes(ids),
    nodeCredential: (nodeId) => credentialOf(credentials, Role.NODE, nodeId),
    env(role, nodeId) {
      const c = credentialOf(credentials, role, role === Role.NODE ? requireNode(nodeId) : undefined);
      return {
        ...process.env,
        SHOAL_NATS_URL: server.url,
        SHOAL_NATS_USER: c.user,
        SHOAL_NATS_PASS: c.pass,
        SHOAL_LOG_LEVEL: process.env.SHOAL_TEST_LOG_LEVEL ?? 'warn',
        SHOAL_LOG_PRETTY: 'false',
      };
    },
    async stop() {
      await Promise.allSettled(conns.map((c) => c.close()));
      await server.stop(5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function requireNode(nodeId: string | undefined): string {
  if (!nodeId) throw new Error('the node role is per node: pass the node id');
  return nodeId;
}
