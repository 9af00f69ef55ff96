export * from './metrics.ts';
export * from './audit.ts';
export * from './policy.ts';
export * from './training.ts';
