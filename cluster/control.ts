/**
 * Control modules: server-side services the scheduler process runs, loaded by config
 * (`scheduler.modules`) the way node agents load actor modules, so the scheduler needs no
 * import of the product layers above it (`scheduler/` must not import `ml/`).
 *
 * A module exports `controlModules`, an array of `{ name, leaderOnly?, start(ctx) }`:
 *
 * - `start(ctx)` runs once the process is connected and the JetStream resources exist, and
 *   returns a handle whose `stop()` is called on shutdown (or when leadership is lost).
 * - Without `leaderOnly`, a module runs in every scheduler process (leader and standbys): use it
 *   for request/reply services in a queue group whose writes are compare-and-swap, so any
 *   process may serve (the registry service). With `leaderOnly: true` it is started when this
 *   process becomes the leader and stopped when it stops leading (for controllers that must be
 *   the only one deciding, e.g. a rollout controller).
 *
 * ```ts
 * // my-control.ts
 * import { defineControlModule } from './cluster/index.ts';
 * export const controlModules = [defineControlModule({ name: 'hello', start: (ctx) => {
 *   const sub = serve(ctx.nc, `${ctx.subjects.prefix}.hello`, Type.Any(), () => 'hi', { queue: 'hello' });
 *   return { stop: () => sub.unsubscribe() };
 * } })];
 * ```
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from './config.ts';
import { Errors } from './errors.ts';
import type { Logger } from './logger.ts';
import type { Subjects } from './subjects.ts';

export interface ControlContext {
  /** The scheduler's connection (scheduler role: may do anything). */
  nc: NatsConnection;
  subjects: Subjects;
  config: Config;
  /** A logger bound to the module's name. */
  log: Logger;
  /** This scheduler process's id. */
  schedulerId: string;
  /** Whether this process holds the leader lease now. */
  isLeader(): boolean;
}

export interface ControlHandle {
  stop(): void | Promise<void>;
}

export interface ControlModule {
  /** Shown in logs; unique within the process. */
  name: string;
  /** Start on the leader only (and stop when leadership is lost). @default false */
  leaderOnly?: boolean;
  start(ctx: ControlContext): ControlHandle | Promise<ControlHandle>;
}

/** Identity function that types a control module. */
export const defineControlModule = (m: ControlModule): ControlModule => m;

const SHOAL_ROOT = new URL('../', import.meta.url);

/**
 * The URL of a module named in config (`scheduler.modules`, `actors.modules`): `shoal:<path>`
 * (shipped with Shoal), a URL, or a path relative to the working directory.
 */
export function moduleUrl(m: string): string {
  if (m.startsWith('shoal:')) return new URL(m.slice('shoal:'.length), SHOAL_ROOT).href;
  if (/^[a-z]+:/.test(m)) return m;
  return pathToFileURL(isAbsolute(m) ? m : resolve(process.cwd(), m)).href;
}

/** Imports each module and collects its `controlModules`; a bad module fails with BAD_CONFIG naming it. */
export async function loadControlModules(modules: readonly string[], field = 'scheduler.modules'): Promise<ControlModule[]> {
  const out: ControlModule[] = [];
  for (const m of modules) {
    let mod: { controlModules?: unknown };
    try {
      mod = (await import(moduleUrl(m))) as { controlModules?: unknown };
    } catch (err) {
      throw Errors.BAD_CONFIG(field, `cannot load ${m}: ${(err as Error).message}`);
    }
    const list = mod.controlModules;
    if (!Array.isArray(list)) throw Errors.BAD_CONFIG(field, `${m} does not export a \`controlModules\` array`);
    for (const c of list as unknown[]) {
      const cm = c as Partial<ControlModule> | null;
      if (!cm || typeof cm.name !== 'string' || typeof cm.start !== 'function') throw Errors.BAD_CONFIG(field, `${m}: every control module needs a name and a start(ctx) function`);
      if (out.some((o) => o.name === cm.name)) throw Errors.BAD_CONFIG(field, `${m}: control module "${cm.name}" is defined twice`);
      out.push(cm as ControlModule);
    }
  }
  return out;
}
