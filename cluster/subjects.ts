/**
 * Every NATS subject, stream, bucket and header name Shoal uses is built here and nowhere else.
 * The prefix is configurable (`subjectPrefix`, default `shoal`) so several clusters can share
 * one NATS account.
 */

const TOKEN = /^[A-Za-z0-9_-]+$/;

function token(kind: string, value: string): string {
  if (!TOKEN.test(value)) throw new Error(`invalid ${kind} "${value}": use letters, digits, '_' and '-' only`);
  return value;
}

export function subjects(prefix = 'shoal') {
  const p = token('subject prefix', prefix);
  return {
    prefix: p,
    /** Everything under the prefix (for permissions). */
    all: `${p}.>`,
    /** Node control, request/reply: spawn, stop, drain, describe. */
    nodeCtl: (nodeId: string) => `${p}.node.${token('node id', nodeId)}.ctl`,
    nodeAll: `${p}.node.>`,
    /** An actor's mailbox. */
    actor: (actorId: string) => `${p}.actor.${token('actor id', actorId)}`,
    /** An actor's system messages from the runtime (supervision), beside its mailbox. */
    actorSys: (actorId: string) => `${p}.actor.${token('actor id', actorId)}.sys`,
    actorAll: `${p}.actor.>`,
    /** A replicated service (queue group). */
    service: (name: string) => `${p}.svc.${token('service name', name)}`,
    serviceAll: `${p}.svc.>`,
    /** Job submission (JetStream work-queue stream). */
    jobsSubmit: `${p}.jobs.submit`,
    jobsAll: `${p}.jobs.>`,
    /** Events stream. */
    event: (kind: string) => `${p}.events.${token('event kind', kind)}`,
    eventsAll: `${p}.events.>`,
    /** Presence: every process answers a ping with its ProcessInfo (request-many). */
    sysPing: `${p}.sys.ping`,
    sysAll: `${p}.sys.>`,
    /** The active scheduler's own API (status, placement requests). */
    scheduler: (op: string) => `${p}.sched.${token('scheduler op', op)}`,
    schedulerAll: `${p}.sched.>`,
    /** Gateways' outcome tallies per model version (every gateway judges canaries on all of them). */
    gatewayOutcomes: `${p}.gw.outcomes`,
    gatewayAll: `${p}.gw.>`,
  };
}
export type Subjects = ReturnType<typeof subjects>;

/** JetStream resource names derived from the prefix (stream and bucket names cannot contain dots). */
export function resources(prefix = 'shoal') {
  const p = token('subject prefix', prefix);
  const up = p.toUpperCase().replace(/-/g, '_');
  return {
    jobsStream: `${up}_JOBS`,
    eventsStream: `${up}_EVENTS`,
    buckets: {
      nodes: `${p}-nodes`,
      actors: `${p}-actors`,
      models: `${p}-models`,
      jobs: `${p}-jobs`,
      features: `${p}-features`,
      leases: `${p}-leases`,
      /** Small actor-state checkpoints (key = actor id); large ones go to the artifacts store. */
      checkpoints: `${p}-checkpoints`,
      /** Dataset metadata (the data itself is in the artifacts store under its sha256). */
      datasets: `${p}-datasets`,
    },
    artifacts: `${p}-artifacts`,
  };
}
export type Resources = ReturnType<typeof resources>;

/** Header names. */
export const Headers = {
  CONTENT_TYPE: 'content-type',
  ERROR_CODE: 'Shoal-Error-Code',
  ERROR_MESSAGE: 'Shoal-Error-Message',
} as const;
