// The entry of a replica's session worker thread (session-pool.ts). Plain JavaScript on purpose:
// on Node 20 a worker thread does not inherit the parent's module hooks, so it registers tsx
// itself (as nodes/task-worker.mjs does) before importing the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./session-worker.ts');
