/**
 * `shoal demo` (against a running cluster) and `shoal up --demo`: the fraud data generated and
 * registered, a logistic regression trained on it as a job, the new version deployed, and a
 * prediction asked of the gateway — the same request the printed `curl` sends, so the curl is
 * known to work when it is printed. The pieces are the ones the commands use one by one
 * (`datasets generate fraud`, `submit`, `models deploy`).
 */
import { Errors, parseFlags, readClusterInfo, subjects, type Config, type JobRecord } from '../cluster/index.ts';
import { JobClient, RegistryClient, generateFraud } from '../ml/index.ts';
import { connectClient } from './status.ts';
import type { Out } from './output.ts';
import { resolve } from 'node:path';

export const DEMO_FLAGS = ['rows', 'seed', 'json'] as const;

export const DEMO_MODEL = 'fraud';

export interface DemoOptions {
  rows?: number;
  seed?: number;
  /** A progress line (each step as it finishes). */
  note?: (line: string) => void;
}

export interface DemoResult {
  dataset: string;
  jobId: string;
  model: string;
  version: number;
  holdoutAuc: number | undefined;
  gatewayUrl: string;
  dashboardUrl: string;
  /** The request the curl sends (OIP v2 infer), and what the gateway answered to it. */
  request: { url: string; body: unknown; headers: Record<string, string> };
  predictions: number[];
  curl: string;
  seconds: number;
}

interface InferAnswer {
  outputs?: { name: string; data: number[] }[];
}

/** The gateway's URL: the local `shoal up`'s, else the configured host and port. */
function gatewayUrl(config: Config): string {
  const info = readClusterInfo(resolve(config.dataDir));
  return info?.gatewayUrl ?? `http://${config.gateway.host === '0.0.0.0' ? '127.0.0.1' : config.gateway.host}:${config.gateway.port}`;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export async function runDemo(config: Config, o: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const note = o.note ?? (() => undefined);
  const rows = o.rows ?? 20_000;
  const seed = o.seed ?? 1;
  if (!Number.isInteger(rows) || rows < 100) throw Errors.USAGE(`--rows must be an integer ≥ 100, got ${rows}`);
  if (!Number.isInteger(seed)) throw Errors.USAGE(`--seed must be an integer, got ${seed}`);
  const nc = await connectClient(config);
  try {
    const control = new RegistryClient(nc, subjects(config.subjectPrefix));
    // 1. Data: the built-in fraud generator, registered as a content-addressed dataset.
    const data = generateFraud({ rows, seed });
    const ds = await control.registerDataset('fraud', data, { source: `demo: generator fraud rows=${rows} seed=${seed}` });
    note(`dataset ${ds.name}@${ds.digest.slice(0, 12)}: ${ds.rows} rows × ${ds.columns.length} features, ${ds.positives} positive`);

    // 2. Training: a job like `shoal submit`, followed to its end.
    const jobs = await JobClient.open(nc, config.subjectPrefix);
    const spec = { model: { name: DEMO_MODEL, type: 'logreg' }, dataset: `${ds.name}@${ds.digest.slice(0, 16)}`, hyper: { optimizer: 'adam', lr: 0.05, steps: 150, batchSize: 256, seed }, workers: 1 };
    const { id } = await jobs.submit(spec, { id: `demo-${Date.now().toString(36)}` });
    let lastStep = -1;
    const done: JobRecord = await jobs.follow(id, (r) => {
      const p = r.progress as { step?: number; steps?: number } | undefined;
      if (p?.step !== undefined && p.steps && p.step !== lastStep && (p.step === p.steps || p.step % 50 === 0)) {
        lastStep = p.step;
        note(`job ${id}: step ${p.step}/${p.steps}`);
      }
    }, 120_000);
    if (done.state !== 'succeeded') throw new Error(`the demo's training job ${id} ended ${done.state}${done.reason ? `: ${done.reason}` : ''}`);
    const res = done.result as { model: string; version: number; metrics?: { auc?: number } };
    note(`job ${id}: ${res.model} v${res.version}, holdout AUC ${res.metrics?.auc?.toFixed(4) ?? '-'}`);

    // 3. Serving: the new version as the stable track (replacing an earlier demo's).
    const dep = await control.deploy(res.model, { version: res.version, replicas: 1 });
    note(`deployed ${res.model} v${dep.stable.version} on ${dep.stable.service}`);

    // 4. A prediction through the gateway: one fraudulent and one ordinary transaction of the data.
    const gw = gatewayUrl(config);
    const key = config.gateway.apiKeys[0]?.key;
    const auth: Record<string, string> = key ? { 'x-api-key': key } : {};
    const meta = (await (await fetch(`${gw}/v2/models/${res.model}`, { headers: auth })).json()) as { inputs?: { name: string }[] };
    const input = meta.inputs?.[0]?.name;
    if (!input) throw new Error(`the gateway's metadata for ${res.model} names no input: ${JSON.stringify(meta)}`);
    const D = data.columns.length;
    const url = `${gw}/v2/models/${res.model}/infer`;
    const bodyOf = (rowIds: number[]) => ({ inputs: [{ name: input, shape: [rowIds.length, D], datatype: 'FP32', data: rowIds.flatMap((i) => Array.from(data.features.subarray(i * D, (i + 1) * D), (v) => Number(v.toFixed(4)))) }] });
    const infer = async (body: unknown): Promise<number[]> => {
      const answer = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) });
      const text = await answer.text();
      if (!answer.ok) throw new Error(`the demo's prediction failed: HTTP ${answer.status} ${text}`);
      return ((JSON.parse(text) as InferAnswer).outputs?.[0]?.data ?? []).map(Number);
    };
    // The fraudulent transaction the model finds riskiest among the first 64, beside the first ordinary one.
    const frauds = [...data.labels.keys()].filter((i) => data.labels[i] === 1).slice(0, 64);
    const scores = frauds.length > 0 ? await infer(bodyOf(frauds)) : [];
    const riskiest = frauds[scores.indexOf(Math.max(...scores))];
    const rowsOut = [...(riskiest !== undefined ? [riskiest] : []), data.labels.indexOf(0)].filter((i) => i >= 0);
    const body = bodyOf(rowsOut);
    const predictions = await infer(body);
    const keyHeader = key ? ` -H 'x-api-key: '"$SHOAL_API_KEY"` : '';
    const curl = `curl -s ${url} -H 'content-type: application/json'${keyHeader} -d ${shellQuote(JSON.stringify(body))}`;
    return {
      dataset: `${ds.name}@${ds.digest.slice(0, 12)}`,
      jobId: id,
      model: res.model,
      version: res.version,
      holdoutAuc: res.metrics?.auc,
      gatewayUrl: gw,
      dashboardUrl: `${gw}/ui`,
      request: { url, body, headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': '$SHOAL_API_KEY' } : {}) } },
      predictions,
      curl,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await nc.close();
  }
}

/** What the demo prints at the end: the curl (one line, to copy), what it answers, the dashboard. */
export function formatDemo(r: DemoResult, keyed: boolean): string {
  return [
    ``,
    `Demo ready in ${r.seconds.toFixed(1)} s: ${r.model} v${r.version} trained on ${r.dataset} (job ${r.jobId}, holdout AUC ${r.holdoutAuc?.toFixed(4) ?? '-'}), serving.`,
    `Try it (a fraudulent and an ordinary transaction; it answered ${r.predictions.map((p) => p.toFixed(4)).join(', ')}):`,
    ...(keyed ? [`  export SHOAL_API_KEY=<a key from gateway.apiKeys>`] : []),
    `  ${r.curl}`,
    `Dashboard: ${r.dashboardUrl}`,
    ``,
  ].join('\n');
}

/** `shoal demo [--rows N] [--seed S] [--json]` against a running cluster. */
export async function demoCommand(rest: string[], config: Config): Promise<number> {
  const { flags } = parseFlags(rest);
  const json = flags.has('json');
  const num = (f: string) => (flags.has(f) ? Number(flags.get(f)) : undefined);
  const rows = num('rows');
  const seed = num('seed');
  const r = await runDemo(config, { ...(rows !== undefined ? { rows } : {}), ...(seed !== undefined ? { seed } : {}), ...(json ? {} : { note: (l: string) => process.stdout.write(`${l}\n`) }) });
  process.stdout.write(json ? `${JSON.stringify(r, null, 2)}\n` : `${formatDemo(r, config.gateway.apiKeys.length > 0)}\n`);
  return 0;
}

/**
 * `shoal up --demo`: once the cluster is up, the demo, its steps as the supervisor's notes and the
 * result as plain lines (the curl is to copy, even when the log lines are JSON). A failed demo is
 * one error line; the cluster keeps running.
 */
export async function upDemo(config: Config, out: Out): Promise<void> {
  out.note('demo: generating the fraud data, training, deploying…');
  try {
    const r = await runDemo(config, { note: (l) => out.note(`demo: ${l}`) });
    process.stdout.write(`${formatDemo(r, config.gateway.apiKeys.length > 0)}\n`);
  } catch (err) {
    out.error(`demo failed: ${(err as Error).message}`);
  }
}
