/**
 * Gateway entry point: Fastify on `gateway.host:gateway.port` and, unless `gateway.grpc` is
 * false, the gRPC service on `gateway.grpcPort` — connected as the `gateway` role.
 */
import { hostname } from 'node:os';
import { Errors, LifecycleState, Role, announce, componentLogger, parseFlags, runProcess, type ProcessState } from '../cluster/index.ts';
import { buildGateway } from './app.ts';
import { startGrpcGateway, type GrpcGateway } from './grpc/server.ts';

const { flags } = parseFlags(process.argv.slice(2));
const gatewayId = flags.get('gateway-id') ?? `gateway-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;

await runProcess({
  role: Role.GATEWAY,
  id: gatewayId,
  extraFlags: ['gateway-id'],
  async start(ctx) {
    let state: ProcessState = LifecycleState.STARTING;
    const g = ctx.config.gateway;
    const app = await buildGateway({
      nc: ctx.nc,
      subjects: ctx.subjects,
      logger: componentLogger(ctx.log, 'gateway'),
      apiKeys: g.apiKeys,
      open: g.open,
      tenants: ctx.config.tenants,
      rateLimitPerMinute: g.rateLimitPerMinute,
      bodyLimit: g.bodyLimitBytes,
      requestTimeoutMs: g.requestTimeoutMs,
      ...(g.receiveTimeoutMs !== undefined ? { receiveTimeoutMs: g.receiveTimeoutMs } : {}),
      requestLog: g.requestLog,
      coalesce: { inflightPerReplica: g.inflightPerReplica, maxHoldMs: g.maxHoldMs, hedgeAfterMs: g.hedgeAfterMs },
    });
    if (g.apiKeys.length === 0) ctx.log.warn('gateway.open is set and gateway.apiKeys is empty: every route (and the dashboard at /ui) is open to anyone who can reach the port');
    else if (!g.apiKeys.some((k) => k.admin || k.role === 'admin')) ctx.log.info('no key in gateway.apiKeys has role admin: the dashboard at /ui and the admin routes will refuse every key');
    const { host, port } = ctx.config.gateway;
    try {
      await app.listen({ host, port });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw Errors.PORT_IN_USE('gateway HTTP', port);
      throw err;
    }
    const addr = app.server.address();
    const url = typeof addr === 'object' && addr ? `http://${host}:${addr.port}` : `http://${host}:${port}`;
    let grpc: GrpcGateway | undefined;
    if (g.grpc) {
      try {
        grpc = await startGrpcGateway(app.shoal, { host, port: g.grpcPort });
      } catch (err) {
        await app.close();
        // grpc-js words a taken port as "No address added out of total 1 resolved … EADDRINUSE".
        if (/EADDRINUSE/.test((err as Error).message)) throw Errors.PORT_IN_USE('gateway gRPC', g.grpcPort);
        throw err;
      }
    }
    const info = { url, ...(grpc ? { grpc: grpc.address } : {}) };
    announce(ctx.nc, ctx.subjects, { role: Role.GATEWAY, id: gatewayId, state: () => state, details: () => info }, ctx.log);
    state = LifecycleState.RUNNING;
    return {
      info,
      stop: async () => {
        state = LifecycleState.STOPPED;
        await grpc?.stop();
        await app.close();
      },
    };
  },
});
