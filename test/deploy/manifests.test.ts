/**
 * deploy/: the Kubernetes manifests are validated offline against the API schemas (kubernetes-models),
 * checked against Shoal itself (config loads, probe paths and ports exist, drain fits the grace period,
 * PDBs select their workloads), and the rendered NATS users are accepted by a real nats-server and let
 * a node in with the password its pod reads.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Role, connectAs, findNatsServer, loadConfig, startNatsServer } from '../../cluster/index.ts';
import { renderSecrets } from '../../deploy/render-secrets.ts';

const DIR = 'deploy/kubernetes';
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: any; data?: Record<string, string> };

function docsOf(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Obj;
  }).filter(Boolean);
}

const manifestFiles = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'nats-values.yaml' && f !== 'kustomization.yaml');
const all = manifestFiles.flatMap((f) => docsOf(f).map((o) => ({ file: f, o })));
const find = (kind: string, name: string) => {
  const hit = all.find(({ o }) => o.kind === kind && o.metadata.name === name);
  if (!hit) throw new Error(`no ${kind} ${name}`);
  return hit.o;
};
const workloads = all.filter(({ o }) => o.kind === 'Deployment' || o.kind === 'StatefulSet').map(({ o }) => o);
const container = (w: Obj) => w.spec.template.spec.containers[0];
const configText = find('ConfigMap', 'shoal-config').data!['shoal.config.json']!;

async function modelFor(apiVersion: string, kind: string) {
  const path = apiVersion.includes('/') ? apiVersion : `${apiVersion}`;
  const mod = await import(`kubernetes-models/${path}/${kind}`);
  return mod[kind] as new (o: unknown) => { validate(): void };
}

describe('Kubernetes manifests', () => {
  it('every object is valid against the Kubernetes API schema', async () => {
    expect(all.length).toBeGreaterThanOrEqual(12);
    for (const { file, o } of all) {
      const Model = await modelFor(o.apiVersion, o.kind);
      expect(() => new Model(o).validate(), `${file}: ${o.kind} ${o.metadata.name}`).not.toThrow();
    }
  });

  it('a broken object is caught by the same validation (the check can fail)', async () => {
    const bad = structuredClone(find('Deployment', 'shoal-gateway'));
    bad.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    const Model = await modelFor(bad.apiVersion, bad.kind);
    expect(() => new Model(bad).validate()).toThrow(/containerPort/);
  });

  it('kustomization lists every manifest and everything is in the shoal namespace', () => {
    const k = docsOf('kustomization.yaml')[0] as unknown as { resources: string[]; namespace: string };
    expect([...k.resources].sort()).toEqual([...manifestFiles].sort());
    for (const { o } of all) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(k.namespace);
  });

  it("the ConfigMap's config and each workload's environment load with Shoal's own config loader", () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-deploy-'));
    try {
      const file = join(dir, 'shoal.config.json');
      writeFileSync(file, configText);
      // Secret values as deploy/render-secrets.ts writes them; the downward API's pod name for fieldRefs.
      const secrets = new Map(renderSecrets({ cpuNodes: 1, gpuNodes: 1 }).secrets.map((s) => [s.metadata.name, s.stringData]));
      for (const w of workloads) {
        const env: NodeJS.ProcessEnv = {};
        for (const e of container(w).env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          env[e.name] = e.value ?? (ref ? secrets.get(ref.name)?.[ref.key] : `${w.metadata.name}-0`);
        }
        env.SHOAL_CONFIG = file;
        const config = loadConfig({ argv: [], env, cwd: dir });
        if (env.SHOAL_NODE_PROFILE) expect(config.nodes.map((p) => p.name), w.metadata.name).toContain(env.SHOAL_NODE_PROFILE);
        if (w.metadata.name === 'shoal-gateway') {
          const ports = container(w).ports.map((p: { containerPort: number }) => p.containerPort);
          expect(ports).toEqual([config.gateway.port, config.gateway.grpcPort]);
          expect(config.gateway.host).toBe('0.0.0.0');
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('probes hit routes the gateway serves; node drains fit the grace period; schedulers are two', () => {
    const gw = container(find('Deployment', 'shoal-gateway'));
    const ops = readFileSync('gateway/routes/ops.ts', 'utf8');
    for (const probe of [gw.readinessProbe, gw.livenessProbe]) expect(ops).toContain(`'${probe.httpGet.path}'`);
    expect(gw.readinessProbe.httpGet.path).toBe('/v2/health/ready');
    const cfg = JSON.parse(configText);
    for (const name of ['shoal-node-cpu', 'shoal-node-gpu']) {
      const ss = find('StatefulSet', name);
      expect(ss.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(cfg.actors.drainTimeoutMs);
      expect(container(ss).lifecycle.preStop.exec.command.join(' ')).toContain('kill -TERM 1');
    }
    expect(container(find('StatefulSet', 'shoal-node-gpu')).resources.limits['nvidia.com/gpu']).toBe(1);
    expect(find('Deployment', 'shoal-scheduler').spec.replicas).toBe(2);
    // Every entry point a manifest runs exists.
    for (const w of workloads) {
      const c = container(w);
      const script = [...(c.args ?? [])].join(' ').match(/(\w+\/main\.ts)/)?.[1];
      expect(script, w.metadata.name).toBeDefined();
      expect(() => readFileSync(script!)).not.toThrow();
    }
  });

  it('every PodDisruptionBudget selects exactly one workload, by its pod labels', () => {
    const pdbs = all.filter(({ o }) => o.kind === 'PodDisruptionBudget').map(({ o }) => o);
    expect(pdbs.length).toBe(workloads.length);
    for (const pdb of pdbs) {
      const sel = pdb.spec.selector.matchLabels as Record<string, string>;
      const matches = workloads.filter((w) => Object.entries(sel).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
      expect(matches.map((w) => w.metadata.name), pdb.metadata.name).toEqual([pdb.metadata.name]);
    }
  });

  it('every Secret a workload references is one deploy/render-secrets.ts writes, with that key', () => {
    const rendered = renderSecrets({ cpuNodes: 3, gpuNodes: 1 });
    const keys = new Map(rendered.secrets.map((s) => [s.metadata.name, Object.keys(s.stringData)]));
    for (const w of workloads) {
      for (const e of container(w).env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) expect(keys.get(ref.name), `${w.metadata.name} ${e.name}`).toContain(ref.key);
      }
      for (const v of w.spec.template.spec.volumes ?? []) if (v.secret) expect(keys.has(v.secret.secretName), v.name).toBe(true);
    }
    // Node pods read their password from a file named after the pod: every StatefulSet pod has one.
    for (const name of ['shoal-node-cpu', 'shoal-node-gpu']) {
      for (let i = 0; i < (name.endsWith('cpu') ? 3 : 1); i++) expect(keys.get('shoal-node-passwords')).toContain(`${name}-${i}`);
    }
  });
});

describe('rendered NATS users', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-deploy-nats-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('nats-server accepts the auth include, and a node pod gets in with the password file it reads', async () => {
    const rendered = renderSecrets({ cpuNodes: 2, gpuNodes: 1 });
    writeFileSync(join(dir, 'auth.conf'), rendered.authConf);
    writeFileSync(join(dir, 'nats.conf'), `port: 4222\njetstream { store_dir: ${JSON.stringify(join(dir, 'js'))} }\ninclude ./auth.conf\n`);
    const bin = findNatsServer(loadConfig({ argv: [] }).nats.serverBin);
    // `-t` parses the whole config (include and permissions) and exits non-zero on any error.
    execFileSync(bin, ['-t', '-c', join(dir, 'nats.conf')], { stdio: 'pipe' });
    writeFileSync(join(dir, 'broken.conf'), `port: 4222\ninclude ./auth.conf\nauthorization { users = [ { user: "x" ] }\n`);
    expect(() => execFileSync(bin, ['-t', '-c', join(dir, 'broken.conf')], { stdio: 'pipe' })).toThrow();

    // The same credentials, served by a real server: node shoal-node-cpu-1 connects with its file's password.
    const server = await startNatsServer({ dir: join(dir, 'live'), port: 0, credentials: rendered.credentials, nodeIds: rendered.nodeIds, bin });
    try {
      const passwords = rendered.secrets.find((s) => s.metadata.name === 'shoal-node-passwords')!.stringData;
      const nc = await connectAs({ servers: server.url, role: Role.NODE, nodeId: 'shoal-node-cpu-1', credential: { user: 'node-shoal-node-cpu-1', pass: passwords['shoal-node-cpu-1']! }, reconnect: false });
      await nc.close();
      await expect(
        connectAs({ servers: server.url, role: Role.NODE, nodeId: 'shoal-node-cpu-1', credential: { user: 'node-shoal-node-cpu-1', pass: passwords['shoal-node-cpu-0']! }, reconnect: false }),
      ).rejects.toThrow();
    } finally {
      await server.stop(5000);
    }
  });
});
