/**
 * `shoal features …`: the feature store from the command line (issue #14 items 1–2).
 *
 *   shoal features apply VIEW.json [--snapshot rows.json]   apply a view definition; with a snapshot (a JSON array of
 *                                                           rows, or one JSON object a line) its transformations are fitted
 *   shoal features list
 *   shoal features show NAME [--version N]               an aggregate view also shows its windows and its actor's progress
 *   shoal features get VIEW key=value… [--version N]        one entity's online values (TTL applied; an aggregate view's
 *                                                           windows as of now) and its vector
 *   shoal features push VIEW EVENT.json                     one event, or a JSON array of events, pushed in order
 *   shoal features materialize VIEW                         compact the view's offline log to a Parquet file
 *   shoal features build-dataset --views a,b@2 (--labels L.jsonl | --label-view V --label F [--since T] [--until T]) [--name NAME]
 *                                                           a point-in-time-correct training set, stored as a dataset
 *                                                           version (label rows: {"entity": {...}, "time": ..., "label": 0|1})
 *
 * Every command takes `--json`. Reads go to KV (the client role may read the feature buckets);
 * apply, push, materialize and build-dataset are requests to the features service in the scheduler.
 */
import { readFileSync } from 'node:fs';
import { ActorClient, Errors, parseFlags, subjects, type Config, type NatsConnection } from '../cluster/index.ts';
import { FeatureClient, aggregatorId, resolveAggregate, type AggregatorStatus, type FeatureEvent, type LabelRow, type LabelsFromView, type PushResult, type RawValue } from '../ml/index.ts';
import { connectClient } from './status.ts';

export const FEATURES_FLAGS = ['snapshot', 'version', 'json', 'views', 'labels', 'label-view', 'label', 'since', 'until', 'name'] as const;

const USAGE = 'usage: shoal features <apply VIEW.json [--snapshot rows.json] | list | show NAME | get VIEW key=value… | push VIEW EVENT.json | materialize VIEW | build-dataset --views a,b (--labels L.jsonl | --label-view V --label F [--since T] [--until T]) [--name N]> [--json]  (see README "Feature store")';

/**
 * Pushes many events with up to `window` requests in flight, keeping each entity's events in
 * file order (a later event for the same entity — a correction — is sent after the earlier one
 * is acknowledged). Results come back in input order; the first failure stops the rest.
 */
async function pushAll(events: readonly FeatureEvent[], push: (ev: FeatureEvent) => Promise<PushResult>, window = 64): Promise<PushResult[]> {
  const results: PushResult[] = new Array(events.length);
  const lastOfEntity = new Map<string, Promise<unknown>>();
  const inFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    const key = JSON.stringify(ev?.entity ?? null);
    const before = lastOfEntity.get(key) ?? Promise.resolve();
    const p = before.then(async () => {
      results[i] = await push(ev);
    });
    lastOfEntity.set(key, p);
    inFlight.add(p);
    void p.then(
      () => inFlight.delete(p),
      () => undefined,
    );
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return results;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw Errors.USAGE(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (first) {
    // JSON lines: one object a line.
    try {
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as unknown);
    } catch {
      throw Errors.USAGE(`${what} ${file} is not JSON: ${(first as Error).message}`);
    }
  }
}

export async function featuresCommand(argv: string[], config: Config): Promise<number> {
  const nc = await connectClient(config);
  try {
    return await runFeatures(argv, nc, config.subjectPrefix, (t) => process.stdout.write(t));
  } finally {
    await nc.close();
  }
}

/** The command on an open connection (tests call it directly). */
export async function runFeatures(argv: string[], nc: NatsConnection, prefix: string, write: (text: string) => void): Promise<number> {
  const { flags, positionals } = parseFlags(argv);
  const [cmd, ...args] = positionals;
  const need = (i: number, what: string) => {
    const v = args[i];
    if (v === undefined) throw Errors.USAGE(`shoal features ${cmd}: missing ${what}\n${USAGE}`);
    return v;
  };
  const print = (value: unknown, text: string) => write(flags.has('json') ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
  const vflag = flags.get('version');
  if (vflag !== undefined && !/^\d+$/.test(vflag)) throw Errors.USAGE(`--version takes a version number, got "${vflag}"`);
  const version = vflag === undefined ? undefined : Number(vflag);
  const fc = await FeatureClient.open(nc, subjects(prefix));
  switch (cmd) {
    case 'apply': {
      const def = readJson(need(0, 'VIEW.json'), 'view definition');
      const snap = flags.get('snapshot');
      const rows = snap === undefined ? undefined : readJson(snap, 'snapshot');
      if (rows !== undefined && !Array.isArray(rows)) throw Errors.USAGE('--snapshot must hold a JSON array of rows (or one JSON object a line)');
      const r = await fc.apply(def, rows as Record<string, RawValue>[] | undefined);
      const v = r.version;
      print(r, `${v.name} version ${v.version} ${r.created ? 'applied (new)' : 'unchanged'}; ${v.fitted ? `fitted on ${v.fitted.rows} rows, ${v.fitted.width} columns` : 'not fitted (apply with --snapshot to fit its transformations)'}`);
      return 0;
    }
    case 'list': {
      const views = await fc.list();
      print(views, views.length === 0 ? 'no feature views' : views.map((v) => `${v.name}  latest v${v.latest}  versions ${v.versions.join(',')}`).join('\n'));
      return 0;
    }
    case 'show': {
      const v = await fc.show(need(0, 'NAME'), version);
      const d = v.definition;
      // An aggregate view: its windows, and where its actor is and how far it has applied the source's events.
      let aggregate: { source: string; windows: string[]; tileSeconds: number; actorId: string; status: AggregatorStatus | null; error?: string } | undefined;
      if (d.source.type === 'aggregate') {
        const agg = resolveAggregate(d);
        const actorId = aggregatorId(agg);
        let status: AggregatorStatus | null = null;
        let error: string | undefined;
        try {
          status = await new ActorClient(nc, subjects(prefix)).ref(actorId).ask<AggregatorStatus>({ type: 'status' }, { timeoutMs: 3000 });
        } catch (err) {
          error = (err as Error).message;
        }
        aggregate = { source: agg.source, windows: agg.windows.map((w) => w.label), tileSeconds: agg.tileMs / 1000, actorId, status, ...(error ? { error } : {}) };
      }
      const lines = [
        `${v.name} v${v.version}  digest ${v.digest.slice(0, 12)}  created ${v.createdAt}`,
        `entity: ${d.entity.join(', ')}  source: ${d.source.type}  ttl: ${d.ttlSeconds} s`,
        ...(aggregate
          ? [
              `aggregate of ${aggregate.source}: windows ${aggregate.windows.join(', ')} (tile ${aggregate.tileSeconds} s); actor ${aggregate.actorId} ${
                aggregate.status ? `on ${aggregate.status.nodeId}, applied through seq ${aggregate.status.through}${aggregate.status.failed ? ` (failed: ${aggregate.status.failed})` : ''}` : `not reachable (${aggregate.error})`
              }`,
            ]
          : []),
        ...d.features.map((f) => `  ${f.name} (${f.type})${f.transforms?.length ? `  ${f.transforms.map((t) => t.op).join(' → ')}` : ''}`),
        v.fitted ? `vector: ${v.fitted.width} columns: ${v.fitted.columns.join(', ')}` : 'not fitted',
      ];
      print(aggregate ? { ...v, aggregate } : v, lines.join('\n'));
      return 0;
    }
    case 'get': {
      const view = need(0, 'VIEW');
      need(1, 'key=value');
      const entity: Record<string, string> = {};
      for (const kv of args.slice(1)) {
        const at = kv.indexOf('=');
        if (at <= 0) throw Errors.USAGE(`entity keys are key=value, got "${kv}"`);
        entity[kv.slice(0, at)] = kv.slice(at + 1);
      }
      const [row] = await fc.rows(view, [entity], version);
      const v = await fc.show(view, version);
      const vector = v.fitted ? Array.from((await fc.vectors(view, [entity], version))[0]!.vector) : null;
      const out = { ...row!, vector };
      print(
        out,
        // An aggregate view always has values (no events: counts of 0).
        !row!.found && Object.keys(row!.values).length === 0
          ? `no values for ${JSON.stringify(entity)} (every feature reads as missing)${vector ? `\nvector: [${vector.join(', ')}]` : ''}`
          : [
              ...Object.entries(row!.values).map(([k, val]) => `  ${k} = ${JSON.stringify(val)}  (at ${new Date(row!.eventTimes[k]!).toISOString()})`),
              ...row!.expired.map((k) => `  ${k}: expired (older than ${v.definition.ttlSeconds} s)`),
              vector ? `vector: [${vector.join(', ')}]` : 'vector: view not fitted',
            ].join('\n'),
      );
      return 0;
    }
    case 'push': {
      const view = need(0, 'VIEW');
      const body = readJson(need(1, 'EVENT.json'), 'event');
      const events = (Array.isArray(body) ? body : [body]) as FeatureEvent[];
      const results = await pushAll(events, (ev) => fc.push(view, ev));
      const line = (r: PushResult) => `${r.eventId}: seq ${r.seq}${r.duplicate ? ' (duplicate: already applied)' : `, applied ${r.applied.join(', ') || 'nothing (older than stored values)'}`}`;
      const dups = results.filter((r) => r.duplicate).length;
      print(
        results.length === 1 ? results[0] : results,
        results.length <= 20 ? results.map(line).join('\n') : `${view}: pushed ${results.length} events (seq ${Math.min(...results.map((r) => r.seq))}-${Math.max(...results.map((r) => r.seq))}), ${dups} duplicates`,
      );
      return 0;
    }
    case 'materialize': {
      const r = await fc.materialize(need(0, 'VIEW'));
      const m = r.manifest;
      print(
        r,
        `${r.view}: ${r.file ? `compacted ${r.file.events} events (seq ${r.file.afterSeq + 1}-${r.file.throughSeq}) to ${r.file.object}` : 'nothing new to compact'}; ${m.files.length} files through seq ${m.through}`,
      );
      return 0;
    }
    case 'build-dataset': {
      const viewsFlag = flags.get('views');
      const labelsFlag = flags.get('labels');
      if (!viewsFlag) throw Errors.USAGE(`shoal features build-dataset: --views a,b[@N] is required\n${USAGE}`);
      const labelView = flags.get('label-view');
      if (!labelsFlag && !labelView) throw Errors.USAGE(`shoal features build-dataset: --labels FILE (JSON array or JSON lines), or --label-view VIEW --label FEATURE, is required\n${USAGE}`);
      if (labelsFlag && labelView) throw Errors.USAGE('shoal features build-dataset: give --labels or --label-view, not both');
      let labels: LabelRow[] | LabelsFromView;
      if (labelView) {
        const label = flags.get('label');
        if (!label) throw Errors.USAGE('shoal features build-dataset: --label-view needs --label FEATURE (the label feature of that view)');
        const time = (t: string | undefined) => (t === undefined ? undefined : /^\d+$/.test(t) ? Number(t) : t);
        const since = time(flags.get('since'));
        const until = time(flags.get('until'));
        labels = { view: labelView, label, ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) };
      } else {
        const rows = readJson(labelsFlag!, 'labels');
        if (!Array.isArray(rows)) throw Errors.USAGE('--labels must hold a JSON array of label rows (or one JSON object a line)');
        labels = rows as LabelRow[];
      }
      const views = viewsFlag.split(',').map((v) => v.trim()).filter((v) => v !== '');
      const name = flags.get('name') ?? `trainset-${views.map((v) => v.replace(/@.*/, '')).join('-')}`.slice(0, 64);
      const r = await fc.buildDataset({ name, views, labels });
      const d = r.dataset;
      print(
        r,
        [
          `dataset ${d.name}@${d.digest.slice(0, 12)}: ${d.rows} rows × ${d.columns.length} columns, ${d.positives} positive`,
          ...r.lineage.views.map((v) => `  ${v.name} v${v.version}: events through seq ${v.through} (${v.files.length} files), ${r.found[v.name]} values as known at label time`),
        ].join('\n'),
      );
      return 0;
    }
    default:
      throw Errors.USAGE(cmd ? `unknown features command "${cmd}"\n${USAGE}` : USAGE);
  }
}
