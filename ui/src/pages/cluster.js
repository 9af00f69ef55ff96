import { html } from '../html.js';
import { registerPage, registerPanel } from '../panels.js';
import { ago, gib, since, time } from '../format.js';
import { Badge, Table, Tile, TopicError, stateKind } from './common.js';

registerPage({ id: 'cluster', title: 'Cluster', order: 10 });

const sched = (v) => (v && v.status && v.status.scheduler) || null;

registerPanel({
  page: 'cluster',
  id: 'summary',
  title: 'Summary',
  order: 10,
  topic: 'cluster',
  render: ({ value }) => {
    if (!value || value.error) return html`<${TopicError} value=${value} what="the cluster" />`;
    if (!value.status || value.status.loading) return html`<p class="muted" role="status">Reading the cluster…</p>`;
    if (value.status.error) return html`<p class="error" role="alert"><strong>Cluster status unavailable:</strong> ${value.status.error}</p>`;
    const s = sched(value);
    if (s.error) return html`<p class="error" role="alert"><strong>Scheduler unavailable:</strong> ${s.error}</p>`;
    const nodes = s.nodes || [];
    return html`<div class="tiles">
      <${Tile} label="nodes alive" value=${`${nodes.filter((n) => n.alive).length} / ${nodes.length}`} testid="tile-nodes" />
      <${Tile} label="actors" value=${s.actors ?? value.actorCount} />
      <${Tile} label="pending actors" value=${(s.pending || []).length} />
      <${Tile} label="processes answering" value=${value.status.processes.length} />
      <${Tile} label="cost of nodes" value=${`$${nodes.filter((n) => n.alive).reduce((a, n) => a + (n.labels.pricePerHour || 0), 0).toFixed(3)}/h`} />
    </div>`;
  },
});

registerPanel({
  page: 'cluster',
  id: 'nodes',
  title: 'Nodes',
  order: 20,
  topic: 'cluster',
  render: ({ value }) => {
    const s = sched(value);
    if (!s || s.error) return null;
    return html`<${Table}
      caption=${`Nodes as scheduler ${s.schedulerId} sees them`}
      testid="nodes"
      head=${['Node', 'State', 'Pool', 'Market', 'Price', 'Zone', 'Resources', 'GPU', 'Load', 'Seen']}
      rows=${s.nodes.map((n) => [
        n.nodeId,
        html`<${Badge} kind=${stateKind(n.alive ? n.state : 'dead')}>${n.alive ? n.state : 'dead'}<//>`,
        n.labels.pool,
        n.labels.spot ? 'spot' : 'on-demand',
        `$${n.labels.pricePerHour}/h`,
        n.labels.zone,
        `${n.capabilities.cpus} CPU, ${gib(n.capabilities.memoryBytes)}`,
        n.capabilities.gpu ? `${n.capabilities.gpu.description || n.capabilities.gpu.vendor}${n.capabilities.gpu.software ? ' (software)' : ''}` : 'none',
        `${n.load.actors} actors · CPU ${n.load.cpuPercent}% · mailbox ${n.load.mailboxDepth ?? 0} · loop ${n.load.eventLoopDelayMs} ms`,
        `${ago(n.lastSeenMsAgo)} ago`,
      ])}
      empty="No node has joined."
    />`;
  },
});

registerPanel({
  page: 'cluster',
  id: 'pending',
  title: 'Pending actors',
  order: 30,
  topic: 'cluster',
  render: ({ value }) => {
    const s = sched(value);
    if (!s || s.error) return null;
    return html`<${Table} caption="Pending actors and why" testid="pending" head=${['Actor', 'Why it waits']} rows=${(s.pending || []).map((p) => [p.actorId, p.reason])} empty="No actor is waiting for a node." />`;
  },
});

registerPanel({
  page: 'cluster',
  id: 'actors',
  title: 'Actors',
  order: 40,
  topic: 'cluster',
  render: ({ value }) => {
    if (!value || value.error || !value.actors) return null;
    return html`${value.actorsError ? html`<p class="error" role="alert">${value.actorsError}</p>` : null}
      <${Table}
        caption=${`Actors (${value.actorCount}${value.actorCount > value.actors.length ? `, first ${value.actors.length} shown` : ''})`}
        testid="actors"
        head=${['Actor', 'Type', 'Service', 'Node', 'State', 'Reason']}
        rows=${value.actors.map((a) => [a.actorId, a.type, a.service || '—', a.nodeId || '—', html`<${Badge} kind=${stateKind(a.state)}>${a.state}<//>`, a.reason || ''])}
        empty="No actors."
      />`;
  },
});

registerPanel({
  page: 'cluster',
  id: 'processes',
  title: 'Processes',
  order: 50,
  topic: 'cluster',
  render: ({ value }) => {
    if (!value || !value.status || !value.status.processes) return null;
    return html`<${Table}
      caption="Processes answering on NATS"
      testid="processes"
      head=${['Id', 'Role', 'Host', 'PID', 'State', 'Up since', 'Details']}
      rows=${value.status.processes.map((p) => [p.id, p.role, p.host, p.pid, p.state, since(p.startedAt), p.role === 'gateway' ? String(p.details.url || '') : p.role === 'scheduler' ? (p.details.leader ? 'leader' : 'standby') : String(p.details.profile || '')])}
    />`;
  },
});

registerPanel({
  page: 'cluster',
  id: 'events',
  title: 'Recent events',
  order: 60,
  topic: 'events',
  render: ({ value }) => {
    if (!value || !value.events) return null;
    return html`<${Table}
      caption="Recent cluster events (since this gateway started)"
      head=${['Event', 'At', 'Details']}
      rows=${value.events.slice(0, 15).map((e) => [e.kind, time(e.at), Object.entries(e.data).filter(([k]) => k !== 'at').map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ').slice(0, 160)])}
      empty="No events yet."
    />`;
  },
});
