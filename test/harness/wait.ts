/**
 * Polls `fn` until it returns something other than undefined (errors count as "not yet"), or
 * fails after `ms` naming what it waited for. For conditions that become true eventually in a
 * real cluster (a node declared dead, an actor re-placed); never a timing assertion.
 */
export async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms: number, what: string, everyMs = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
