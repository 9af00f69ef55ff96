/**
 * The virtual fleet as its own process for `bench:scale` (so the benchmark's own calls do not share
 * an event loop with thousands of connections). Driven over IPC by bench/scale.ts.
 */
import { Role, connectAs, nodeCredential, subjects } from '../../cluster/index.ts';
import { VirtualFleet } from '../../nodes/index.ts';

type Cmd =
  | { type: 'start'; url: string; nodeSecret: string; count: number; idPrefix: string; heartbeatMs: number }
  | { type: 'silence'; nodeId: string }
  | { type: 'stats' }
  | { type: 'stop' };

let fleet: VirtualFleet | undefined;
const send = (m: unknown) => process.send!(m);

process.on('message', (cmd: Cmd) => {
  void (async () => {
    switch (cmd.type) {
      case 'start': {
        const t0 = performance.now();
        fleet = new VirtualFleet({
          connect: (nodeId) => connectAs({ servers: cmd.url, role: Role.NODE, nodeId, credential: nodeCredential(cmd.nodeSecret, nodeId), reconnect: false }),
          subjects: subjects(),
          prefix: 'shoal',
          count: cmd.count,
          idPrefix: cmd.idPrefix,
          heartbeatMs: cmd.heartbeatMs,
          labels: (i) => ({ pool: i % 2 ? 'cpu-spot' : 'cpu-ondemand', zone: `zone-${i % 3}`, spot: i % 2 === 1, pricePerHour: i % 2 ? 0.012 : 0.04 }),
        });
        await fleet.start();
        send({ type: 'ready', ms: performance.now() - t0 });
        return;
      }
      case 'silence':
        fleet!.silence(cmd.nodeId);
        send({ type: 'silenced', nodeId: cmd.nodeId, at: Date.now() });
        return;
      case 'stats':
        send({ type: 'stats', heartbeats: fleet?.heartbeats ?? 0, recordPuts: fleet?.recordPuts ?? 0, heartbeatErrors: fleet?.heartbeatErrors ?? 0, lastError: fleet?.lastHeartbeatError, skipped: fleet?.heartbeatsSkipped ?? 0, cpu: process.cpuUsage(), rss: process.memoryUsage().rss, at: Date.now() });
        return;
      case 'stop':
        await fleet?.stop();
        send({ type: 'stopped' });
        process.exit(0);
    }
  })().catch((err: unknown) => {
    send({ type: 'error', message: (err as Error).message });
  });
});
process.on('disconnect', () => process.exit(0));
