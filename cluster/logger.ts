/**
 * pino logging: one root logger per process, one child per component with `component` and
 * `nodeId` bindings. Pretty output only when stdout is a TTY (or `log.pretty` says so); child
 * processes of `shoal up` write JSON lines and the parent pretty-prints them on a TTY.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** From the config (`log.level`, env `SHOAL_LOG_LEVEL`), resolved by the caller. @default info */
  level?: LevelWithSilent;
  pretty?: boolean;
  /** Process-wide bindings (role, nodeId, pid). */
  bindings?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  const base = { pid: process.pid, ...opts.bindings };
  if (pretty) {
    return pino({ level, base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'hostname' } } });
  }
  return pino({ level, base });
}

/** A component's logger: `componentLogger(root, 'membership', { nodeId })`. */
export function componentLogger(root: Logger, component: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...bindings });
}
