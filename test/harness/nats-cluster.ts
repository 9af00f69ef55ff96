/**
 * A real three-server NATS cluster per suite (routes on loopback, JetStream R3 possible,
 * authorization on with the same generated credentials `shoal up` uses). Connections get every
 * server's URL and reconnect forever, as the cluster's processes do. `kill(i)` SIGKILLs one
 * server and resolves once it has exited; `restart(i)` brings it back on the same ports and store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Role,
  connectAs,
  credentialOf,
  generateCredentials,
  loadConfig,
  startNatsCluster,
  type Credentials,
  type NatsClusterHandle,
  type NatsConnection,
} from '../../cluster/index.ts';

export interface TestNatsCluster {
  /** Every server's URL, comma-joined (what processes get in SHOAL_NATS_URL). */
  url: string;
  urls: string[];
  dir: string;
  credentials: Credentials;
  cluster: NatsClusterHandle;
  connect(role: Exclude<Role, 'node'>): Promise<NatsConnection>;
  connect(role: Role, opts: { nodeId?: string; servers?: string | string[] }): Promise<NatsConnection>;
  addNodes(nodeIds: readonly string[]): Promise<void>;
  env(role: Role, nodeId?: string): NodeJS.ProcessEnv;
  /** SIGKILLs server `i` (from 0) and resolves once it has exited. */
  kill(i: number): Promise<number>;
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestNatsCluster(opts: { size?: number; nodeIds?: string[] } = {}): Promise<TestNatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-cluster-'));
  const credentials = generateCredentials();
  const bin = loadConfig({ argv: [] }).nats.serverBin;
  const cluster = await startNatsCluster({ dir, size: opts.size ?? 3, credentials, ...(bin ? { bin } : {}), ...(opts.nodeIds ? { nodeIds: opts.nodeIds } : {}) });
  const conns: NatsConnection[] = [];
  return {
    url: cluster.url,
    urls: cluster.urls,
    dir,
    credentials,
    cluster,
    async connect(role: Role, o: { nodeId?: string; servers?: string | string[] } = {}) {
      if (role === Role.NODE) await cluster.addNodes([o.nodeId!]);
      const nc = await connectAs({ servers: o.servers ?? cluster.urls, role, credential: credentialOf(credentials, role, o.nodeId), ...(o.nodeId ? { nodeId: o.nodeId } : {}) });
      conns.push(nc);
      return nc;
    },
    addNodes: (ids) => cluster.addNodes(ids),
    env(role, nodeId) {
      const c = credentialOf(credentials, role, role === Role.NODE ? nodeId : undefined);
      return {
        ...process.env,
        SHOAL_NATS_URL: cluster.url,
        SHOAL_NATS_USER: c.user,
        SHOAL_NATS_PASS: c.pass,
        SHOAL_LOG_LEVEL: process.env.SHOAL_TEST_LOG_LEVEL ?? 'warn',
        SHOAL_LOG_PRETTY: 'false',
      };
    },
    async kill(i) {
      const s = cluster.server(i);
      if (!s) throw new Error(`server ${i} is not running`);
      const exited = new Promise<void>((res) => s.process.once('exit', () => res()));
      s.process.kill('SIGKILL');
      await exited;
      return s.pid;
    },
    async restart(i) {
      await cluster.restart(i);
    },
    async stop() {
      await Promise.allSettled(conns.map((c) => c.close()));
      await cluster.stop(5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
