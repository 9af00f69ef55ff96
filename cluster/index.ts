// Public entry of the runtime layer. Other folders import from here only.
export * from './errors.ts';
export { ContentType, decode, encode, parseContentType } from './codec.ts';
export { subjects, resources, Headers, SCHEDULER_OPS, REGISTRY_OPS, TENANT_JOB_OPS, type TenantJobOp, type Subjects, type Resources, type SchedulerOp, type RegistryOp } from './subjects.ts';
export * from './wire.ts';
export * from './job-wire.ts';
export { loadConfig, checkClusterSize, parseFlags, CONFIG_FLAGS, envName, ConfigSchema, NodeProfile, DEFAULT_PROFILES, TenantQuota, type Config, type LoadConfigOptions } from './config.ts';
export { CostConfig, CostBudget } from './cost-config.ts';
export { createLogger, componentLogger, type Logger, type LoggerOptions } from './logger.ts';
export {
  generateCredentials,
  nodeCredential,
  credentialOf,
  rolePermissions,
  serverConfig,
  userEntry,
  nodeUserEntry,
  tenantUserEntry,
  tenantInboxPrefix,
  tenantUserName,
  newTenantNkey,
  nkeyOfSeed,
  NKEY_PUBLIC,
  inboxPrefix,
  SERVICE_ROLES,
  type Credential,
  type Credentials,
  type ServiceRole,
  type TenantUser,
} from './auth.ts';
export {
  ROLE_TABLE,
  TENANT_ROLE,
  GRANT_ROLES,
  requireTenant,
  SCHEDULER_ONLY,
  KvOp,
  StoreOp,
  StreamOp,
  opsOf,
  permissionsFor,
  resourceList,
  streamSubjects,
  userOf,
  inboxOf,
  type RoleGrant,
  type GrantRole,
  type ResourceRef,
  type ResourceKind,
  type Permissions,
  type BucketKey,
  type StoreKey,
  type StreamKey,
} from './roles.ts';
export { defineControlModule, loadControlModules, moduleUrl, type ControlContext, type ControlHandle, type ControlModule } from './control.ts';
export { startNatsServer, findNatsServer, ensureWritableDir, type NatsServerHandle, type NatsServerOptions } from './nats-server.ts';
export { RAFT_ELECTION_MAX_MS, startNatsCluster, freePort, type NatsClusterHandle, type NatsClusterOptions } from './nats-cluster.ts';
export {
  connectAs,
  connectTenant,
  connectError,
  natsCredential,
  credentialsPath,
  clusterInfoPath,
  readCredentials,
  readClusterInfo,
  type ClusterInfo,
  type ConnectOptions,
  type NatsConnection,
  probeNatsServers,
  dialTimeoutMs,
  reachableServers,
  type ServerProbe,
} from './connection.ts';
export { serve, request, requestAll, publishIdempotent, validate, errorHeaders, throwIfError, mapRequestError, type Handler, type ServeOptions, type RequestOptions } from './rpc.ts';
export { Mailbox } from './mailbox.ts';
export { Actor, ActorTypeRegistry, defineActorType, type ActorContext, type ActorSystemLike, type ActorType, type ChildFailure, type Checkpoints } from './actor.ts';
export { ActorClient, ActorRef, decodeReply, type AskOptions } from './actor-ref.ts';
export { Directory, type Versioned } from './directory.ts';
export { isCasConflict, isStreamNotFound, isJetStreamUnavailable } from './nats-errors.ts';
export { JobStore, StaleCoordinator, fencedBy, whileActive, type JobPatch, type JobUpdate, type JobUpdateOptions } from './job-store.ts';
export { announce, clusterStatus, discover, type PresenceSource, type StatusReport } from './presence.ts';
export { NodeHeartbeat, RECORD_EVERY_BEATS } from './heartbeat.ts';
export { ensureMonitoringResources, ensureResources, kvKeys, openBucket, replicasFor, retrySettling, type MonitoringLimits } from './resources.ts';
export { PayloadHost, PayloadRef, fetchPayload, inlineLimitOf, maxPayloadOf, MAX_PAYLOAD_REF_BYTES, type HeldPayload, type HoldOptions, type FetchOptions } from './payloads.ts';
export { runProcess, fail, type ProcessContext, type ProcessSpec, type Started } from './process.ts';
export { spawnChild, type Child, type ChildSpec } from './spawn.ts';
export { SHOAL_VERSION } from './version.ts';
export { seededRandom } from './random.ts';
export { VirtualClock, systemClock, monotonicClock, every, type Clock } from './clock.ts';
export {
  HotMetric,
  HotHistogram,
  HotCounter,
  HotGauge,
  HistogramChild,
  CounterChild,
  GaugeChild,
  processRegistry,
  metricOf,
  scrapeGauge,
  scrapeCounter,
  serveMetrics,
  promClient,
  type Registry,
  type MetricsServer,
} from './metrics.ts';
export {
  tracing,
  startTracing,
  startSpan,
  withSpan,
  endSpan,
  inSpan,
  activeTrace,
  injectTrace,
  extractTrace,
  extractHttpTrace,
  linkTo,
  spanRecord,
  SpanKind,
  SpanStatusCode,
  otelContext,
  otelTrace,
  ROOT_CONTEXT,
  type TracingOptions,
  type TraceContext,
  type Span,
  type SpanLink,
  type SpanAttributes,
  type SpanRecord,
} from './tracing.ts';
export { hashApiKey, resolveApiKeys, checkGatewayKeys, KeyRole, KEY_HASH_PATTERN, type ApiKeyConfig, type ResolvedApiKey } from './api-keys.ts';
export { WindowCounter, type WindowCount, type WindowCounterOptions } from './window-counter.ts';
