import type { Config } from '../cluster/index.ts';
export const DEMO_FLAGS = ['rows', 'seed', 'json'] as const;
export async function demoCommand(_rest: string[], _config: Config): Promise<number> { return 0; }
