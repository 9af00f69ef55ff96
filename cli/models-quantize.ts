/**
 * `shoal models quantize NAME@VERSION --int8|--fp16 [--format integer|qdq] [--rounds 3] [--iterations 200] [--json]`
 *
 * Quantizes a registered version (VERSION: a number, an alias, or `latest`; `NAME` alone means
 * latest), measures it against its source and registers it as the next version; prints the report
 * (README "Quantization"). Exit code 0 when the new version is accepted, 3 when it was registered
 * but marked rejected (slower, or more than a point of its main metric lost).
 */
import { Errors, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { Int8Format, QuantizeMode, describeReport, quantizeVersion } from '../ml/index.ts';

export const MODELS_QUANTIZE_FLAGS = ['int8', 'fp16', 'format', 'rounds', 'iterations', 'weight-bits'] as const;

const USAGE = 'usage: shoal models quantize NAME@VERSION --int8|--fp16 [--format integer|qdq] [--weight-bits 7|8] [--rounds 3] [--iterations 200] [--json]';

/** `NAME@VERSION` (or `NAME`: latest) → name and version reference. */
export function parseModelRef(s: string): { name: string; ref: number | string } {
  const at = s.lastIndexOf('@');
  if (at === 0) throw Errors.USAGE(`"${s}" has no model name\n${USAGE}`);
  const [name, v] = at < 0 ? [s, 'latest'] : [s.slice(0, at), s.slice(at + 1)];
  if (!v) throw Errors.USAGE(`"${s}": the version after @ is empty\n${USAGE}`);
  return { name, ref: /^\d+$/.test(v) ? Number(v) : v };
}

function intFlag(flags: Map<string, string>, name: string, min: number, max: number): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw Errors.USAGE(`--${name} takes an integer in ${min}..${max}, got "${v}"`);
  return n;
}

export interface QuantizeCtx {
  positionals: string[];
  flags: Map<string, string>;
  nc: NatsConnection;
  subjects: Subjects;
  print(value: unknown, text: string): void;
}

export async function quantizeCmd(c: QuantizeCtx): Promise<number> {
  const { flags } = c;
  // `--int8 NAME@V` reads NAME@V as the flag's value: take it back as the positional.
  const positionals = [...c.positionals];
  for (const f of ['int8', 'fp16']) {
    const v = flags.get(f);
    if (v !== undefined && v !== 'true') {
      positionals.push(v);
      flags.set(f, 'true');
    }
  }
  const target = positionals[0];
  if (!target) throw Errors.USAGE(`shoal models quantize: missing NAME@VERSION\n${USAGE}`);
  const int8 = flags.has('int8');
  const fp16 = flags.has('fp16');
  if (int8 === fp16) throw Errors.USAGE(`shoal models quantize: give exactly one of --int8 or --fp16\n${USAGE}`);
  const format = flags.get('format');
  if (format !== undefined && !Object.values(Int8Format).includes(format as Int8Format)) throw Errors.USAGE(`--format takes ${Object.values(Int8Format).join(' or ')}, got "${format}"`);
  if (format !== undefined && !int8) throw Errors.USAGE('--format applies to --int8 only');
  const bits = intFlag(flags, 'weight-bits', 7, 8) as 7 | 8 | undefined;
  const rounds = intFlag(flags, 'rounds', 1, 20);
  const iterations = intFlag(flags, 'iterations', 10, 100_000);
  const { name, ref } = parseModelRef(target);
  const { version, report } = await quantizeVersion(c.nc, c.subjects, name, ref, {
    mode: int8 ? QuantizeMode.INT8 : QuantizeMode.FP16,
    ...(format ? { format: format as Int8Format } : {}),
    ...(bits ? { weightBits: bits } : {}),
    latency: { ...(rounds ? { rounds } : {}), ...(iterations ? { iterations } : {}) },
  });
  c.print({ version, report }, describeReport(version, report));
  return report.verdict.rejected ? 3 : 0;
}
