/**
 * `npm run docs:api`: renders docs/api.md from the gateway's OpenAPI document (an app instance on
 * a real nats-server, the document fetched from its `/docs/json`). `--check` writes nothing and
 * exits 1 when the committed file differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchOpenApiDocument } from './openapi-document.ts';
import { renderApiMarkdown } from './openapi-markdown.ts';
import { isPublic } from '../gateway/tenants.ts';

const file = join(import.meta.dirname, '..', 'docs', 'api.md');
const text = renderApiMarkdown(await fetchOpenApiDocument(), isPublic);
if (process.argv.includes('--check')) {
  let old = '';
  try {
    old = readFileSync(file, 'utf8');
  } catch {
    // missing: differs
  }
  if (old !== text) {
    process.stderr.write(`docs/api.md is out of date: run npm run docs:api\n`);
    process.exit(1);
  }
  process.stdout.write('docs/api.md is up to date\n');
} else {
  writeFileSync(file, text);
  process.stdout.write(`wrote ${file} (${text.split('\n').length} lines)\n`);
}
process.exit(0);
