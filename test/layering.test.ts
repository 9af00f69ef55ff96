import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const imports = (file: string) => [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);

// DESIGN.md: "Dependencies point downward only: gateway, cli, ml → scheduler, nodes, kernels →
// cluster. cluster/ imports none of the others." scheduler/ and nodes/ are peers, so neither
// imports the other; bench/ measures every layer and may import any, through its index.ts.
// test/ is not a layer (it may reach inside any folder) and is not checked.
const ALLOWED: Record<string, string[]> = {
  cluster: [],
  kernels: ['cluster'],
  nodes: ['cluster', 'kernels'],
  scheduler: ['cluster', 'kernels'],
  ml: ['cluster', 'nodes', 'scheduler', 'kernels'],
  gateway: ['cluster', 'nodes', 'scheduler', 'kernels', 'ml'],
  cli: ['cluster', 'nodes', 'scheduler', 'kernels', 'ml', 'gateway'],
  bench: ['cluster', 'nodes', 'scheduler', 'kernels', 'ml', 'gateway', 'cli'],
  // Packaging: renders NATS users from the role table.
  deploy: ['cluster'],
};

describe('layering', () => {
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    it(`${layer}/ imports only ${allowed.join(', ') || 'nothing of the others'}, through their index.ts`, () => {
      for (const file of tsFiles(join(ROOT, layer))) {
        for (const spec of imports(file)) {
          if (!spec.startsWith('.')) continue;
          const target = relative(ROOT, join(file, '..', spec)).split('/');
          const top = target[0]!;
          if (top === layer || !(top in ALLOWED)) continue;
          expect(allowed, `${relative(ROOT, file)} imports ${spec}`).toContain(top);
          expect(target.slice(1).join('/'), `${relative(ROOT, file)} deep-imports ${spec}`).toBe('index.ts');
        }
      }
    });
  }
});
