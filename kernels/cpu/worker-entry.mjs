// Plain-JS entry for the CPU backend's worker threads: registers tsx's loader so the worker can
// import the TypeScript sources whether the parent runs under tsx, vitest or compiled JS.
import { register } from 'tsx/esm/api';

register();
const mod = await import('./worker.ts');
export default mod.default;
