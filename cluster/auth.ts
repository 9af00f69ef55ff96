/**
 * Authorization for the embedded nats-server: a generated user per role (scheduler, gateway,
 * client) and one user per node, with the permissions of the role table (`roles.ts`), in a
 * generated server config file. No anonymous access.
 *
 * Node credentials are per node: user `node-<nodeId>`, password HMAC-SHA256(node secret,
 * nodeId). Whoever holds the secret (the supervisor, the scheduler when it launches nodes, an
 * operator provisioning an external NATS) can derive any node's password; a node gets only its
 * own, so its credentials allow only its own control subject and its own nodes-bucket key.
 *
 * Each user gets its own inbox prefix (`_INBOX_<user>`), so it can subscribe only to its own
 * replies, and `allow_responses` so responders can answer requests without a blanket publish
 * right on inboxes.
 *
 * Tenants' own users (README "Tenants over NATS") authenticate with an NKey: the server config
 * holds only the public key (`nats.tenantUsers`), the tenant keeps the seed. `shoal keys new
 * --tenant T --nats` makes one.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { nkeys } from '@nats-io/transport-node';
import { Role } from './wire.ts';
import { TENANT_ROLE, inboxOf, permissionsFor, requireTenant, userOf, type Permissions } from './roles.ts';

export interface Credential {
  user: string;
  pass: string;
}

/** The roles with one shared user; nodes have one user each. */
export type ServiceRole = Exclude<Role, typeof Role.NODE>;
export const SERVICE_ROLES: readonly ServiceRole[] = [Role.SCHEDULER, Role.GATEWAY, Role.CLIENT];

export type Credentials = Record<ServiceRole, Credential> & {
  /** Key node passwords are derived from (`nodeCredential`). Give it to the scheduler only. */
  nodeSecret: string;
};

export function generateCredentials(nodeSecret?: string): Credentials {
  const out = { nodeSecret: nodeSecret ?? randomBytes(32).toString('base64url') } as Credentials;
  for (const role of SERVICE_ROLES) out[role] = { user: role, pass: randomBytes(18).toString('base64url') };
  return out;
}

/** A node's own credential, derived from the cluster's node secret. */
export function nodeCredential(nodeSecret: string, nodeId: string): Credential {
  return { user: userOf(Role.NODE, nodeId), pass: createHmac('sha256', nodeSecret).update(nodeId).digest('base64url') };
}

/** The credential of `role` (of node `nodeId` for the node role). */
export function credentialOf(credentials: Credentials, role: Role, nodeId?: string): Credential {
  if (role === Role.NODE) {
    if (!nodeId) throw new Error('node credentials are per node: pass the node id');
    return nodeCredential(credentials.nodeSecret, nodeId);
  }
  return credentials[role];
}

/** Inbox prefix of a role's connections (a node's: `inboxOf(Role.NODE, nodeId)`). */
export const inboxPrefix = (role: Role, nodeId?: string) => inboxOf(role, nodeId);

export function rolePermissions(role: Role, prefix = 'shoal', nodeId?: string): Permissions {
  return permissionsFor(role, { prefix, ...(nodeId !== undefined ? { nodeId } : {}) });
}

const q = (v: string) => JSON.stringify(v);
const list = (xs: string[]) => `[${xs.map(q).join(', ')}]`;

/** One user's entry in nats-server's `authorization { users = [...] }` (what an operator of an external NATS adds). */
export function userEntry(credential: Credential, perms: Permissions): string {
  return `{ user: ${q(credential.user)}, password: ${q(credential.pass)}, permissions: { publish: { allow: ${list(perms.publish)} }, subscribe: { allow: ${list(perms.subscribe)} }, allow_responses: true } }`;
}

/** The entry of node `nodeId`. */
export function nodeUserEntry(nodeSecret: string, nodeId: string, prefix = 'shoal'): string {
  return userEntry(nodeCredential(nodeSecret, nodeId), rolePermissions(Role.NODE, prefix, nodeId));
}

/** A tenant's NATS user as a server config holds it: the tenant and its NKey's public key (never the seed). */
export interface TenantUser {
  tenant: string;
  /** The user NKey's public key (`U` and 55 base32 characters). */
  nkey: string;
}

export const NKEY_PUBLIC = /^U[A-Z2-7]{55}$/;

/** A fresh user NKey: the public key for the server, the seed (`SU…`, secret) for the tenant. */
export function newTenantNkey(): { nkey: string; seed: string } {
  const kp = nkeys.createUser();
  return { nkey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
}

/** The public key of a user NKey seed (what a tenant holding the seed may check against the config). */
export function nkeyOfSeed(seed: string): string {
  return nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
}

/** One tenant user's entry in nats-server's `authorization { users = [...] }` (what an operator of an external NATS adds). */
export function tenantUserEntry(u: TenantUser, prefix = 'shoal'): string {
  requireTenant(u.tenant);
  if (!NKEY_PUBLIC.test(u.nkey)) throw new Error(`tenant ${u.tenant}: nkey must be a user NKey's public key (U and 55 base32 characters)`);
  const perms = permissionsFor(TENANT_ROLE, { prefix, tenant: u.tenant });
  return `{ nkey: ${q(u.nkey)}, permissions: { publish: { allow: ${list(perms.publish)} }, subscribe: { allow: ${list(perms.subscribe)} }, allow_responses: true } }`;
}

/** The inbox prefix a tenant's client must set (nats.js `inboxPrefix`, Go `nats.CustomInboxPrefix`, Python `inbox_prefix`). */
export const tenantInboxPrefix = (tenant: string) => inboxOf(TENANT_ROLE, tenant);

/** A tenant user's name in the permission table and log lines (the server knows it by its public key). */
export const tenantUserName = (tenant: string) => userOf(TENANT_ROLE, tenant);

export interface ServerConfigOptions {
  host: string;
  port: number;
  storeDir: string;
  credentials: Credentials;
  /** Nodes that get a user (more can be added later: `NatsServerHandle.addNodes`). */
  nodeIds?: readonly string[];
  /** Tenants' own NATS users (config `nats.tenantUsers`; more later: `NatsServerHandle.addTenants`). */
  tenantUsers?: readonly TenantUser[];
  prefix?: string;
  /** Monitoring port (0 = off). */
  httpPort?: number;
  serverName?: string;
  /** Routes to the other servers of a cluster (`nats-cluster.ts`); absent: a lone server. */
  cluster?: ClusterRoutes;
}

/** A server's part in a cluster: its route listener, the route credential and every route URL (its own included; the server skips itself). */
export interface ClusterRoutes {
  name: string;
  host: string;
  port: number;
  credential: Credential;
  routes: readonly string[];
}

/** nats-server config text (the server's own format: JSON-like with `=`). */
export function serverConfig(opts: ServerConfigOptions): string {
  const users = [
    ...SERVICE_ROLES.map((role) => userEntry(opts.credentials[role], rolePermissions(role, opts.prefix))),
    ...[...new Set(opts.nodeIds ?? [])].map((id) => nodeUserEntry(opts.credentials.nodeSecret, id, opts.prefix)),
    ...(opts.tenantUsers ?? []).map((u) => tenantUserEntry(u, opts.prefix)),
  ]
    .map((u) => `    ${u}`)
    .join('\n');
  return [
    `server_name: ${q(opts.serverName ?? 'shoal-embedded')}`,
    `host: ${q(opts.host)}`,
    `port: ${opts.port}`,
    opts.httpPort ? `http_port: ${opts.httpPort}` : '',
    `jetstream { store_dir: ${q(opts.storeDir)} }`,
    opts.cluster ? clusterBlock(opts.cluster) : '',
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

/** The `cluster { ... }` block: routes authenticate with their own user, never a client's. */
function clusterBlock(c: ClusterRoutes): string {
  const routeUrl = (r: string) => r.replace(/^nats-route:\/\//, `nats-route://${encodeURIComponent(c.credential.user)}:${encodeURIComponent(c.credential.pass)}@`);
  return [
    `cluster {`,
    `  name: ${q(c.name)}`,
    `  host: ${q(c.host)}`,
    `  port: ${c.port}`,
    `  authorization { user: ${q(c.credential.user)}, password: ${q(c.credential.pass)}, timeout: 2 }`,
    `  routes = ${list(c.routes.map(routeUrl))}`,
    `}`,
  ].join('\n');
}
