/**
 * The dashboard at `/ui`: the page and its bundle (ui/dist, built by `npm run build:ui`; built
 * here on start when missing and esbuild is installed, else `/ui` answers a page that says how),
 * and its data under `/ui/api`:
 * - `GET /ui/api/session`: who the key is (`{ tenant, admin, auth }`), the page's login check;
 * - `GET /ui/api/state`: every topic's current snapshot (cluster, models, jobs, events);
 * - `GET /ui/api/events`: the same as server-sent events — each topic at once, then each change,
 *   and a `ping` every `heartbeatMs` so a page can tell a stale stream and reconnect.
 *
 * The page and its scripts hold no data and are open; `/ui/api/*` needs an API key when keys
 * are configured (401 without one) and an **admin** key (`admin: true`): an inference key is a
 * tenant's credential, often held by a product's backend, and the dashboard shows every tenant's
 * models, jobs and the whole cluster, so it is refused (403 `SHOAL_ERR_FORBIDDEN`).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import type { Logger } from '../../cluster/index.ts';
import { GatewayErrors } from '../errors.ts';
import type { DashboardFeed } from '../ui-feed.ts';

const UI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ui');

export interface UiRouteOptions {
  feed: DashboardFeed;
  /** API keys are configured (the page then asks for one). */
  auth: boolean;
  logger: Logger;
  /** The built bundle. @default ui/dist */
  distDir?: string;
}

/** Builds ui/dist when it is missing; the reason when it cannot. */
async function ensureBuilt(dist: string, log: Logger): Promise<string | undefined> {
  if (existsSync(join(dist, 'index.html'))) return undefined;
  try {
    const mod = (await import(pathToFileURL(join(UI_DIR, 'build.mjs')).href)) as { buildUi: (out: string) => Promise<string> };
    await mod.buildUi(dist);
    log.info({ dist }, 'dashboard bundle built');
    return undefined;
  } catch (err) {
    log.warn({ dist, err: (err as Error).message }, 'dashboard bundle missing and could not be built');
    return (err as Error).message;
  }
}

const notBuilt = (why: string) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shoal dashboard</title></head>
<body style="font:16px system-ui,sans-serif;max-width:40rem;margin:2rem auto;color:#1a1a1a">
<h1>Shoal dashboard: not built</h1>
<p>The dashboard's files (ui/dist) are missing and the gateway could not build them (${why.replace(/[<>&]/g, '')}).</p>
<p>Run <code>npm run build:ui</code> (or <code>npm run setup</code>) in the Shoal folder, then reload this page.</p>
</body></html>`;

export async function registerUiRoutes(app: FastifyInstance, o: UiRouteOptions): Promise<void> {
  const dist = o.distDir ?? join(UI_DIR, 'dist');
  const missing = await ensureBuilt(dist, o.logger);

  app.get('/ui', { schema: { hide: true } }, (_req, reply) => reply.redirect('/ui/'));
  if (missing === undefined) {
    await app.register(fastifyStatic, { root: dist, prefix: '/ui/', index: ['index.html'], cacheControl: false, decorateReply: false });
  } else {
    app.get('/ui/*', { schema: { hide: true } }, (_req, reply) => reply.status(503).type('text/html; charset=utf-8').send(notBuilt(missing)));
  }

  await app.register(async (api) => {
    // Admin keys only (every request here has passed the tenant guard: a known key, or no keys configured).
    api.addHook('preHandler', (req, _reply, done) => {
      if (!req.shoalAdmin) return done(GatewayErrors.FORBIDDEN(`the dashboard needs an admin API key; the key of tenant ${req.shoalTenant} is not one (set admin: true on a key in gateway.apiKeys)`));
      done();
    });
    api.get('/ui/api/session', { schema: { hide: true } }, async (req) => ({ tenant: req.shoalTenant, admin: true, auth: o.auth, topics: o.feed.topics }));
    api.get('/ui/api/state', { schema: { hide: true } }, async () => o.feed.state());
    api.get('/ui/api/events', { schema: { hide: true } }, (req, reply) => serveEvents(req, reply, o.feed, streams));
  });

  // Open streams end when the gateway closes (else close would wait for them).
  const streams = new Set<FastifyReply>();
  app.addHook('preClose', (done) => {
    for (const r of streams) r.raw.end();
    streams.clear();
    o.feed.stop();
    done();
  });
}

function serveEvents(req: FastifyRequest, reply: FastifyReply, feed: DashboardFeed, streams: Set<FastifyReply>): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ heartbeatMs: feed.heartbeatMs })}\n\n`);
  streams.add(reply);
  const unsubscribe = feed.subscribe((event, data) => {
    res.write(`event: ${event}\ndata: ${data}\n\n`);
  });
  req.raw.on('close', () => {
    unsubscribe();
    streams.delete(reply);
  });
}
