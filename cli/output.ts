/**
 * What `shoal up` prints: its own notes, and the children's JSON log lines — passed through as
 * JSON when stdout is not a TTY (for log shippers), pretty-printed when it is.
 */
import { prettyFactory } from 'pino-pretty';
import type { Config } from '../cluster/index.ts';

export interface Out {
  note(msg: string): void;
  error(msg: string): void;
  banner(lines: string[]): void;
  childLine(line: string, stream: 'stdout' | 'stderr'): void;
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export function createLineSink(config: Config): Out {
  const pretty = config.log.pretty ?? process.stdout.isTTY === true;
  const prettify = pretty ? prettyFactory({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'hostname' }) : undefined;
  const min = LEVELS[config.log.level] ?? 30;
  const own = (level: number, msg: string) => {
    if (level < min) return;
    const rec = { level, time: Date.now(), pid: process.pid, role: 'supervisor', msg };
    process.stdout.write(prettify ? prettify(rec) : `${JSON.stringify(rec)}\n`);
  };
  return {
    note: (msg) => own(30, msg),
    error: (msg) => own(50, msg),
    banner(lines) {
      if (pretty) process.stdout.write(`\n${lines.join('\n')}\n\n`);
      else own(30, lines.join(' | ').replace(/\s+/g, ' '));
    },
    childLine(line, stream) {
      if (!prettify) {
        process[stream].write(`${line}\n`);
        return;
      }
      try {
        process.stdout.write(prettify(JSON.parse(line) as object));
      } catch {
        process.stdout.write(`${line}\n`);
      }
    },
  };
}
