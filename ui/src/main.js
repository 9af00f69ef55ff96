/**
 * The Shoal dashboard: a shell (header, tabs, connection state, key prompt) around the pages and
 * panels registered in panels.js. Data comes from the gateway's `/ui/api` — first the session
 * check, then one live stream of every topic (live.js).
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';
import { allPages, panelsOf } from './panels.js';
import { connectLive, getJson } from './live.js';
import './pages/cluster.js';
import './pages/models.js';
import './pages/jobs.js';
import './pages/monitoring.js';
import './pages/cost.js';
import './pages/pipelines.js';

const KEY = 'shoal.apiKey';
const storedKey = () => sessionStorage.getItem(KEY) || '';

const pageOf = () => {
  const id = (location.hash.match(/^#\/([a-z-]+)/) || [])[1];
  return allPages().some((p) => p.id === id) ? id : allPages()[0].id;
};

function KeyPrompt({ message, onKey }) {
  const [value, setValue] = useState('');
  return html`<main class="login" id="main">
    <h1>Shoal dashboard</h1>
    <form onSubmit=${(e) => { e.preventDefault(); onKey(value.trim()); }} aria-describedby="login-why">
      <p id="login-why" class=${message ? 'error' : ''} role=${message ? 'alert' : undefined}>${message || 'This gateway has API keys: enter an admin key to see the cluster.'}</p>
      <label for="api-key">Admin API key</label>
      <input id="api-key" type="password" autocomplete="current-password" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} autofocus required />
      <button type="submit">Open the dashboard</button>
      <p class="muted">The key stays in this browser tab (session storage) and is sent as <code>x-api-key</code>.</p>
    </form>
  </main>`;
}

const STATE_TEXT = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', unauthorized: 'not authorised' };

function App() {
  const [key, setKey] = useState(storedKey());
  const [session, setSession] = useState(null);
  const [authError, setAuthError] = useState(null);
  const [fatal, setFatal] = useState(null);
  const [page, setPage] = useState(pageOf());
  const [data, setData] = useState({});
  const [conn, setConn] = useState({ state: 'connecting' });

  useEffect(() => {
    const on = () => setPage(pageOf());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);

  // The session check: 401/403 ask for a key; any other failure is shown, then retried.
  useEffect(() => {
    let alive = true;
    let timer;
    const check = () =>
      getJson('api/session', key).then(
        (s) => { if (alive) { setSession(s); setAuthError(null); setFatal(null); } },
        (e) => {
          if (!alive) return;
          if (e.status === 401 || e.status === 403) { setSession(null); setAuthError(key ? e.message : ''); }
          else { setFatal(e.message); timer = setTimeout(check, 3000); }
        },
      );
    check();
    return () => { alive = false; clearTimeout(timer); };
  }, [key]);

  useEffect(() => {
    if (!session) return undefined;
    return connectLive({
      key,
      onEvent: (topic, value) => setData((d) => ({ ...d, [topic]: value })),
      onStatus: (s) => {
        setConn(s);
        if (s.state === 'unauthorized') { setSession(null); setAuthError(s.error); }
      },
    });
  }, [session, key]);

  const useKey = (k) => {
    sessionStorage.setItem(KEY, k);
    setKey(k);
  };

  if (!session && authError !== null) return html`<${KeyPrompt} message=${authError} onKey=${useKey} />`;
  if (!session) return html`<main class="boot" id="main">${fatal ? html`<p class="error" role="alert"><strong>The dashboard cannot reach its API:</strong> ${fatal}. Retrying…</p>` : html`<p role="status">Connecting to the gateway…</p>`}</main>`;

  const current = allPages().find((p) => p.id === page);
  return html`<a class="skip" href="#main">Skip to content</a>
    <header>
      <span class="brand">Shoal</span>
      <nav aria-label="Pages">
        ${allPages().map((p) => html`<a href=${`#/${p.id}`} aria-current=${p.id === page ? 'page' : undefined}>${p.title}</a>`)}
      </nav>
      <span class=${`conn conn-${conn.state}`} role="status" data-testid="connection" title=${conn.error || ''}>${STATE_TEXT[conn.state] || conn.state}${conn.state === 'reconnecting' && conn.error ? ` (${conn.error})` : ''}</span>
      <span class="who">${session.auth ? `tenant ${session.tenant}` : 'no API keys (open)'}</span>
      ${session.auth ? html`<button class="link" onClick=${() => { sessionStorage.removeItem(KEY); setSession(null); setAuthError(''); setKey(''); }}>Sign out</button>` : null}
    </header>
    <main id="main" tabindex="-1" data-testid=${`page-${page}`}>
      <h1>${current.title}</h1>
      ${panelsOf(page).map((p) => html`<section class="panel" aria-labelledby=${`panel-${p.id}`}>
        <h2 id=${`panel-${p.id}`}>${p.title}</h2>
        ${p.render({ data, value: data[p.topic] })}
      </section>`)}
    </main>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
