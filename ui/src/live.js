/**
 * The dashboard's API client: JSON reads with the API key, and the live stream
 * (`/ui/api/events`, server-sent events) read with fetch — EventSource cannot send a key header.
 * A stream that goes quiet for three heartbeats is stale: it is dropped and opened again, with a
 * growing pause between tries (0.5 s … 10 s). 401/403 stop it: the page asks for a key.
 */

/** A readable message from an API error body (`{ error, code }`), else the HTTP status. */
export async function apiError(res) {
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const msg = body && typeof body.error === 'string' ? body.error : `${res.status} ${res.statusText || 'error'}`;
  const err = new Error(body && body.code ? `${msg} (${body.code})` : msg);
  err.status = res.status;
  return err;
}

export const keyHeaders = (key) => (key ? { 'x-api-key': key } : {});

export async function getJson(path, key) {
  let res;
  try {
    res = await fetch(path, { headers: keyHeaders(key), cache: 'no-store' });
  } catch (e) {
    const err = new Error(`the gateway did not answer (${e.message})`);
    err.status = 0;
    throw err;
  }
  if (!res.ok) throw await apiError(res);
  return res.json();
}

const sleep = (ms, signal) => new Promise((r) => {
  const t = setTimeout(r, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
});

/**
 * Opens the live stream. `onEvent(topic, value)` per message; `onStatus({ state, error? })` with
 * state `connecting` | `live` | `reconnecting` | `unauthorized`. Returns a function that closes it.
 */
export function connectLive({ key, onEvent, onStatus }) {
  const life = new AbortController();
  let heartbeatMs = 5000;
  let lastData = Date.now();
  let current;
  let attempt = 0;
  const watchdog = setInterval(() => {
    if (current && Date.now() - lastData > 3 * heartbeatMs) current.abort(new Error(`no data for ${Math.round((Date.now() - lastData) / 1000)} s`));
  }, 1000);

  const once = async () => {
    current = new AbortController();
    const res = await fetch('api/events', { headers: keyHeaders(key), cache: 'no-store', signal: current.signal });
    if (!res.ok) throw await apiError(res);
    lastData = Date.now();
    attempt = 0;
    onStatus({ state: 'live' });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the gateway closed the stream');
      lastData = Date.now();
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (!data) continue;
        const value = JSON.parse(data);
        if (event === 'hello') heartbeatMs = value.heartbeatMs || heartbeatMs;
        else if (event !== 'ping') onEvent(event, value);
      }
    }
  };

  (async () => {
    onStatus({ state: 'connecting' });
    while (!life.signal.aborted) {
      try {
        await once();
      } catch (e) {
        if (life.signal.aborted) break;
        if (e.status === 401 || e.status === 403) {
          onStatus({ state: 'unauthorized', error: e.message });
          break;
        }
        const why = e.name === 'AbortError' || e instanceof DOMException ? (current.signal.reason?.message ?? 'stale stream') : e.message;
        onStatus({ state: 'reconnecting', error: why });
      }
      attempt++;
      await sleep(Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)), life.signal);
    }
  })();

  return () => {
    life.abort();
    current?.abort();
    clearInterval(watchdog);
  };
}
