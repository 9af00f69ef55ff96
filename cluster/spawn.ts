/**
 * Processes of the cluster (scheduler, node agents, gateway) started by a supervisor (`shoal up`, the
 * local provider, the test harness): spawned with an IPC channel (so they exit when the
 * supervisor goes away), in their own process group (so the supervisor, not the terminal,
 * decides the shutdown order), and stopped by pid. The child's side is `runProcess`
 * (process.ts), which sends the ready message this waits for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Errors, type ShoalError } from './errors.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// Absolute, so children can run in the user's working directory (where their config file is).
const TSX_LOADER = import.meta.resolve('tsx');

export interface ChildSpec {
  /** Display name (`scheduler`, `cpu-spot-1`, `gateway`). */
  name: string;
  /** Entry file relative to the repository root, e.g. `nodes/main.ts`. */
  entry: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Each complete line of the child's stdout/stderr. */
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * A command the child is started through, which must exec it in place (same pid, fds kept),
   * e.g. `['ip', 'netns', 'exec', 'ns1']` to run it in a network namespace.
   */
  wrap?: readonly string[];
}

export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  /** Resolves with the child's ready message; rejects if it exits first or times out. */
  ready: Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  stop(timeoutMs: number): Promise<void>;
}

export function spawnChild(spec: ChildSpec, readyTimeoutMs = 60_000): Child {
  const argv = [process.execPath, '--import', TSX_LOADER, join(ROOT, spec.entry), ...spec.args];
  const [cmd, ...rest] = [...(spec.wrap ?? []), ...argv];
  const proc = spawn(cmd!, rest, {
    cwd: process.cwd(),
    env: spec.env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: true,
  });
  const tail: string[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    createInterface({ input: proc[stream]! }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      spec.onLine(line, stream);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(Errors.CHILD_EXITED(spec.name, `not ready after ${readyTimeoutMs} ms`)), readyTimeoutMs);
    proc.on('message', (m: { type?: string; info?: Record<string, unknown> }) => {
      if (m?.type === 'ready') {
        clearTimeout(timer);
        resolve(m.info ?? {});
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(childExitError(spec.name, code, signal, tail));
    });
  });
  ready.catch(() => undefined);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    name: spec.name,
    pid: proc.pid!,
    process: proc,
    ready,
    exited,
    alive,
    async stop(timeoutMs: number) {
      if (!alive()) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => alive() && proc.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** The child's own one-line reason (a fatal log line's msg) when there is one. */
function childExitError(name: string, code: number | null, signal: NodeJS.Signals | null, tail: string[]): ShoalError {
  let reason = '';
  for (const line of [...tail].reverse()) {
    try {
      const j = JSON.parse(line) as { level?: number; msg?: string };
      if ((j.level ?? 0) >= 50 && j.msg) {
        reason = j.msg;
        break;
      }
    } catch {
      if (line.startsWith('shoal: ')) {
        reason = line.slice(7);
        break;
      }
    }
  }
  return Errors.CHILD_EXITED(name, `${signal ?? `code ${code}`}${reason ? `: ${reason}` : ''}`);
}
