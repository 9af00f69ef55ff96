/**
 * Authorization for the embedded nats-server: one generated user per role with subject
 * permissions, and a generated server config file. No anonymous access.
 *
 * Each role gets its own inbox prefix (`_INBOX_<role>`), so a role can subscribe only to its own
 * replies, and `allow_responses` so responders can answer requests without a blanket publish
 * right on inboxes.
 */
import { randomBytes } from 'node:crypto';
import { Role, ROLES } from './wire.ts';
import { resources, subjects } from './subjects.ts';

export interface Credential {
  user: string;
  pass: string;
}
export type Credentials = Record<Role, Credential>;

export function generateCredentials(): Credentials {
  const out = {} as Credentials;
  for (const role of ROLES) out[role] = { user: role, pass: randomBytes(18).toString('base64url') };
  return out;
}

export const inboxPrefix = (role: Role) => `_INBOX_${role}`;

interface Permissions {
  publish: string[];
  /** Refused even where `publish` allows (deny wins in nats-server). */
  publishDeny?: string[];
  subscribe: string[];
}

/** JetStream API plus KV/object-store subjects; the scheduler owns stream creation. */
const JS_CLIENT = ['$JS.API.>', '$KV.>', '$O.>', '$JS.ACK.>', '$JS.FC.>'];

/**
 * JetStream operations only the scheduler may do: it creates and owns the streams and buckets,
 * consumes the job queue and holds the leader lease. Every other role keeps the JetStream API
 * its KV and object-store clients need (reads, watches, writes to its buckets, an object put
 * purging its own old chunks), but cannot create, change, delete or wipe a stream or bucket,
 * take over the job queue, or forge the scheduler's lease.
 */
function schedulerOnly(prefix: string): string[] {
  const r = resources(prefix);
  const wholeStreams = [...Object.values(r.buckets).map((b) => `KV_${b}`), r.jobsStream, r.eventsStream];
  return [
    '$JS.API.STREAM.CREATE.>',
    '$JS.API.STREAM.UPDATE.>',
    '$JS.API.STREAM.DELETE.>',
    ...wholeStreams.map((n) => `$JS.API.STREAM.PURGE.${n}`),
    `$JS.API.CONSUMER.CREATE.${r.jobsStream}`,
    `$JS.API.CONSUMER.CREATE.${r.jobsStream}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${r.jobsStream}.>`,
    `$JS.API.CONSUMER.DELETE.${r.jobsStream}.>`,
    `$KV.${r.buckets.leases}.>`,
  ];
}

export function rolePermissions(role: Role, prefix = 'shoal'): Permissions {
  const s = subjects(prefix);
  const inbox = `${inboxPrefix(role)}.>`;
  switch (role) {
    case Role.SCHEDULER:
      // The controller: everything under the prefix and all of JetStream.
      return { publish: [s.all, '$JS.>', '$KV.>', '$O.>'], subscribe: [s.all, inbox, '$JS.>'] };
    case Role.NODE:
      // Nodes host actors and services, report, and publish events; their actors may spawn and
      // stop actors through the scheduler's API. They may not give nodes orders as the scheduler,
      // submit jobs or reach the gateway's API.
      return {
        publish: [s.nodeAll, s.actorAll, s.serviceAll, s.eventsAll, s.sysPing, s.scheduler('actors'), s.scheduler('status'), ...JS_CLIENT],
        publishDeny: schedulerOnly(prefix),
        subscribe: [s.nodeAll, s.actorAll, s.serviceAll, s.sysAll, inbox],
      };
    case Role.GATEWAY:
      return {
        publish: [s.serviceAll, s.actorAll, s.jobsAll, s.sysPing, s.schedulerAll, s.gatewayAll, ...JS_CLIENT],
        publishDeny: schedulerOnly(prefix),
        subscribe: [s.eventsAll, s.sysAll, s.gatewayAll, inbox],
      };
    case Role.CLIENT:
      // Outside callers (CLI, product code): submit jobs, call actors and services, spawn/stop
      // actors through the scheduler, read status and events.
      return {
        publish: [s.serviceAll, s.actorAll, s.jobsSubmit, s.sysPing, s.scheduler('status'), s.scheduler('actors'), s.scheduler('nodes'), s.scheduler('jobs'), ...JS_CLIENT],
        publishDeny: schedulerOnly(prefix),
        subscribe: [s.eventsAll, inbox],
      };
  }
}

const q = (v: string) => JSON.stringify(v);
const list = (xs: string[]) => `[${xs.map(q).join(', ')}]`;

export interface ServerConfigOptions {
  host: string;
  port: number;
  storeDir: string;
  credentials: Credentials;
  prefix?: string;
  /** Monitoring port (0 = off). */
  httpPort?: number;
  serverName?: string;
}

/** nats-server config text (the server's own format: JSON-like with `=`). */
export function serverConfig(opts: ServerConfigOptions): string {
  const users = ROLES.map((role) => {
    const perms = rolePermissions(role, opts.prefix);
    const c = opts.credentials[role];
    const deny = perms.publishDeny?.length ? `, deny: ${list(perms.publishDeny)}` : '';
    return `    { user: ${q(c.user)}, password: ${q(c.pass)}, permissions: { publish: { allow: ${list(perms.publish)}${deny} }, subscribe: { allow: ${list(perms.subscribe)} }, allow_responses: true } }`;
  }).join('\n');
  return [
    `server_name: ${q(opts.serverName ?? 'shoal-embedded')}`,
    `host: ${q(opts.host)}`,
    `port: ${opts.port}`,
    opts.httpPort ? `http_port: ${opts.httpPort}` : '',
    `jetstream { store_dir: ${q(opts.storeDir)} }`,
    `max_payload: 8MB`,
    `authorization {`,
    `  users = [`,
    users,
    `  ]`,
    `}`,
    '',
  ]
    .filter((l) => l !== '')
    .join('\n');
}
