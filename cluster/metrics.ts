/**
 * Prometheus metrics for every process (prom-client): each process builds one registry
 * (`processRegistry`) with Node's default process metrics under its role's prefix, and may serve
 * it on its own HTTP port (`serveMetrics`, config `metrics.port`).
 *
 * The metrics touched on hot paths are {@link HotHistogram} / {@link HotCounter} /
 * {@link HotGauge}: profiled under load, prom-client's `labels(...).observe()` re-validates and
 * re-hashes the label values on *every* call (even on a child), ~0.7 µs per operation. These keep
 * one child per label set (looked up once, then held by the caller) whose update is a few field
 * writes, and give prom-client's registry the same exposition (label order included) at scrape
 * time. State that already lives somewhere (an actor host's cells, a batcher's counters) is read
 * at scrape time instead, with {@link scrapeGauge}: nothing is paid between scrapes.
 */
import { createServer, type Server } from 'node:http';
import client from 'prom-client';
import type { Logger } from './logger.ts';

export { client as promClient };
export type Registry = client.Registry;

type Labels = Record<string, string>;
interface Exported {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** What the registry reads from a metric (prom-client's `get()` contract). */
export abstract class HotMetric<C> {
  readonly aggregator = 'sum';
  abstract readonly type: 'histogram' | 'counter' | 'gauge';
  readonly #children = new Map<string, { labels: Labels; child: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registers: client.Registry[],
  ) {
    for (const r of registers) r.registerMetric(this as unknown as client.Metric);
  }

  protected abstract make(): C;
  protected abstract export(labels: Labels, child: C, out: Exported[]): void;

  /** The child of these label values (in `labelNames` order); hold on to it on hot paths. */
  labels(...values: string[]): C {
    const key = values.length === 1 ? values[0]! : values.join('\u0001');
    let e = this.#children.get(key);
    if (!e) {
      if (values.length !== this.labelNames.length) throw new TypeError(`${this.name}: ${this.labelNames.length} label values expected, got ${values.length}`);
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => (labels[n] = String(values[i])));
      e = { labels, child: this.make() };
      this.#children.set(key, e);
    }
    return e.child;
  }

  async get(): Promise<{ name: string; help: string; type: string; values: Exported[]; aggregator: string }> {
    const values: Exported[] = [];
    for (const { labels, child } of this.#children.values()) this.export(labels, child, values);
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#children.clear();
  }
}

export class HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

export class HotHistogram extends HotMetric<HistogramChild> {
  readonly type = 'histogram';
  readonly #bounds: number[];
  constructor(o: { name: string; help: string; labelNames: readonly string[]; buckets: number[]; registers: client.Registry[] }) {
    super(o.name, o.help, o.labelNames, o.registers);
    this.#bounds = [...o.buckets].sort((a, b) => a - b);
  }
  protected make(): HistogramChild {
    return new HistogramChild(this.#bounds);
  }
  protected export(labels: Labels, c: HistogramChild, out: Exported[]): void {
    let acc = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      acc += c.counts[i]!;
      out.push({ labels: { le: this.#bounds[i]!, ...labels }, value: acc, metricName: `${this.name}_bucket` });
    }
    out.push({ labels: { le: '+Inf', ...labels }, value: c.count, metricName: `${this.name}_bucket` });
    out.push({ labels, value: c.sum, metricName: `${this.name}_sum` });
    out.push({ labels, value: c.count, metricName: `${this.name}_count` });
  }
}

export class CounterChild {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class HotCounter extends HotMetric<CounterChild> {
  readonly type = 'counter';
  constructor(o: { name: string; help: string; labelNames: readonly string[]; registers: client.Registry[] }) {
    super(o.name, o.help, o.labelNames, o.registers);
  }
  protected make(): CounterChild {
    return new CounterChild();
  }
  protected export(labels: Labels, c: CounterChild, out: Exported[]): void {
    out.push({ labels, value: c.value });
  }
}

export class GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
}

export class HotGauge extends HotMetric<GaugeChild> {
  readonly type = 'gauge';
  constructor(o: { name: string; help: string; labelNames: readonly string[]; registers: client.Registry[] }) {
    super(o.name, o.help, o.labelNames, o.registers);
  }
  protected make(): GaugeChild {
    return new GaugeChild();
  }
  protected export(labels: Labels, c: GaugeChild, out: Exported[]): void {
    out.push({ labels, value: c.value });
  }
}

/** A registry for one process, with Node's process metrics prefixed `shoal_<role>_`. */
export function processRegistry(role: string): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: `shoal_${role}_` });
  return registry;
}

/** The metric of this name in `registry`, created by `make` the first time (several actors share one). */
export function metricOf<M extends client.Metric>(registry: client.Registry, name: string, make: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make();
}

/**
 * A gauge whose values are read when Prometheus scrapes: `read` returns one `[labels, value]`
 * per series (series that are gone disappear from the exposition).
 */
export function scrapeGauge(o: { name: string; help: string; labelNames?: readonly string[]; registers: client.Registry[]; read: () => Iterable<[Record<string, string | number>, number]> }): client.Gauge {
  return new client.Gauge({
    name: o.name,
    help: o.help,
    labelNames: o.labelNames ?? [],
    registers: o.registers,
    collect() {
      this.reset();
      for (const [labels, v] of o.read()) this.set(labels, v);
    },
  });
}

/** Same as {@link scrapeGauge}, exposed as a counter (a total that only grows while the process lives). */
export function scrapeCounter(o: { name: string; help: string; labelNames?: readonly string[]; registers: client.Registry[]; read: () => Iterable<[Record<string, string | number>, number]> }): void {
  const read = o.read;
  const labelNames = o.labelNames ?? [];
  const metric = {
    name: o.name,
    help: o.help,
    type: 'counter',
    aggregator: 'sum',
    labelNames,
    async get() {
      const values = [...read()].map(([labels, value]) => ({ labels, value }));
      return { name: o.name, help: o.help, type: 'counter', values, aggregator: 'sum' };
    },
    reset() {},
  };
  for (const r of o.registers) r.registerMetric(metric as unknown as client.Metric);
}

export interface MetricsServer {
  /** `http://host:port/metrics` */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `registry` at `GET /metrics` (Prometheus text format) on `host:port`; anything else is
 * 404. A taken port: with `fallback` (a process under `shoal up`, which records the address it
 * really got) another free port, said at info level; without, a warning and undefined — metrics
 * are never a reason for a node or scheduler not to start.
 */
export async function serveMetrics(o: { registry: client.Registry; host: string; port: number; log?: Logger; fallback?: boolean }): Promise<MetricsServer | undefined> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'only GET /metrics is served here', code: 'SHOAL_ERR_NOT_FOUND' }));
      return;
    }
    o.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}`),
    );
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: o.host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await listen(o.port);
  } catch (err) {
    if (!o.fallback) {
      o.log?.warn({ port: o.port, err: (err as Error).message }, 'cannot serve /metrics on this port; metrics are off for this process');
      return undefined;
    }
    try {
      await listen(0);
    } catch (err2) {
      o.log?.warn({ port: o.port, err: (err2 as Error).message }, 'cannot serve /metrics; metrics are off for this process');
      return undefined;
    }
    o.log?.info({ wanted: o.port, port: (server.address() as { port: number }).port }, 'metrics port in use: serving /metrics on another port (recorded in cluster.json)');
  }
  server.unref();
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  return {
    url: `http://${o.host}:${port}/metrics`,
    port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
