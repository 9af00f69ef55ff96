/**
 * `shoal up`: the embedded cluster. Starts nats-server (JetStream, authorization on, store under
 * `dataDir`), a scheduler, one node agent per profile replica and the gateway — each a real
 * process connected with its role's generated credentials — prints where to look, and on
 * Ctrl-C / SIGTERM stops them in order (gateway, nodes, scheduler, NATS), leaving no process
 * behind.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import {
  Errors,
  clusterInfoPath,
  credentialsPath,
  ensureWritableDir,
  generateCredentials,
  nodeCredential,
  readClusterInfo,
  spawnChild,
  startNatsServer,
  type Child,
  type ClusterInfo,
  type Config,
  type NatsServerHandle,
} from '../cluster/index.ts';
import { autoscalerNodeIds, withoutFlag } from '../scheduler/index.ts';
import { createLineSink, type Out } from './output.ts';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

async function portFree(host: string, port: number): Promise<boolean> {
  if (port === 0) return true;
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => res(true)));
  });
}

/**
 * A previous `shoal up` with this dataDir: refuse if it is still running; if its supervisor was
 * killed (SIGKILL leaves no chance to clean up), stop the nats-server it left — identified by
 * pid and by its command line naming this dataDir's config — and carry on.
 */
async function handleStale(dataDir: string, out: Out): Promise<void> {
  const info = readClusterInfo(dataDir);
  if (!info) return;
  if (info.supervisorPid !== process.pid && pidAlive(info.supervisorPid) && /shoal/.test(cmdline(info.supervisorPid))) {
    throw Errors.USAGE(`a cluster is already running from ${dataDir} (pid ${info.supervisorPid}); stop it first, or use another --dataDir`);
  }
  const conf = resolve(dataDir, 'nats-server.conf');
  if (pidAlive(info.natsPid) && cmdline(info.natsPid).includes(conf)) {
    out.note(`stopping nats-server pid ${info.natsPid} left behind by an earlier run`);
    process.kill(info.natsPid, 'SIGTERM');
    for (let i = 0; i < 50 && pidAlive(info.natsPid); i++) await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(clusterInfoPath(dataDir), { force: true });
}

export async function up(config: Config): Promise<number> {
  const out = createLineSink(config);
  const dataDir = resolve(config.dataDir);
  ensureWritableDir(dataDir);
  await handleStale(dataDir, out);

  if (!config.nats.servers && !(await portFree(config.nats.host, config.nats.port))) throw Errors.PORT_IN_USE('NATS', config.nats.port);
  if (!(await portFree(config.gateway.host, config.gateway.port))) throw Errors.PORT_IN_USE('gateway HTTP', config.gateway.port);

  // The node secret is kept when given (an external NATS whose node users were provisioned with it).
  const credentials = generateCredentials(config.nats.nodeSecret);
  writeFileSync(credentialsPath(dataDir), JSON.stringify(credentials, null, 2), { mode: 0o600 });
  // Every node this cluster may run has its own user: the profiles' nodes, and the autoscaler's slots.
  const profileNodeIds = config.nodes.flatMap((p) => Array.from({ length: p.replicas }, (_, i) => `${p.name}-${i + 1}`));

  let nats: NatsServerHandle | undefined;
  const children: Child[] = [];
  let stopping = false;

  const teardown = async (reason: string): Promise<void> => {
    stopping = true;
    out.note(`stopping (${reason})…`);
    const t = config.shutdownTimeoutMs;
    const byRole = (r: string) => children.filter((c) => c.name === r || c.name.startsWith(`${r}:`));
    await Promise.all(byRole('gateway').map((c) => c.stop(t)));
    await Promise.all(children.filter((c) => c.name.startsWith('node:')).map((c) => c.stop(t)));
    await Promise.all(byRole('scheduler').map((c) => c.stop(t)));
    await nats?.stop(t);
    rmSync(clusterInfoPath(dataDir), { force: true });
    out.note('all processes stopped');
  };
  const stopAll = async (reason: string, code: number): Promise<void> => {
    if (stopping) return;
    await teardown(reason);
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll('SIGINT', 0));
  process.on('SIGTERM', () => void stopAll('SIGTERM', 0));

  try {
    let natsUrl: string;
    if (config.nats.servers) {
      natsUrl = config.nats.servers;
      out.note(`using NATS at ${natsUrl} (not starting one)`);
    } else {
      nats = await startNatsServer({
        dir: dataDir,
        host: config.nats.host,
        port: config.nats.port,
        credentials,
        nodeIds: [...profileNodeIds, ...autoscalerNodeIds(config)],
        prefix: config.subjectPrefix,
        ...(config.nats.serverBin ? { bin: config.nats.serverBin } : {}),
      });
      natsUrl = nats.url;
      out.note(`nats-server pid ${nats.pid} listening on ${natsUrl} (JetStream store ${resolve(dataDir, 'jetstream')}, authorization on)`);
      nats.process.once('exit', (code, sig) => {
        if (!stopping) {
          out.error(`nats-server exited unexpectedly (${sig ?? code}); stopping the cluster`);
          void stopAll('nats-server died', 1);
        }
      });
    }

    const info: ClusterInfo = { natsUrl, supervisorPid: process.pid, natsPid: nats?.pid ?? 0, startedAt: Date.now() };
    writeFileSync(clusterInfoPath(dataDir), JSON.stringify(info, null, 2));

    // The children load the same config from the same flags — all but the node secret, which
    // only the scheduler gets (in its environment: it derives launched nodes' credentials).
    const configArgs = withoutFlag(process.argv.slice(3), 'nats.nodeSecret');
    const baseEnv = (role: 'scheduler' | 'gateway' | 'node', nodeId?: string): NodeJS.ProcessEnv => {
      const cred = role === 'node' ? nodeCredential(credentials.nodeSecret, nodeId!) : credentials[role];
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        SHOAL_NATS_URL: natsUrl,
        SHOAL_NATS_USER: cred.user,
        SHOAL_NATS_PASS: cred.pass,
        SHOAL_DATA_DIR: dataDir,
        SHOAL_LOG_PRETTY: 'false',
      };
      if (role === 'scheduler') env.SHOAL_NATS_NODE_SECRET = credentials.nodeSecret;
      else delete env.SHOAL_NATS_NODE_SECRET;
      return env;
    };
    /**
     * Starts a child and keeps it up: one that crashes (non-zero exit or a signal) is started
     * again after 1 s, then 2, 4 … up to 30 s while it keeps crashing (back to 1 s once it has
     * run for a minute). One that exits cleanly — a drained node — is not.
     */
    const start = (name: string, entry: string, role: 'scheduler' | 'gateway' | 'node', args: string[], onRestart?: (info: Record<string, unknown>) => void, nodeId?: string) => {
      let backoffMs = 1000;
      const launch = (): Child => {
        const c = spawnChild({ name, entry, args: [...configArgs, ...args], env: baseEnv(role, nodeId), onLine: out.childLine });
        children.push(c);
        const startedAt = Date.now();
        void c.exited.then(({ code, signal }) => {
          const at = children.indexOf(c);
          if (at >= 0) children.splice(at, 1);
          if (stopping) return;
          if (code === 0) {
            out.note(`${name} (pid ${c.pid}) exited cleanly (drained)`);
            return;
          }
          if (Date.now() - startedAt > 60_000) backoffMs = 1000;
          const wait = backoffMs;
          backoffMs = Math.min(30_000, backoffMs * 2);
          out.error(`${name} (pid ${c.pid}) exited unexpectedly (${signal ?? `code ${code}`}); restarting it in ${wait / 1000} s`);
          setTimeout(() => {
            if (stopping) return;
            const next = launch();
            next.ready.then(
              (info) => {
                out.note(`${name} restarted (pid ${next.pid})`);
                onRestart?.(info);
              },
              () => undefined, // it exited before it was ready: its exit handler restarts it again
            );
          }, wait).unref();
        });
        return c;
      };
      return launch();
    };

    const scheduler = start('scheduler', 'scheduler/main.ts', 'scheduler', []);
    await scheduler.ready;
    out.note(`scheduler pid ${scheduler.pid} ready`);

    const nodes: Child[] = [];
    for (const profile of config.nodes) {
      for (let i = 1; i <= profile.replicas; i++) {
        const id = `${profile.name}-${i}`;
        nodes.push(start(`node:${id}`, 'nodes/main.ts', 'node', ['--profile', profile.name, '--node-id', id], undefined, id));
      }
    }
    await Promise.all(nodes.map((n) => n.ready));
    out.note(`${nodes.length} node agents ready: ${nodes.map((n) => `${n.name.slice(5)} (pid ${n.pid})`).join(', ')}`);

    const gateway = start('gateway', 'gateway/main.ts', 'gateway', [], (ready) => {
      // With gateway.port 0 a restarted gateway listens elsewhere: say where.
      if (String(ready.url) !== info.gatewayUrl) out.note(`gateway now at ${String(ready.url)}`);
      info.gatewayUrl = String(ready.url);
      writeFileSync(clusterInfoPath(dataDir), JSON.stringify(info, null, 2));
    });
    const gw = await gateway.ready;
    info.gatewayUrl = String(gw.url);
    writeFileSync(clusterInfoPath(dataDir), JSON.stringify(info, null, 2));

    out.banner([
      `Shoal is up.`,
      `  gateway   ${info.gatewayUrl}   (try: curl ${info.gatewayUrl}/v2/health/ready)`,
      `  NATS      ${natsUrl}   (credentials: ${credentialsPath(dataDir)})`,
      `  status    ./bin/shoal.mjs status   (in another terminal)`,
      `  Ctrl-C stops everything.`,
    ]);
  } catch (err) {
    // Stop whatever started, then let the caller print the one-line reason and exit non-zero.
    if (!stopping) await teardown('start-up failed');
    throw err;
  }
  return new Promise<number>(() => undefined); // runs until a signal
}

