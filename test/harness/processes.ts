/**
 * Real cluster processes for integration tests: node agents, a scheduler, a gateway, started
 * with a role's credentials against a test nats-server (a node with its own: its user is added
 * to the server before it starts), and killed by pid (SIGKILL to test failure, SIGTERM to test
 * drain). `stopAll()` in afterAll leaves nothing running.
 */
import { Role, spawnChild, type Child } from '../../cluster/index.ts';
import type { TestNats } from './nats.ts';

export interface TestProcess extends Child {
  /** Every line the process printed (JSON log lines), for assertions. */
  lines: string[];
  kill(signal?: NodeJS.Signals): void;
}

export class ProcessSet {
  readonly #all: TestProcess[] = [];
  constructor(private readonly nats: TestNats) {}

  start(name: string, entry: string, role: Exclude<Role, 'node'>, args: string[] = [], env: NodeJS.ProcessEnv = {}): TestProcess {
    return this.#spawn(name, entry, { ...this.nats.env(role), ...env }, args);
  }

  #spawn(name: string, entry: string, env: NodeJS.ProcessEnv, args: string[]): TestProcess {
    const lines: string[] = [];
    const child = spawnChild({ name, entry, args, env, onLine: (l) => lines.push(l) });
    const p: TestProcess = Object.assign(child, {
      lines,
      kill: (signal: NodeJS.Signals = 'SIGKILL') => {
        if (child.alive()) child.process.kill(signal);
      },
    });
    this.#all.push(p);
    return p;
  }

  /**
   * A node agent with a profile from the default config (`cpu-spot`, `cpu-ondemand`),
   * connected with its own credentials (its user is added to the server first).
   */
  async startNode(nodeId: string, profile = 'cpu-spot', args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TestProcess> {
    await this.nats.addNodes([nodeId]);
    return this.#spawn(`node:${nodeId}`, 'nodes/main.ts', { ...this.nats.env(Role.NODE, nodeId), ...env }, ['--profile', profile, '--node-id', nodeId, ...args]);
  }

  startScheduler(args: string[] = []): TestProcess {
    return this.start('scheduler', 'scheduler/main.ts', 'scheduler', args);
  }

  /**
   * A gateway process. Open (`--gateway.open true`: no keys) unless the arguments give keys
   * (`--gateway.apiKeys`) or say `--gateway.open` themselves: a gateway without keys refuses to start otherwise.
   */
  startGateway(args: string[] = ['--gateway.port', '0', '--gateway.grpcPort', '0'], env: NodeJS.ProcessEnv = {}): TestProcess {
    const decided = args.some((a) => /^--gateway\.(apiKeys|open)(=|$)/.test(a)) || env.SHOAL_GATEWAY_API_KEYS !== undefined || env.SHOAL_GATEWAY_OPEN !== undefined;
    return this.start('gateway', 'gateway/main.ts', 'gateway', decided ? args : [...args, '--gateway.open', 'true'], env);
  }

  async stopAll(timeoutMs = 5000): Promise<void> {
    await Promise.all(this.#all.map((p) => p.stop(timeoutMs)));
  }
}
