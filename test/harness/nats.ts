/**
 * A real nats-server per suite: random port, temp store, authorization on (the same generated
 * per-role credentials and permissions `shoal up` uses). Call `stop()` in afterAll.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectAs,
  generateCredentials,
  startNatsServer,
  type Credentials,
  type NatsConnection,
  type NatsServerHandle,
  type Role,
} from '../../cluster/index.ts';

export interface TestNats {
  url: string;
  port: number;
  dir: string;
  credentials: Credentials;
  server: NatsServerHandle;
  /** Connects with a role's credentials (closed by `stop()`). */
  connect(role: Role): Promise<NatsConnection>;
  /** Environment a cluster process needs to connect as `role`. */
  env(role: Role): NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export async function startTestNats(opts: { prefix?: string } = {}): Promise<TestNats> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-test-'));
  const credentials = generateCredentials();
  const server = await startNatsServer({ dir, port: 0, credentials, ...(opts.prefix ? { prefix: opts.prefix } : {}) });
  const conns: NatsConnection[] = [];
  return {
    url: server.url,
    port: server.port,
    dir,
    credentials,
    server,
    async connect(role) {
      const nc = await connectAs({ servers: server.url, role, credential: credentials[role], reconnect: false });
      conns.push(nc);
      return nc;
    },
    env(role) {
      return {
        ...process.env,
        SHOAL_NATS_URL: server.url,
        SHOAL_NATS_USER: credentials[role].user,
        SHOAL_NATS_PASS: credentials[role].pass,
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
