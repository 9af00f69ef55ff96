/**
 * Starts a real `nats-server` (JetStream on, authorization on) as a child process: used by
 * `shoal up` and by the test harness. Waits until the server says it is ready and reports the
 * port it actually bound; turns its failures into typed errors with its own words.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Errors } from './errors.ts';
import { serverConfig, tenantUserEntry, type ClusterRoutes, type Credentials, type TenantUser } from './auth.ts';

export interface NatsServerOptions {
  /** Directory for the config file, the JetStream store and the log. Must be writable. */
  dir: string;
  host?: string;
  /** 0 = a free port chosen by the server. */
  port?: number;
  credentials: Credentials;
  /** Nodes that get a user from the start (`addNodes` adds more). */
  nodeIds?: readonly string[];
  /** Tenants' own NATS users from the start (`addTenants` adds more). */
  tenantUsers?: readonly TenantUser[];
  prefix?: string;
  /** Binary path (config `nats.serverBin`, env `SHOAL_NATS_SERVER`); default: PATH, /usr/sbin, /usr/local/bin. */
  bin?: string;
  /** Unique within a cluster (JetStream's RAFT groups know servers by name). @default shoal-embedded */
  serverName?: string;
  /** Routes to the other servers of a cluster (see `startNatsCluster`). */
  cluster?: ClusterRoutes;
  /** Monitoring port (`/healthz`, `/jsz`) on `host`; 0 or absent: off. */
  httpPort?: number;
  /** How long to wait for "Server is ready". @default 15000 */
  readyTimeoutMs?: number;
  /**
   * Start the server in its own process group. A terminal's Ctrl-C signals the whole foreground
   * group: a server in it would exit at once, before the processes that still need it to drain
   * and hand off. `shoal up` sets this and stops the server itself, last. @default false
   */
  ownGroup?: boolean;
}

export interface NatsServerHandle {
  url: string;
  port: number;
  pid: number;
  process: ChildProcess;
  /**
   * Gives these nodes a user (per-node credentials): rewrites the config and reloads the server
   * (SIGHUP); resolves once the server says it reloaded. Nodes that already have one are skipped.
   */
  addNodes(nodeIds: readonly string[]): Promise<void>;
  /** Gives these tenants' NKeys a user (README "Tenants over NATS"): rewrites the config and reloads; keys already there are skipped. */
  addTenants(users: readonly TenantUser[]): Promise<void>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves when the process has exited. */
  stop(timeoutMs?: number): Promise<void>;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findNatsServer(explicit?: string): string {
  const tried: string[] = [];
  const candidates = explicit ? [explicit] : [
    // The operating system's search path, as a shell would use it (not a Shoal setting).
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'nats-server')),
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  for (const c of candidates) {
    tried.push(c);
    if (isExecutable(c)) return c;
  }
  throw Errors.NATS_SERVER_NOT_FOUND(explicit ? explicit : 'PATH, /usr/sbin, /usr/local/bin');
}

/** Creates `dir` and proves it is writable, or throws STORE_NOT_WRITABLE. */
export function ensureWritableDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, 'ok');
    accessSync(probe, constants.W_OK);
  } catch (err) {
    throw Errors.STORE_NOT_WRITABLE(dir, (err as NodeJS.ErrnoException).code ?? (err as Error).message);
  }
}

export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const bin = findNatsServer(opts.bin);
  ensureWritableDir(opts.dir);
  const storeDir = join(opts.dir, 'jetstream');
  ensureWritableDir(storeDir);
  const confPath = join(opts.dir, 'nats-server.conf');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  const nodeIds = new Set(opts.nodeIds ?? []);
  const tenantUsers = new Map((opts.tenantUsers ?? []).map((u) => [u.nkey, u]));
  const writeConfig = () =>
    writeFileSync(
      confPath,
      serverConfig({ host, port: port === 0 ? -1 : port, storeDir, credentials: opts.credentials, nodeIds: [...nodeIds], tenantUsers: [...tenantUsers.values()], ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(opts.serverName ? { serverName: opts.serverName } : {}), ...(opts.cluster ? { cluster: opts.cluster } : {}), ...(opts.httpPort ? { httpPort: opts.httpPort } : {}) }),
      { mode: 0o600 },
    );
  writeConfig();

  const child = spawn(bin, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'], detached: opts.ownGroup === true });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const boundPort = await untilReady(child, { bin, port, storeDir, timeoutMs: opts.readyTimeoutMs ?? 15000 });
  const reloader = new Reloader(child);
  return {
    url: `nats://${host}:${boundPort}`,
    port: boundPort,
    pid: child.pid!,
    process: child,
    addNodes(ids) {
      if (ids.every((id) => nodeIds.has(id))) return Promise.resolve();
      return reloader.reload(() => {
        const fresh = ids.filter((id) => !nodeIds.has(id));
        for (const id of fresh) nodeIds.add(id);
        if (fresh.length > 0) writeConfig();
        return fresh.length > 0;
      });
    },
    addTenants(users) {
      const fresh = users.filter((u) => !tenantUsers.has(u.nkey));
      if (fresh.length === 0) return Promise.resolve();
      for (const u of fresh) tenantUserEntry(u, opts.prefix); // a bad name or key throws here, before the config changes
      return reloader.reload(() => {
        for (const u of fresh) tenantUsers.set(u.nkey, u);
        writeConfig();
        return true;
      });
    },
    async stop(timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Resolves with the port the server bound once it says it is ready; its failures become typed errors with its own words. */
function untilReady(child: ChildProcess, o: { bin: string; port: number; storeDir: string; timeoutMs: number }): Promise<number> {
  let log = '';
  return new Promise<number>((resolve, reject) => {
    let bound: number | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(Errors.NATS_SERVER_FAILED(`not ready after ${o.timeoutMs} ms; last output: ${log.slice(-500)}`));
    }, o.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(Errors.NATS_SERVER_FAILED(`${o.bin}: ${err.message}`));
    });
    const onEarlyExit = (code: number | null, sig: NodeJS.Signals | null) => {
      clearTimeout(timer);
      if (/address already in use/.test(log)) reject(Errors.PORT_IN_USE('NATS', o.port));
      else if (/permission denied|read-only file system/i.test(log)) reject(Errors.STORE_NOT_WRITABLE(o.storeDir, lastError(log)));
      else reject(Errors.NATS_SERVER_FAILED(`exited with ${sig ?? code}: ${lastError(log)}`));
    };
    child.once('exit', onEarlyExit);
    child.stderr!.setEncoding('utf8');
    const onData = (chunk: string) => {
      log += chunk;
      if (log.length > 64_000) log = log.slice(-32_000);
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) bound = Number(m[1]);
      if (bound !== undefined && /Server is ready/.test(log)) {
        clearTimeout(timer);
        child.removeListener('exit', onEarlyExit);
        child.stderr!.removeListener('data', onData);
        resolve(bound);
      }
    };
    child.stderr!.on('data', onData);
  });
}

/**
 * Config reloads (SIGHUP), one at a time, each waiting for the server's own "reloaded" line.
 * Also keeps draining stderr, so the server never blocks on a full pipe.
 */
class Reloader {
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #pending = '';
  #chain = Promise.resolve();

  constructor(private readonly child: ChildProcess) {
    child.stderr!.on('data', (chunk: string) => this.#onData(chunk));
    child.stderr!.resume();
  }

  #onData(chunk: string): void {
    this.#pending += chunk;
    const lines = this.#pending.split('\n');
    this.#pending = lines.pop() ?? '';
    for (const line of lines) {
      const failed = /Failed to reload server configuration|config reload failed/i.test(line);
      if (!failed && !/Reloaded server configuration/.test(line)) continue;
      const ws = this.#waiters;
      this.#waiters = [];
      for (const w of ws) failed ? w.reject(Errors.NATS_SERVER_FAILED(`config reload: ${line.replace(/^\[\d+\]\s+\S+\s+\S+\s+/, '')}`)) : w.resolve();
    }
  }

  /** Runs `change` (true: the config file changed) and, if it changed, reloads the server. */
  reload(change: () => boolean): Promise<void> {
    const run = async () => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw Errors.NATS_SERVER_FAILED('config reload: the server has exited');
      if (!change()) return;
      const reloaded = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
      const timer = setTimeout(() => {
        for (const w of this.#waiters) w.reject(Errors.NATS_SERVER_FAILED('config reload: no answer from the server within 10 s'));
        this.#waiters = [];
      }, 10_000);
      this.child.kill('SIGHUP');
      try {
        await reloaded;
      } finally {
        clearTimeout(timer);
      }
    };
    const next = this.#chain.then(run);
    this.#chain = next.catch(() => undefined);
    return next;
  }
}

function lastError(log: string): string {
  const lines = log.trim().split('\n');
  const err = lines.filter((l) => /\[(ERR|FTL)\]|error/i.test(l)).pop() ?? lines.pop() ?? '';
  return err.replace(/^\[\d+\]\s+\S+\s+\S+\s+/, '').trim();
}
