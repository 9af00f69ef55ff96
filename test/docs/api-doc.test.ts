/**
 * docs/api.md against the gateway it documents: the OpenAPI document of a gateway app on a real
 * nats-server (what `npm run docs:api` renders from) has every route in the committed file, and
 * the file documents no route the gateway no longer has. When this fails: `npm run docs:api`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fetchOpenApiDocument, type OpenApiDocument } from '../../scripts/openapi-document.ts';
import { renderApiMarkdown } from '../../scripts/openapi-markdown.ts';
import { isPublic } from '../../gateway/tenants.ts';

const committed = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'api.md'), 'utf8');

describe('docs/api.md', () => {
  let doc: OpenApiDocument;
  beforeAll(async () => {
    doc = await fetchOpenApiDocument();
  }, 60_000);

  it('has a section for every route of the OpenAPI document, and none other', () => {
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m)).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes.length).toBeGreaterThan(10);
    const documented = [...committed.matchAll(/^### (\S+ \S+)$/gm)].map((m) => m[1]!);
    expect(documented.sort()).toEqual(routes.sort());
  });

  it('marks the routes the gateway lets through without a key as open, the others as keyed', () => {
    const text = renderApiMarkdown(doc, isPublic);
    const section = (route: string) => text.split(/^### /m).find((s) => s.startsWith(`${route}\n`)) ?? '';
    expect(section('GET /v2/health/ready')).toContain('Open (no key).');
    expect(section('POST /v2/models/{name}/infer')).toContain('Needs an API key');
  });
});
