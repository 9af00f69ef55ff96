/**
 * The gateway's OpenAPI document, as a running gateway serves it at `/docs/json`: a real
 * nats-server (authorization on, the credentials `shoal up` would generate) in a temp dir, its streams
 * and buckets created as the scheduler creates them, the gateway app built on it with an API key configured (so the document carries its security
 * scheme), the document fetched through the route, then everything stopped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Role, connectAs, credentialOf, createLogger, ensureResources, generateCredentials, loadConfig, startNatsServer, subjects } from '../cluster/index.ts';
import { buildGateway } from '../gateway/index.ts';

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: { securitySchemes?: Record<string, { type: string; name?: string; in?: string }> };
}

export interface OpenApiOperation {
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: Schema }[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
  security?: unknown[];
}

export interface Schema {
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  minimum?: number;
  maximum?: number;
  default?: unknown;
}

export async function fetchOpenApiDocument(): Promise<OpenApiDocument> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-openapi-'));
  const credentials = generateCredentials();
  const bin = loadConfig({ argv: [] }).nats.serverBin;
  const server = await startNatsServer({ dir, port: 0, credentials, ...(bin ? { bin } : {}) });
  try {
    // The streams and buckets the scheduler would create, as the scheduler's role does.
    const admin = await connectAs({ servers: server.url, role: Role.SCHEDULER, credential: credentialOf(credentials, Role.SCHEDULER), reconnect: false });
    await ensureResources(admin);
    await admin.close();
    const nc = await connectAs({ servers: server.url, role: Role.GATEWAY, credential: credentialOf(credentials, Role.GATEWAY), reconnect: false });
    const app = await buildGateway({ nc, subjects: subjects(), logger: createLogger({ level: 'error', pretty: false }), apiKeys: [{ key: 'docs-key-00000001', tenant: 'docs' }], dashboard: false });
    try {
      await app.ready();
      const res = await app.inject({ method: 'GET', url: '/docs/json' });
      if (res.statusCode !== 200) throw new Error(`GET /docs/json answered ${res.statusCode}: ${res.body}`);
      return res.json<OpenApiDocument>();
    } finally {
      await app.close();
      await nc.close();
    }
  } finally {
    await server.stop(5000);
    rmSync(dir, { recursive: true, force: true });
  }
}
