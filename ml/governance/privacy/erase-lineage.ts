/**
 * Who was built from an erased entity's data (issue #20): the training sets (dataset versions
 * whose source names a touched feature view, built through a sequence at or after one of the
 * entity's erased events) and the model versions trained on them or on those views. Erasure
 * does not rewrite them; it lists them so their owners can rebuild and retrain.
 */
import { Kvm } from '@nats-io/kv';
import { decode, kvKeys, resources, type NatsConnection } from '../../../cluster/index.ts';
import type { DatasetVersion } from '../../datasets/store.ts';
import { ModelRegistry } from '../../registry/registry.ts';

export interface BuiltFrom {
  datasets: { name: string; digest: string; views: string[] }[];
  models: { name: string; version: number; via: string }[];
}

/** `feature-views [{"view":"cust@1","through":12,…}]` (training-set.ts) → `[view name, through]`. */
function viewsOfSource(source: string): { name: string; through: number }[] {
  if (!source.startsWith('feature-views ')) return [];
  try {
    const list = JSON.parse(source.slice('feature-views '.length)) as { view: string; through?: number }[];
    return list.map((v) => ({ name: v.view.split('@')[0]!, through: v.through ?? Number.MAX_SAFE_INTEGER }));
  } catch {
    return [];
  }
}

/**
 * `firstSeq`: per touched view, the smallest offline-log sequence erased (a set built through
 * an earlier sequence never saw the entity). A view with nothing erased in the log is not listed.
 */
export async function builtFrom(nc: NatsConnection, prefix: string, firstSeq: ReadonlyMap<string, number>): Promise<BuiltFrom> {
  const out: BuiltFrom = { datasets: [], models: [] };
  if (firstSeq.size === 0) return out;
  const kv = await new Kvm(nc).open(resources(prefix).buckets.datasets);
  for (const k of await kvKeys(kv, '*.*')) {
    const e = await kv.get(k);
    if (!e || e.operation !== 'PUT') continue;
    const d = decode(e.value) as DatasetVersion;
    const views = viewsOfSource(d.source ?? '').filter((v) => firstSeq.has(v.name) && v.through >= firstSeq.get(v.name)!);
    if (views.length > 0) out.datasets.push({ name: d.name, digest: d.digest, views: views.map((v) => v.name) });
  }
  const digests = new Map(out.datasets.map((d) => [d.digest, `${d.name}@${d.digest.slice(0, 12)}`]));
  const reg = await ModelRegistry.open(nc, prefix);
  for (const m of await reg.list()) {
    for (const mv of await reg.versions(m.name).catch(() => [])) {
      const lin = mv.lineage as { datasetDigest?: string; features?: { datasetDigest?: string; views?: { view: string; through?: number }[] } };
      const ds = lin.datasetDigest ?? lin.features?.datasetDigest;
      const view = lin.features?.views?.find((v) => {
        const name = v.view.split('@')[0]!;
        return firstSeq.has(name) && (v.through ?? Number.MAX_SAFE_INTEGER) >= firstSeq.get(name)!;
      });
      if (ds && digests.has(ds)) out.models.push({ name: mv.name, version: mv.version, via: `dataset ${digests.get(ds)}` });
      else if (view) out.models.push({ name: mv.name, version: mv.version, via: `feature view ${view.view}` });
    }
  }
  out.datasets.sort((a, b) => a.name.localeCompare(b.name) || a.digest.localeCompare(b.digest));
  return out;
}
