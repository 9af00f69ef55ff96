import { readFileSync } from 'node:fs';

/** The package version, read once (shown in presence replies and `shoal --version`). */
export const SHOAL_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
