/**
 * Session worker threads started before they are needed, so that a replica starting on this
 * node (a start from zero above all) does not wait for one to boot. Booting one — a new V8
 * isolate, tsx registered, onnxruntime's native module loaded — measured ~1.3 s of the ~1.4 s a
 * one-session replica took to create its pool here (2 shared cores); loading the model into a
 * booted worker is the small part for small models.
 *
 * A node keeps `n` spares once a replica asked for it (deployment option: scale-to-zero tracks
 * do by default, `scaleToZero.prewarm`); each spare taken is replaced in the background. A
 * spare is an idle thread with onnxruntime loaded and no model (tens of MB): that is its cost.
 */
import { Worker } from 'node:worker_threads';

const spares: Worker[] = [];
let wanted = 0;
let url: URL | undefined;

function fill(): void {
  while (url && spares.length < wanted) {
    const w = new Worker(url);
    w.unref();
    const drop = () => {
      const i = spares.indexOf(w);
      if (i >= 0) spares.splice(i, 1);
    };
    // A spare that fails or exits before it is taken is forgotten (the next take boots one itself).
    w.once('error', drop);
    w.once('exit', drop);
    spares.push(w);
  }
}

/** Keeps at least `n` booted session workers of `workerUrl` in this process from now on. */
export function keepSpareWorkers(workerUrl: URL, n: number): void {
  url = workerUrl;
  wanted = Math.max(wanted, n);
  fill();
}

/** A booted spare if one is kept (then replaced in the background), else a new worker. */
export function takeWorker(workerUrl: URL): Worker {
  const w = url?.href === workerUrl.href ? spares.shift() : undefined;
  if (w) {
    w.removeAllListeners('error');
    w.removeAllListeners('exit');
    setImmediate(fill);
    return w;
  }
  return new Worker(workerUrl);
}

/** Spares kept now (tests). */
export function spareCount(): number {
  return spares.length;
}
