// The node's worker-pool task runner (a piscina worker). Plain JavaScript on purpose: on Node 20
// a worker thread does not inherit the parent's module hooks, so it registers tsx itself before
// importing a TypeScript task module. It imports the named module and calls the named export;
// errors cross the thread as plain { code, message } data.
import { register } from 'tsx/esm/api';

register();

export default async function run(task) {
  const mod = await import(task.moduleUrl);
  const f = mod[task.fn];
  if (typeof f !== 'function') {
    throw Object.assign(new Error(`${task.moduleUrl} has no exported function ${task.fn}`), { code: 'SHOAL_ERR_BAD_MESSAGE' });
  }
  return f(task.args);
}
