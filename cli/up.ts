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
  reachableServers,
  startNatsCluster,
  startNatsServer,
  type Child,
  type ClusterInfo,
  type Config,
  type Credentials,
  type NatsClusterHandle,
  type NatsServerHandle,
} from '../cluster/index.ts';
import { autoscalerNodeIds, withoutFlag } from '../scheduler/index.ts';
import { upDemo } from './demo.ts';
import { createLineSink, type Out } from './output.ts';
import { Supervisor } from './supervisor.ts';
import { upGatewayAccess } from './keys.ts';

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
  // A lone server's config is <dataDir>/nats-server.conf; a cluster's are <dataDir>/nats-<i>/nats-server.conf.
  const left = [{ pid: info.natsPid, conf: resolve(dataDir, 'nats-server.conf') }, ...(info.natsServers ?? []).map((s, i) => ({ pid: s.pid, conf: resolve(dataDir, `nats-${i + 1}`, 'nats-server.conf') }))];
  for (const { pid, conf } of left) {
    if (!pid || !pidAlive(pid) || !cmdline(pid).includes(conf)) continue;
    out.note(`stopping nats-server pid ${pid} left behind by an earlier run`);
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(clusterInfoPath(dataDir), { force: true });
}

/** A child's environment: where NATS is and its role's (or its node's) credentials; the node secret only for the scheduler. */
function childEnv(role: 'scheduler' | 'gateway' | 'node', natsUrl: string, dataDir: string, credentials: Credentials, nodeId?: string): NodeJS.ProcessEnv {
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
}

/**
 * Metrics ports: the scheduler `metrics.basePort`, node agents the next ones in profile order
 * (fixed, so a Prometheus scrape config stays right across restarts); none when it is 0, or when
 * `metrics.port` was given (one port cannot serve several processes).
 */
function withMetricsPort(env: NodeJS.ProcessEnv, config: Config, offset: number): NodeJS.ProcessEnv {
  const base = config.metrics.basePort;
  if (base === 0 || config.metrics.port !== 0 || base + offset > 65535) return env;
  return { ...env, SHOAL_METRICS_PORT: String(base + offset) };
}

/**
 * The endpoints as a Prometheus file-based service discovery file (`file_sd_configs`, see
 * docs/prometheus.yml): one target group per process, labelled with its role and name.
 */
function writePrometheusTargets(dataDir: string, info: ClusterInfo): void {
  const groups = Object.entries(info.metrics ?? {}).map(([name, url]) => {
    const u = new URL(url);
    return { targets: [u.host], labels: { role: name.split(':')[0]!, process: name, __metrics_path__: u.pathname } };
  });
  writeFileSync(resolve(dataDir, 'prometheus-targets.json'), JSON.stringify(groups, null, 2));
}

/** Records a child's `/metrics` URL (from its ready message) in cluster.json's `metrics`. */
function recordMetrics(info: ClusterInfo, name: string, ready: Record<string, unknown>): void {
  if (typeof ready.metrics === 'string') (info.metrics ??= {})[name] = ready.metrics;
}

/** The scheduler, then one node agent per profile replica, then the gateway: each kept up by the supervisor. */
async function startChildren(sup: Supervisor, config: Config, env: (role: 'scheduler' | 'gateway' | 'node', nodeId?: string) => NodeJS.ProcessEnv, info: ClusterInfo, dataDir: string, out: Out): Promise<void> {
  const scheduler = sup.start('scheduler', 'scheduler/main.ts', withMetricsPort(env('scheduler'), config, 0), []);
  recordMetrics(info, 'scheduler', await scheduler.ready);
  out.note(`scheduler pid ${scheduler.pid} ready`);

  const nodes: Child[] = [];
  let offset = 1;
  for (const profile of config.nodes) {
    for (let i = 1; i <= profile.replicas; i++) {
      const id = `${profile.name}-${i}`;
      nodes.push(sup.start(`node:${id}`, 'nodes/main.ts', withMetricsPort(env('node', id), config, offset++), ['--profile', profile.name, '--node-id', id]));
    }
  }
  for (const [i, ready] of (await Promise.all(nodes.map((n) => n.ready))).entries()) recordMetrics(info, nodes[i]!.name, ready);
  out.note(`${nodes.length} node agents ready: ${nodes.map((n) => `${n.name.slice(5)} (pid ${n.pid})`).join(', ')}`);

  // No keys on loopback: the quick start's gateway is open (cli/keys.ts upGatewayAccess).
  const access = upGatewayAccess(config);
  if (access.note) out.note(access.note);
  const gateway = sup.start('gateway', 'gateway/main.ts', { ...env('gateway'), ...(access.open ? { SHOAL_GATEWAY_OPEN: 'true' } : {}) }, [], (ready) => {
    // With gateway.port 0 a restarted gateway listens elsewhere: say where.
    if (String(ready.url) !== info.gatewayUrl) out.note(`gateway now at ${String(ready.url)}`);
    info.gatewayUrl = String(ready.url);
    if (ready.grpc !== undefined) info.gatewayGrpc = String(ready.grpc);
    (info.metrics ??= {}).gateway = `${info.gatewayUrl}/metrics`;
    writeFileSync(clusterInfoPath(dataDir), JSON.stringify(info, null, 2));
    writePrometheusTargets(dataDir, info);
  });
  const gw = await gateway.ready;
  info.gatewayUrl = String(gw.url);
  // The gateway serves its metrics on its HTTP port.
  (info.metrics ??= {}).gateway = `${info.gatewayUrl}/metrics`;
  writePrometheusTargets(dataDir, info);
  if (gw.grpc !== undefined) info.gatewayGrpc = String(gw.grpc);
  writeFileSync(clusterInfoPath(dataDir), JSON.stringify(info, null, 2));
}

export async function up(config: Config, opts: { demo?: boolean } = {}): Promise<number> {
  const out = createLineSink(config);
  const dataDir = resolve(config.dataDir);
  ensureWritableDir(dataDir);
  await handleStale(dataDir, out);

  if (!config.nats.servers && !(await portFree(config.nats.host, config.nats.port))) throw Errors.PORT_IN_USE('NATS', config.nats.port);
  upGatewayAccess(config); // refuses a gateway without keys off loopback before anything starts
  if (!(await portFree(config.gateway.host, config.gateway.port))) throw Errors.PORT_IN_USE('gateway HTTP', config.gateway.port);
  if (config.gateway.grpc && !(await portFree(config.gateway.host, config.gateway.grpcPort))) throw Errors.PORT_IN_USE('gateway gRPC', config.gateway.grpcPort);

  // The node secret is kept when given (an external NATS whose node users were provisioned with it).
  const credentials = generateCredentials(config.nats.nodeSecret);
  writeFileSync(credentialsPath(dataDir), JSON.stringify(credentials, null, 2), { mode: 0o600 });
  // Every node this cluster may run has its own user: the profiles' nodes, and the autoscaler's slots.
  const profileNodeIds = config.nodes.flatMap((p) => Array.from({ length: p.replicas }, (_, i) => `${p.name}-${i + 1}`));

  let nats: NatsServerHandle | undefined;
  let natsCluster: NatsClusterHandle | undefined;
  // The children load the same config from the same flags — all but the node secret, which
  // only the scheduler gets (in its environment: it derives launched nodes' credentials).
  const sup = new Supervisor({ out, args: withoutFlag(process.argv.slice(3), 'nats.nodeSecret').filter((a) => a !== '--demo') });

  const teardown = async (reason: string): Promise<void> => {
    out.note(`stopping (${reason})…`);
    await sup.stopAll(config.shutdownTimeoutMs);
    await nats?.stop(config.shutdownTimeoutMs);
    await natsCluster?.stop(config.shutdownTimeoutMs);
    rmSync(clusterInfoPath(dataDir), { force: true });
    rmSync(resolve(dataDir, 'prometheus-targets.json'), { force: true });
    out.note('all processes stopped');
  };
  let exiting = false;
  const stopAll = async (reason: string, code: number): Promise<void> => {
    if (exiting) return;
    exiting = true;
    await teardown(reason);
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll('SIGINT', 0));
  process.on('SIGTERM', () => void stopAll('SIGTERM', 0));

  try {
    let natsUrl: string;
    const info: ClusterInfo = { natsUrl: '', supervisorPid: process.pid, natsPid: 0, startedAt: Date.now() };
    const saveInfo = () => writeFileSync(clusterInfoPath(dataDir), JSON.stringify(info, null, 2));
    if (!config.nats.servers && config.nats.replicas !== undefined && config.nats.replicas > config.nats.cluster) {
      throw Errors.BAD_CONFIG('nats.replicas', `${config.nats.replicas} replicas need at least ${config.nats.replicas} servers; nats.cluster is ${config.nats.cluster}`);
    }
    if (config.nats.servers) {
      // Every URL goes to the processes (clients reconnect to a server that comes back); the ones not answering now are named.
      const { reachable, unreachable } = await reachableServers(config.nats.servers);
      natsUrl = config.nats.servers;
      for (const u of unreachable) out.error(`NATS server ${u.url} is not reachable (${u.why}); starting with ${reachable.join(', ')}`);
      out.note(`using NATS at ${reachable.join(', ')} (not starting one)`);
    } else if (config.nats.cluster > 1) {
      natsCluster = await startNatsCluster({
        dir: dataDir,
        size: config.nats.cluster,
        host: config.nats.host,
        port: config.nats.port,
        credentials,
        nodeIds: [...profileNodeIds, ...autoscalerNodeIds(config)],
        tenantUsers: config.nats.tenantUsers,
        prefix: config.subjectPrefix,
        ...(config.nats.serverBin ? { bin: config.nats.serverBin } : {}),
      });
      const cluster = natsCluster;
      natsUrl = cluster.url;
      info.natsServers = cluster.names.map((name, i) => ({ name, url: cluster.urls[i]!, pid: cluster.server(i)!.pid }));
      for (const s of info.natsServers) out.note(`nats-server ${s.name} pid ${s.pid} listening on ${s.url} (JetStream store ${resolve(dataDir, `nats-${cluster.names.indexOf(s.name) + 1}`, 'jetstream')})`);
      out.note(`NATS cluster of ${cluster.names.length} (routes on ${config.nats.host}, authorization on, streams with ${config.nats.replicas ?? Math.min(3, cluster.names.length)} replicas)`);
      // One server down: the others keep the cluster (and JetStream's quorum); bring it back on its own store, with a back-off.
      const watch = (i: number, h: NatsServerHandle) => {
        const startedAt = Date.now();
        h.process.once('exit', (code, sig) => {
          if (exiting) return;
          if (Date.now() - startedAt > 60_000) backoff[i] = 1000;
          const wait = backoff[i]!;
          backoff[i] = Math.min(30_000, wait * 2);
          const running = cluster.names.filter((_, j) => cluster.server(j)).length;
          out.error(`nats-server ${cluster.names[i]} (pid ${h.pid}) exited unexpectedly (${sig ?? `code ${code}`}); the cluster keeps running on the other ${running}; restarting it in ${wait / 1000} s`);
          const again = () => {
            if (exiting) return;
            cluster.restart(i).then(
              (next) => {
                if (exiting) return void next.stop(config.shutdownTimeoutMs);
                info.natsServers![i]!.pid = next.pid;
                saveInfo();
                out.note(`nats-server ${cluster.names[i]} restarted (pid ${next.pid}) on ${cluster.urls[i]}, same store`);
                watch(i, next);
              },
              (err: Error) => {
                const retry = backoff[i]!;
                backoff[i] = Math.min(30_000, retry * 2);
                out.error(`nats-server ${cluster.names[i]} did not start again (${err.message}); retrying in ${retry / 1000} s`);
                setTimeout(again, retry).unref();
              },
            );
          };
          setTimeout(again, wait).unref();
        });
      };
      const backoff = cluster.names.map(() => 1000);
      cluster.names.forEach((_, i) => watch(i, cluster.server(i)!));
    } else {
      nats = await startNatsServer({
        dir: dataDir,
        host: config.nats.host,
        port: config.nats.port,
        credentials,
        nodeIds: [...profileNodeIds, ...autoscalerNodeIds(config)],
        tenantUsers: config.nats.tenantUsers,
        prefix: config.subjectPrefix,
        // Out of the terminal's process group: Ctrl-C reaches this supervisor, which stops the
        // gateway, the nodes and the scheduler first and the server last.
        ownGroup: true,
        ...(config.nats.serverBin ? { bin: config.nats.serverBin } : {}),
      });
      natsUrl = nats.url;
      out.note(`nats-server pid ${nats.pid} listening on ${natsUrl} (JetStream store ${resolve(dataDir, 'jetstream')}, authorization on)`);
      nats.process.once('exit', (code, sig) => {
        if (!exiting) {
          out.error(`nats-server exited unexpectedly (${sig ?? code}); stopping the cluster`);
          void stopAll('nats-server died', 1);
        }
      });
    }

    info.natsUrl = natsUrl;
    info.natsPid = nats?.pid ?? 0;
    saveInfo();
    await startChildren(sup, config, (role, nodeId) => childEnv(role, natsUrl, dataDir, credentials, nodeId), info, dataDir, out);

    out.banner([
      `Shoal is up.`,
      `  gateway   ${info.gatewayUrl}   (try: curl ${info.gatewayUrl}/v2/health/ready)`,
      `  dashboard ${info.gatewayUrl}/ui   (in a browser${config.gateway.apiKeys.length > 0 ? '; sign in with an admin key' : ''})`,
      ...(info.gatewayGrpc ? [`  gRPC      ${info.gatewayGrpc}   (KServe v2 inference.GRPCInferenceService, proto: gateway/grpc/grpc_predict_v2.proto)`] : []),
      `  NATS      ${natsUrl}   (credentials: ${credentialsPath(dataDir)})`,
      ...(info.metrics ? [`  metrics   ${Object.values(info.metrics).join('  ')}   (Prometheus; scrape config: docs/prometheus.yml)`] : []),
      `  status    ./bin/shoal.mjs status   (in another terminal)`,
      `  Ctrl-C stops everything.`,
    ]);
    if (opts.demo) await upDemo(config, out);
  } catch (err) {
    // Stop whatever started, then let the caller print the one-line reason and exit non-zero.
    if (!exiting) {
      exiting = true;
      await teardown('start-up failed');
    }
    throw err;
  }
  return new Promise<number>(() => undefined); // runs until a signal
}

