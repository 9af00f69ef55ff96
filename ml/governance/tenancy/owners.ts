/**
 * Who owns what: models, jobs, feature views and datasets belong to a tenant, recorded in the
 * `owners` KV bucket as `<kind>.<name>` → tenant. A resource with no record belongs to the
 * `default` tenant: what operators create over NATS (the CLI), an open gateway, and everything
 * made before tenants existed. `default` resources are shared — every key may use them — so
 * existing clusters keep working; a tenant's own resources are seen by that tenant's keys and by
 * admin keys only, and to any other key they do not exist (the same 404 as an unknown name).
 *
 * Readers on a hot path (the gateway) keep the whole book in memory from a KV watch: checking a
 * request costs a Map lookup, no round trip.
 */
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { isCasConflict, kvKeys, resources, type NatsConnection } from '../../../cluster/index.ts';
import { MlErrors } from '../../errors.ts';

export const DEFAULT_TENANT = 'default';

export const OwnedKind = { MODEL: 'model', JOB: 'job', VIEW: 'view', DATASET: 'dataset' } as const;
export type OwnedKind = (typeof OwnedKind)[keyof typeof OwnedKind];

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** May `tenant` (with an admin key or not) see a resource owned by `owner`? */
export function mayAccess(owner: string, tenant: string, admin: boolean): boolean {
  return admin || owner === DEFAULT_TENANT || owner === tenant;
}

export class OwnerBook {
  readonly #kv: KV;
  readonly #cache = new Map<string, string>();
  #stop: (() => void) | undefined;

  private constructor(kv: KV) {
    this.#kv = kv;
  }

  static async open(nc: NatsConnection, prefix: string): Promise<OwnerBook> {
    return new OwnerBook(await new Kvm(nc).open(resources(prefix).buckets.owners));
  }

  static key(kind: OwnedKind, name: string): string {
    return `${kind}.${name}`;
  }

  /** Follows the bucket (every record, then every change); resolves once the current records are in. */
  async follow(): Promise<this> {
    const w = await this.#kv.watch({ key: '>' });
    void (async () => {
      for await (const e of w as AsyncIterable<KvEntry>) {
        if (e.operation !== 'PUT' || e.value.length === 0) this.#cache.delete(e.key);
        else this.#cache.set(e.key, fromUtf8.decode(e.value));
      }
    })();
    this.#stop = () => w.stop();
    // The watch replays the current records too; reading them here makes "caught up" certain.
    for (const k of await kvKeys(this.#kv)) {
      const e = await this.#kv.get(k);
      if (e && e.operation === 'PUT' && e.value.length > 0 && !this.#cache.has(k)) this.#cache.set(k, fromUtf8.decode(e.value));
    }
    return this;
  }

  stop(): void {
    this.#stop?.();
  }

  /** The owner as this process last saw it (needs `follow()`): `default` when none is recorded. */
  ownerOf(kind: OwnedKind, name: string): string {
    return this.#cache.get(OwnerBook.key(kind, name)) ?? DEFAULT_TENANT;
  }

  /** The owner as the bucket has it now (a round trip). */
  async fetchOwner(kind: OwnedKind, name: string): Promise<string> {
    const e = await this.#kv.get(OwnerBook.key(kind, name));
    return e && e.operation === 'PUT' && e.value.length > 0 ? fromUtf8.decode(e.value) : DEFAULT_TENANT;
  }

  /** Every resource of a kind that `tenant` owns (from the followed cache). */
  ownedBy(kind: OwnedKind, tenant: string): string[] {
    const prefix = `${kind}.`;
    const out: string[] = [];
    for (const [k, t] of this.#cache) if (t === tenant && k.startsWith(prefix)) out.push(k.slice(prefix.length));
    return out;
  }

  /**
   * Records `tenant` as the owner of a resource, if nobody owns it yet (create: the first claim
   * wins, across every process). Claiming what the same tenant owns is a no-op; what another
   * tenant owns is NAME_TAKEN. The `default` tenant records nothing (absence means default).
   */
  async claim(kind: OwnedKind, name: string, tenant: string): Promise<void> {
    if (tenant === DEFAULT_TENANT) return;
    if (!NAME.test(name)) throw MlErrors.NAME_TAKEN(`${kind} name ${JSON.stringify(name.slice(0, 64))} (invalid)`);
    const key = OwnerBook.key(kind, name);
    for (let attempt = 0; attempt < 8; attempt++) {
      const cur = await this.#kv.get(key);
      const owner = cur && cur.operation === 'PUT' && cur.value.length > 0 ? fromUtf8.decode(cur.value) : undefined;
      if (owner === tenant) return;
      if (owner !== undefined) throw MlErrors.NAME_TAKEN(`${kind} ${name}`);
      try {
        if (cur) await this.#kv.update(key, utf8.encode(tenant), cur.revision);
        else await this.#kv.create(key, utf8.encode(tenant));
        this.#cache.set(key, tenant);
        // Not audited: a claim is the creation of what the tenant submitted (its job, its new model), recorded with that.
        return;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(`owners ${key}`);
  }

  /**
   * Sets (or, with `default`, clears) the owner: an operator's assignment, through the registry
   * service (which records it in the audit log). Returns the owner before.
   */
  async assign(kind: OwnedKind, name: string, tenant: string): Promise<string> {
    const key = OwnerBook.key(kind, name);
    const cur = await this.#kv.get(key);
    const previous = cur && cur.operation === 'PUT' && cur.value.length > 0 ? fromUtf8.decode(cur.value) : DEFAULT_TENANT;
    if (tenant === DEFAULT_TENANT) await this.#kv.delete(key);
    else await this.#kv.put(key, utf8.encode(tenant));
    return previous;
  }
}
