/**
 * The gateway's request log (`gateway.requestLog`): one pino line per request with its id,
 * method, url, status, duration, tenant and error code — every request, only refused and failed
 * ones, or none. A real nats-server underneath; inference routes off (no cluster needed).
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, subjects, type NatsConnection } from '../../cluster/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  method?: string;
  url?: string;
  status?: number;
  ms?: number;
  tenant?: string;
  code?: string;
}

describe('gateway request log', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  const gateways: FastifyInstance[] = [];
  beforeAll(async () => {
    nats = await startTestNats();
    nc = await nats.connect(Role.GATEWAY);
  });
  afterAll(async () => {
    for (const g of gateways) await g.close();
    await nats?.stop();
  });

  async function gateway(requestLog: 'all' | 'errors' | 'off'): Promise<{ app: FastifyInstance; lines: Line[] }> {
    const lines: Line[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Line);
        cb();
      },
    });
    const app = await buildGateway({ nc, subjects: subjects(), logger: pino({ level: 'info' }, sink), inference: false, requestLog, apiKeys: [{ key: 'k-tenant-a-123', tenant: 'tenant-a' }] });
    gateways.push(app);
    return { app, lines };
  }

  const calls = async (app: FastifyInstance) => {
    await app.inject({ method: 'GET', url: '/v2' }); // 200, public
    await app.inject({ method: 'GET', url: '/v1/nothing-here', headers: { 'x-api-key': 'k-tenant-a-123' } }); // 404
    await app.inject({ method: 'GET', url: '/v1/status' }); // 401: no key
  };
  const requests = (lines: Line[]) => lines.filter((l) => l.msg.startsWith('request'));

  it('all: a line per request, with status, duration, tenant and the error code', async () => {
    const { app, lines } = await gateway('all');
    await calls(app);
    const r = requests(lines);
    expect(r.map((l) => [l.method, l.url, l.status, l.msg])).toEqual([
      ['GET', '/v2', 200, 'request'],
      ['GET', '/v1/nothing-here', 404, 'request refused'],
      ['GET', '/v1/status', 401, 'request refused'],
    ]);
    expect(r[1]).toMatchObject({ tenant: 'tenant-a', code: 'SHOAL_ERR_NOT_FOUND', level: 30 });
    expect(r[2]).toMatchObject({ tenant: 'anonymous', code: 'SHOAL_ERR_UNAUTHORIZED' });
    expect(new Set(r.map((l) => l.reqId)).size).toBe(3);
    expect(r.every((l) => typeof l.ms === 'number' && l.ms >= 0)).toBe(true);
  });

  it('errors (the default): refused and failed requests only; off: none', async () => {
    const errs = await gateway('errors');
    await calls(errs.app);
    expect(requests(errs.lines).map((l) => l.status)).toEqual([404, 401]);
    const off = await gateway('off');
    await calls(off.app);
    expect(requests(off.lines)).toEqual([]);
  });
});
