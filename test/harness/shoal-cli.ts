/**
 * What the end-to-end tests that drive the `shoal` command share: where it is, the environment
 * it runs with (info logs, so the start-up banner is seen; no inherited NATS URL or password, so
 * it starts its own cluster), and whether a process is still alive.
 */
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const SHOAL = join(ROOT, 'bin', 'shoal.mjs');

export function shoalEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LOG_LEVEL: 'info', ...extra };
  delete env.SHOAL_NATS_URL;
  delete env.SHOAL_NATS_PASS;
  return env;
}

/** True while a process with this pid exists (signal 0 probes without signalling). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
