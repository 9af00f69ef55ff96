/** Small formatters shared by the pages. */
export const ago = (ms) => (ms == null ? '—' : ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 3_600_000)} h`);
export const since = (at) => (at ? `${ago(Date.now() - at)} ago` : '—');
export const time = (at) => (at ? new Date(at).toLocaleTimeString() : '—');
export const gib = (b) => `${(b / 2 ** 30).toFixed(1)} GiB`;
export const bytes = (b) => (b < 1024 ? `${b} B` : b < 2 ** 20 ? `${(b / 1024).toFixed(1)} KiB` : b < 2 ** 30 ? `${(b / 2 ** 20).toFixed(1)} MiB` : gib(b));
export const pct = (x) => `${Math.round(x * 1000) / 10}%`;
export const num = (x, d = 3) => (x == null || Number.isNaN(x) ? '—' : Number(x).toFixed(d).replace(/\.?0+$/, '') || '0');
export const money = (x) => (x == null ? '—' : x === 0 ? '$0' : x < 0.01 ? `$${x.toPrecision(2)}` : `$${x.toFixed(2)}`);
export const last = (arr) => (arr && arr.length ? arr[arr.length - 1] : null);
