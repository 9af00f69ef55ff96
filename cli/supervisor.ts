/**
 * `shoal up`'s children: started with their role's environment, kept up — one that crashes
 * (non-zero exit or a signal) is started again after 1 s, then 2, 4 … up to 30 s while it keeps
 * crashing (back to 1 s once it has run for a minute); one that exits cleanly (a drained node) is
 * not — and stopped in order (gateway, nodes, scheduler) on the way out.
 */
import { spawnChild, type Child } from '../cluster/index.ts';
import type { Out } from './output.ts';

export interface SupervisorOptions {
  out: Out;
  /** Flags every child gets (the cluster's own config flags). */
  args: string[];
}

export class Supervisor {
  readonly #children: Child[] = [];
  #stopping = false;

  constructor(private readonly o: SupervisorOptions) {}

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Starts `entry` as `name` and keeps it up; `onRestart` gets a restarted child's ready info. */
  start(name: string, entry: string, env: NodeJS.ProcessEnv, args: string[], onRestart?: (info: Record<string, unknown>) => void): Child {
    let backoffMs = 1000;
    const { out } = this.o;
    const launch = (): Child => {
      const c = spawnChild({ name, entry, args: [...this.o.args, ...args], env, onLine: out.childLine });
      this.#children.push(c);
      const startedAt = Date.now();
      void c.exited.then(({ code, signal }) => {
        const at = this.#children.indexOf(c);
        if (at >= 0) this.#children.splice(at, 1);
        if (this.#stopping) return;
        if (code === 0) {
          out.note(`${name} (pid ${c.pid}) exited cleanly (drained)`);
          return;
        }
        if (Date.now() - startedAt > 60_000) backoffMs = 1000;
        const wait = backoffMs;
        backoffMs = Math.min(30_000, backoffMs * 2);
        out.error(`${name} (pid ${c.pid}) exited unexpectedly (${signal ?? `code ${code}`}); restarting it in ${wait / 1000} s`);
        setTimeout(() => {
          if (this.#stopping) return;
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
  }

  /** Stops every child, in order: gateway, nodes, scheduler (each given `timeoutMs` before SIGKILL). */
  async stopAll(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    const byRole = (r: string) => this.#children.filter((c) => c.name === r || c.name.startsWith(`${r}:`));
    await Promise.all(byRole('gateway').map((c) => c.stop(timeoutMs)));
    await Promise.all(byRole('node').map((c) => c.stop(timeoutMs)));
    await Promise.all(byRole('scheduler').map((c) => c.stop(timeoutMs)));
  }
}
