/**
 * One set-up for the integration suites that need a running cluster: a real nats-server (auth
 * on), scheduler processes, node agents (each with its own NATS user), client connections, and
 * the wait until the leader sees every node alive. `stop()` in afterAll ends every process it
 * started, by pid.
 */
import { ActorClient, Role, request, subjects, type NatsConnection, type SchedulerStatus } from '../../cluster/index.ts';
import { JobClient, RegistryClient } from '../../ml/index.ts';
import { startTestNats, type TestNats } from './nats.ts';
import { ProcessSet, type TestProcess } from './processes.ts';
import { until } from './wait.ts';

export interface NodeOptions {
  id: string;
  /** A profile of the default config: `cpu-spot` or `cpu-ondemand`. @default cpu-spot */
  profile?: string;
  /** Flags for this node only (after the cluster's). */
  args?: string[];
}

export interface ClusterOptions {
  /** Flags every process gets (the cluster's config). @default [] */
  args?: string[];
  /** Flags the scheduler(s) get on top. @default [] */
  schedulerArgs?: string[];
  /** Scheduler ids, started one after the other (the first leads). @default one, without an explicit id */
  schedulers?: string[];
  nodes?: (string | NodeOptions)[];
}

export interface TestCluster {
  nats: TestNats;
  procs: ProcessSet;
  /** By id (`scheduler` when started without one). */
  schedulers: Record<string, TestProcess>;
  /** By node id; `startNode` and a restart replace the entry. */
  nodes: Record<string, TestProcess>;
  /** The client role's connection, and clients over it. */
  client: NatsConnection;
  actors: ActorClient;
  control: RegistryClient;
  jobs(): Promise<JobClient>;
  /** The leader's status (`shoal.sched.status`). */
  status(): Promise<SchedulerStatus>;
  /** Starts (or restarts) a node agent under `id` and waits until it is ready. */
  startNode(node: string | NodeOptions): Promise<TestProcess>;
  /** Waits until the leader sees exactly these nodes alive (ids; default: every node started). */
  untilNodes(ids?: string[], ms?: number): Promise<SchedulerStatus>;
  stop(): Promise<void>;
}

const s = subjects();

export async function startCluster(o: ClusterOptions = {}): Promise<TestCluster> {
  const args = o.args ?? [];
  const nats = await startTestNats();
  const procs = new ProcessSet(nats);
  const schedulers: Record<string, TestProcess> = {};
  const nodes: Record<string, TestProcess> = {};
  const stop = async () => {
    await procs.stopAll();
    await nats.stop();
  };
  try {
    for (const id of o.schedulers ?? [undefined]) {
      const p = procs.startScheduler([...args, ...(o.schedulerArgs ?? []), ...(id ? ['--scheduler-id', id] : [])]);
      schedulers[id ?? 'scheduler'] = p;
      await p.ready;
    }
    const startNode = async (n: string | NodeOptions) => {
      const spec = typeof n === 'string' ? { id: n } : n;
      const p = await procs.startNode(spec.id, spec.profile ?? 'cpu-spot', [...args, ...(spec.args ?? [])]);
      nodes[spec.id] = p;
      await p.ready;
      return p;
    };
    await Promise.all((o.nodes ?? []).map(startNode));
    const client = await nats.connect(Role.CLIENT);
    const status = () => request<SchedulerStatus>(client, s.scheduler('status'), { type: 'status' }, { timeoutMs: 2000 });
    const untilNodes = (ids = Object.keys(nodes), ms = 20_000) =>
      until(async () => {
        const st = await status();
        const alive = st.nodes.filter((n) => n.alive).map((n) => n.nodeId).sort();
        return JSON.stringify(alive) === JSON.stringify([...ids].sort()) ? st : undefined;
      }, ms, `the scheduler seeing ${ids.join(', ') || 'no node'} alive`);
    if (o.nodes?.length) await untilNodes();
    return {
      nats,
      procs,
      schedulers,
      nodes,
      client,
      actors: new ActorClient(client, s),
      control: new RegistryClient(client, s),
      jobs: () => JobClient.open(client),
      status,
      startNode,
      untilNodes,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
