/**
 * deploy/Containerfile, checked statically (podman cannot run containers in this sandbox): pinned bases
 * that satisfy package.json's engines, every COPY source present and not excluded from the context,
 * every folder the entry points import copied into the runtime stage, and the default command's flags
 * valid for Shoal's config loader. Also the NATS Helm values: the auth include lands where it is mounted.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../cluster/index.ts';
import { renderSecrets } from '../../deploy/render-secrets.ts';

interface Instr { op: string; args: string; stage: number }

function instructions(file: string): Instr[] {
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  let stage = -1;
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      if (op!.toUpperCase() === 'FROM') stage++;
      return { op: op!.toUpperCase(), args: rest.join(' '), stage };
    });
}

const main = instructions('deploy/Containerfile');
const runtimeStage = Math.max(...main.map((i) => i.stage));
const ignored = readFileSync('.containerignore', 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const isIgnored = (p: string) => ignored.some((g) => p === g || p.startsWith(`${g}/`));

/** Top-level folders reached from `entries` through relative imports (static, dynamic, workers). */
function importedFolders(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...entries];
  while (todo.length) {
    const f = normalize(todo.pop()!);
    if (seen.has(f) || !existsSync(f)) continue;
    seen.add(f);
    if (!/\.(ts|mjs|js)$/.test(f)) continue;
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/(?:from\s+|import\(\s*|new URL\(\s*)'(\.\.?\/[^']+)'/g)) todo.push(join(dirname(f), m[1]!));
  }
  return new Set([...seen].map((f) => f.split('/')[0]!));
}

describe('Containerfile', () => {
  it('bases are pinned and their Node satisfies package.json engines', () => {
    const engines = JSON.parse(readFileSync('package.json', 'utf8')).engines.node as string;
    const [minMajor, minMinor] = engines.replace('>=', '').split('.').map(Number);
    const froms = main.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]!);
    expect(froms.length).toBe(2);
    for (const image of froms) {
      const tag = image.split(':')[1] ?? '';
      expect(tag, image).not.toBe('');
      expect(tag).not.toBe('latest');
      const [major, minor] = tag.split('-')[0]!.split('.').map(Number);
      expect(major! > minMajor! || (major === minMajor && minor! >= minMinor!), `${image} vs engines ${engines}`).toBe(true);
    }
  });

  it('every COPY source exists and is inside the build context', () => {
    const copies = main.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
    expect(copies.length).toBeGreaterThan(5);
    for (const c of copies) {
      const parts = c.args.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        expect(existsSync(src), `COPY ${src}`).toBe(true);
        expect(isIgnored(src), `COPY ${src} is excluded by .containerignore`).toBe(false);
      }
    }
    expect(isIgnored('node_modules')).toBe(true);
    expect(isIgnored('.shoal')).toBe(true);
  });

  it('the runtime stage copies every folder the entry points import', () => {
    const copied = new Set(
      // Sources keep their names under the work dir (COPY bin ./bin, COPY package.json … ./).
      main.filter((i) => i.op === 'COPY' && i.stage === runtimeStage && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1).map((src) => src.split('/')[0]!)),
    );
    const needed = importedFolders(['bin/shoal.mjs', 'cli/main.ts', 'scheduler/main.ts', 'nodes/main.ts', 'gateway/main.ts']);
    expect(needed.has('cluster') && needed.has('ml')).toBe(true);
    for (const folder of needed) expect(copied, `runtime stage lacks ${folder}/`).toContain(folder);
    // The dashboard bundle comes from the build stage.
    expect(main.some((i) => i.stage === runtimeStage && i.op === 'COPY' && /--from=build .*ui\/dist/.test(i.args))).toBe(true);
  });

  it("the entrypoint's init is installed and the default command's flags are valid config", () => {
    const entry = JSON.parse(main.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    const cmd = JSON.parse(main.find((i) => i.op === 'CMD')!.args) as string[];
    expect(entry[0]).toBe('/usr/bin/tini');
    expect(main.some((i) => i.op === 'RUN' && i.stage === runtimeStage && /apt-get install[^&]*\btini\b/.test(i.args))).toBe(true);
    expect(existsSync(cmd[0]!)).toBe(true);
    const config = loadConfig({ argv: cmd.slice(2), env: {} });
    expect(config.gateway.host).toBe('0.0.0.0');
    expect(() => loadConfig({ argv: [...cmd.slice(2), '--gateway.port', 'eighty'], env: {} })).toThrow(/gateway\.port/);
  });

  it('the GPU variant builds on the main image and adds the Vulkan loader', () => {
    const gpu = instructions('deploy/Containerfile.gpu');
    expect(gpu.find((i) => i.op === 'ARG')!.args).toMatch(/shoal:/);
    expect(gpu.some((i) => i.op === 'RUN' && /libvulkan1/.test(i.args))).toBe(true);
    expect(gpu.find((i) => i.op === 'ENV')!.args).toMatch(/NVIDIA_DRIVER_CAPABILITIES=[^ ]*graphics/);
  });
});

describe('NATS Helm values', () => {
  it("include Shoal's users from the Secret render-secrets writes, at the path it is mounted", () => {
    const values = parse(readFileSync('deploy/kubernetes/nats-values.yaml', 'utf8'));
    expect(values.config.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(values.config.jetstream.enabled).toBe(true);
    const include = values.config.merge.$include as string;
    const mount = values.container.patch[0].value;
    const volume = values.podTemplate.patch[0].value;
    expect(mount.name).toBe(volume.name);
    // The chart writes its config to /etc/nats-config/nats.conf; includes are relative to it.
    expect(posix.join('/etc/nats-config', include)).toBe(posix.join(mount.mountPath, 'auth.conf'));
    const rendered = renderSecrets({ cpuNodes: 1, gpuNodes: 0 });
    const authSecret = rendered.secrets.find((s) => s.metadata.name === volume.secret.secretName);
    expect(authSecret?.stringData['auth.conf']).toBe(rendered.authConf);
  });
});
