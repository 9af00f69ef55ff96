/**
 * The far side of `npm run bench:actors`: one process that hosts a bench actor through the real
 * ActorHost (same code path as a node agent) AND a raw NATS request/reply echo on the same
 * connection, so both are measured between the same two processes.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Kvm } from '@nats-io/kv';
import {
  Actor,
  ActorTypeRegistry,
  Directory,
  Role,
  connectAs,
  createLogger,
  defineActorType,
  loadConfig,
  natsCredential,
  resources,
  subjects,
} from '../../cluster/index.ts';
import { ActorHost, WorkerPool } from '../../nodes/index.ts';

const Msg = Type.Union([
  Type.Object({ type: Type.Literal('echo'), n: Type.Integer() }),
  Type.Object({ type: Type.Literal('count') }),
  Type.Object({ type: Type.Literal('inc') }),
]);
class BenchActor extends Actor<Static<typeof Msg>> {
  #count = 0;
  receive(m: Static<typeof Msg>) {
    if (m.type === 'inc') {
      this.#count++;
      return null;
    }
    if (m.type === 'count') return this.#count;
    return m.n;
  }
}

const { servers, credential } = natsCredential(Role.NODE, loadConfig({ argv: [] }).nats, 'bench-node');
const nc = await connectAs({ servers, role: Role.NODE, credential, nodeId: 'bench-node' });
const s = subjects();
const kvm = new Kvm(nc);
const registry = new ActorTypeRegistry().register(defineActorType({ name: 'bench', messages: Msg, create: () => new BenchActor(), mailboxCapacity: 1_000_000 }));
const host = new ActorHost({
  nodeId: 'bench-node',
  nc,
  subjects: s,
  registry,
  directory: new Directory(await kvm.open(resources().buckets.actors)),
  checkpoints: await kvm.open(resources().buckets.checkpoints),
  pool: new WorkerPool({ threads: 1 }),
  log: createLogger({ level: 'warn', pretty: false }),
});
await host.start();
await host.spawn('bench-actor', { type: 'bench' }, 0, 1);
// The ceiling: a raw responder that echoes the request bytes back.
nc.subscribe(s.service('bench-raw'), { callback: (_e, m) => void m.respond(m.data) });
await nc.flush();
process.send?.({ type: 'ready', info: {} });
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
