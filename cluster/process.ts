/**
 * Bootstrap shared by the cluster's processes (scheduler, node agent, gateway): load config,
 * build the logger, connect as the role, and shut down cleanly on SIGINT/SIGTERM — or when the
 * `shoal up` supervisor that started us goes away (IPC disconnect), so nothing is orphaned.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { loadConfig, type Config } from './config.ts';
import { connectAs, natsCredential } from './connection.ts';
import { Errors, ShoalError, errorCode } from './errors.ts';
import { userOf } from './roles.ts';
import { createLogger, type Logger } from './logger.ts';
import type { LevelWithSilent } from 'pino';
import { subjects, type Subjects } from './subjects.ts';
import { Role } from './wire.ts';
import { processRegistry, serveMetrics, type MetricsServer, type Registry } from './metrics.ts';
import { startTracing } from './tracing.ts';

export interface ProcessContext {
  config: Config;
  log: Logger;
  nc: NatsConnection;
  subjects: Subjects;
  /**
   * This process's Prometheus registry (`shoal_<role>_*` process metrics already in it), served
   * on `metrics.port` by schedulers and node agents; the gateway serves its own on `/metrics`.
   */
  metrics: Registry;
}

export interface Started {
  stop: (reason: string) => Promise<void>;
  /** Facts for the supervisor's ready message (the gateway's URL…). */
  info?: Record<string, unknown>;
}

export interface ProcessSpec {
  role: Role;
  /** Process id within its role (node id, scheduler id…), or how to get it from the config. */
  id: string | ((config: Config) => string);
  extraFlags?: readonly string[];
  /** Starts the process's work; returns its stop function (called once on shutdown). */
  start(ctx: ProcessContext): Promise<Started>;
}

/** Prints a typed error as one line and exits non-zero (no stack trace as the only output). */
export function fail(err: unknown, log?: Logger): never {
  const code = errorCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  if (log) log.fatal({ code, err: err instanceof ShoalError ? undefined : err }, msg);
  else process.stderr.write(`shoal: ${msg}${code ? ` [${code}]` : ''}\n`);
  process.exit(err instanceof ShoalError && err.code === 'SHOAL_ERR_USAGE' ? 2 : 1);
}

export async function runProcess(spec: ProcessSpec): Promise<void> {
  let config: Config;
  try {
    config = loadConfig({ argv: process.argv.slice(2) }, spec.extraFlags ?? []);
  } catch (err) {
    fail(err);
  }
  const id = typeof spec.id === 'function' ? spec.id(config) : spec.id;
  const log = createLogger({ level: config.log.level as LevelWithSilent, ...(config.log.pretty !== undefined ? { pretty: config.log.pretty } : {}), bindings: { role: spec.role, id } });
  let nc: NatsConnection;
  try {
    // A node's id is its identity on NATS too: its own user, inbox and control subject.
    const nodeId = spec.role === Role.NODE ? id : undefined;
    const { servers, credential } = natsCredential(spec.role, config.nats, nodeId);
    // Its rights are its user's: a node started under another node's user could not even
    // receive its own commands. Say so at once.
    if (nodeId && credential.user !== userOf(Role.NODE, nodeId)) throw Errors.BAD_CONFIG('SHOAL_NATS_USER', `node ${nodeId} must connect as its own user ${userOf(Role.NODE, nodeId)}, not "${credential.user}"`);
    nc = await connectAs({ servers, role: spec.role, credential, name: `shoal-${spec.role}-${id}`, pingIntervalMs: config.nats.pingIntervalMs, ...(nodeId ? { nodeId } : {}) });
  } catch (err) {
    fail(err, log);
  }
  log.info({ server: nc.getServer() }, 'connected to NATS');
  // A lost server is news to whoever reads the log (a host that died, a partition): said once each way.
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === 'disconnect') log.warn({ server: st.server }, 'NATS connection lost; reconnecting to another server');
      else if (st.type === 'reconnect') log.info({ server: st.server }, 'reconnected to NATS');
    }
  })().catch(() => undefined);
  const tracer = await startTracing({
    service: `shoal-${spec.role}`,
    attributes: { 'shoal.role': spec.role, 'shoal.id': id },
    ...(config.tracing.endpoint ? { endpoint: config.tracing.endpoint } : {}),
    ...(config.tracing.file ? { file: config.tracing.file } : {}),
    sampleRatio: config.tracing.sampleRatio,
  });
  if (config.tracing.endpoint || config.tracing.file) log.info({ endpoint: config.tracing.endpoint, file: config.tracing.file, sampleRatio: config.tracing.sampleRatio }, 'tracing on');
  const metrics = processRegistry(spec.role);
  let metricsServer: MetricsServer | undefined;

  let stop: ((reason: string) => Promise<void>) | undefined;
  let stopping = false;
  const shutdown = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'shutting down');
    try {
      await stop?.(reason);
      await metricsServer?.close();
      await tracer.shutdown();
      await nc.drain();
    } catch (err) {
      log.warn({ err }, 'error during shutdown');
    }
    log.info('stopped');
    // Give pino a tick to flush.
    setImmediate(() => process.exit(0));
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  if (process.send) process.on('disconnect', () => void shutdown('supervisor gone'));
  void nc.closed().then((err) => {
    if (!stopping) {
      log.error({ err }, 'NATS connection closed');
      process.exit(1);
    }
  });

  let started: Started;
  try {
    started = await spec.start({ config, log, nc, subjects: subjects(config.subjectPrefix), metrics });
  } catch (err) {
    fail(err, log);
  }
  stop = started.stop;
  if (spec.role !== Role.GATEWAY && config.metrics.port > 0) {
    // Under a supervisor (`shoal up`), which records the address it reports, a taken port falls back to a free one.
    metricsServer = await serveMetrics({ registry: metrics, host: config.metrics.host, port: config.metrics.port, log, fallback: process.send !== undefined });
    if (metricsServer) log.info({ url: metricsServer.url }, 'serving Prometheus metrics');
  }
  // Tell the supervisor we are up (it waits for this before starting dependents).
  process.send?.({ type: 'ready', role: spec.role, id, info: { ...(started.info ?? {}), ...(metricsServer ? { metrics: metricsServer.url } : {}) } });
}
