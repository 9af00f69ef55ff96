/**
 * Sums a V8 `.cpuprofile`'s self time by function (name + file:line), and by package/file group,
 * and prints the top entries. `npx tsx bench/lib/profile-summary.ts FILE.cpuprofile [top]`.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function group(url: string): string {
  if (!url) return '(native/vm)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '').replace(/^.*\/main\//, '');
}

export function summarize(file: string, top = 30): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const grp = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const f = n.callFrame;
    const short = f.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/main\//, '');
    const key = `${f.functionName || '(anonymous)'}  ${short}${short ? `:${f.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const g = f.functionName === '(idle)' ? '(idle)' : f.functionName === '(garbage collector)' ? '(gc)' : f.functionName === '(program)' ? '(program)' : group(f.url);
    grp.set(g, (grp.get(g) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const busy = total - (grp.get('(idle)') ?? 0);
  const lines = [`total ${(total / 1e6).toFixed(1)} s sampled, busy ${(busy / 1e6).toFixed(1)} s (${pct(busy)})`, '-- by package/file (self)'];
  for (const [k, us] of [...grp].sort((a, b) => b[1] - a[1]).slice(0, 20)) lines.push(`${pct(us)}  ${k}`);
  lines.push('-- by function (self)');
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(us)}  ${k}`);
  if (process.env.PROFILE_TOTAL) {
    // Inclusive time (self + callees), counting each function once per stack (recursion).
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const incl = new Map<string, number>();
    for (const [id, us] of self) {
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const f = byId.get(cur)!.callFrame;
        if (!f.url || f.url.startsWith('node:')) continue;
        const key = `${f.functionName || '(anonymous)'}  ${f.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/main\//, '')}:${f.lineNumber + 1}`;
        if (seen.has(key)) continue;
        seen.add(key);
        incl.set(key, (incl.get(key) ?? 0) + us);
      }
    }
    lines.push('-- by function (inclusive, project and package code)');
    for (const [k, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOTAL))) lines.push(`${pct(us)}  ${k}`);
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${summarize(process.argv[2]!, Number(process.argv[3] ?? 40))}\n`);
}
