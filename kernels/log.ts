/**
 * The kernels log through the logger they are given (a node passes its process logger, with
 * its bindings). Without one — a script or a test that creates its own kernels — they write
 * JSON lines at `info` with `component: kernels`.
 */
import { componentLogger, createLogger, type Logger } from '../cluster/index.ts';

export type { Logger };

let fallback: Logger | undefined;

/** The logger kernels use when none is passed in. */
export function defaultKernelsLogger(): Logger {
  fallback ??= componentLogger(createLogger({ level: 'info', pretty: false }), 'kernels');
  return fallback;
}
