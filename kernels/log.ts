import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

let root: Logger | undefined;

/** The kernels layer's default logger (level from `SHOAL_LOG_LEVEL`, default `info`). */
export function kernelsLogger(): Logger {
  root ??= pino({
    name: 'kernels',
    level: (process.env.SHOAL_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info',
    base: { pid: process.pid, component: 'kernels' },
  });
  return root;
}
