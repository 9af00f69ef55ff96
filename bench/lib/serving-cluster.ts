/**
 * The Shoal side of the serving benchmarks: nats-server (auth on), scheduler, one node hosting
 * the inference actor, and the gateway as real processes; the MLP registered and deployed, ready
 * to serve. `extraEnv(role)` adds per-process environment (e.g. CPU profiling hooks); `modules`
 * are the node's actor modules (the batch bench adds ml/batch/actors.ts).
 */
import { connectAs, credentialOf, generateCredentials, spawnChild, startNatsCluster, startNatsServer, subjects, Role, type Child, type NatsServerHandle, type NatsConnection } from '../../cluster/index.ts';
import { RegistryClient, type TrackOptions } from '../../ml/index.ts';
import { mlpModel } from '../../test/fixtures/onnx.ts';

export interface ServingCluster {
  url: string;
  /** `host:port` of the gateway's gRPC service. */
  grpc: string;
  /** The nats-server (the first of a cluster). */
  server: NatsServerHandle;
  nc: NatsConnection;
  children: { scheduler: Child; node: Child; gateway: Child };
  stop(): Promise<void>;
}

export async function startServingCluster(dir: string, nodeId: string, extraEnv: (role: Role) => NodeJS.ProcessEnv = () => ({}), modules = ['ml/serving/actors.ts'], natsServers = 1): Promise<ServingCluster> {
  const credentials = generateCredentials();
  // One nats-server, or a cluster of `natsServers` (routes on loopback; every process gets every URL, JetStream R3).
  const natsCluster = natsServers > 1 ? await startNatsCluster({ dir, size: natsServers, credentials, nodeIds: [nodeId] }) : undefined;
  const server = natsCluster ? natsCluster.server(0)! : await startNatsServer({ dir, port: 0, credentials, nodeIds: [nodeId] });
  const natsUrl = natsCluster ? natsCluster.url : server.url;
  const all: Child[] = [];
  const env = (role: Role) => {
    const c = credentialOf(credentials, role, role === Role.NODE ? nodeId : undefined);
    return { ...process.env, SHOAL_NATS_URL: natsUrl, SHOAL_NATS_USER: c.user, SHOAL_NATS_PASS: c.pass, SHOAL_LOG_LEVEL: 'warn', SHOAL_LOG_PRETTY: 'false', ...extraEnv(role) };
  };
  const quiet = (l: string) => (/"level":(50|60)/.test(l) ? process.stderr.write(`${l}\n`) : undefined);
  const start = async (name: string, entry: string, role: Role, args: string[]) => {
    const c = spawnChild({ name, entry, args, env: env(role), onLine: quiet });
    all.push(c);
    return { child: c, info: (await c.ready) as { url?: string; grpc?: string } };
  };
  const stop = async () => {
    await Promise.all(all.map((c) => c.stop(5000)));
    if (natsCluster) await natsCluster.stop();
    else await server.stop();
  };
  try {
    const scheduler = (await start('scheduler', 'scheduler/main.ts', Role.SCHEDULER, [])).child;
    const node = (await start('node', 'nodes/main.ts', Role.NODE, ['--profile', 'cpu-ondemand', '--node-id', nodeId, '--actors.modules', JSON.stringify(modules)])).child;
    const gw = await start('gateway', 'gateway/main.ts', Role.GATEWAY, ['--gateway.port', '0', '--gateway.grpcPort', '0', '--gateway.open', 'true']);
    const url = gw.info.url ?? '';
    const nc = await connectAs({ servers: natsUrl, role: Role.CLIENT, credential: credentials.client });
    const deployments = new RegistryClient(nc, subjects());
    await deployments.register('mlp', mlpModel({ seed: 1 }), { aliases: ['production'] });
    for (let i = 0; ; i++) {
      try {
        await deployments.deploy('mlp', { replicas: 1, maxBatchSize: 64, maxQueueDelayMs: 0, readyTimeoutMs: 30_000 });
        break;
      } catch (err) {
        if (i > 50) throw err;
        await new Promise((r) => setTimeout(r, 200)); // the node may not be in the scheduler's view yet
      }
    }
    for (let i = 0; i < 100 && (await fetch(`${url}/v2/models/mlp/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    return { url, grpc: gw.info.grpc ?? '', server, nc, children: { scheduler, node, gateway: gw.child }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Deploys a registered model (retrying while the fleet is still coming up) and resolves once the
 * gateway at `gatewayUrl` says it is ready.
 */
export async function deployWhenServed(registry: RegistryClient, name: string, options: TrackOptions, gatewayUrl: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await registry.deploy(name, options);
      break;
    } catch (err) {
      if (i > 50) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  for (let i = 0; i < 100 && (await fetch(`${gatewayUrl}/v2/models/${name}/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
}
