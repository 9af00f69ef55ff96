/**
 * `shoal drain <nodeId>` and `shoal preempt <nodeId>`: node operations through the leader
 * scheduler (`shoal.sched.nodes`). A preemption is how a spot interruption notice arrives:
 * drain within the notice, checkpoint, re-place; the node's pool is marked risky for a while.
 */
import { Errors, parseFlags, request, subjects, type Config, type SchedulerNodeRequest } from '../cluster/index.ts';
import { connectClient } from './status.ts';

export const NODES_FLAGS = ['deadline', 'notice', 'json'] as const;

export async function nodeOpCommand(op: 'drain' | 'preempt', argv: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(argv);
  const nodeId = positionals[0];
  if (!nodeId) throw Errors.USAGE(`usage: shoal ${op} <nodeId> [${op === 'drain' ? '--deadline MS' : '--notice MS'}]`);
  const ms = flags.get(op === 'drain' ? 'deadline' : 'notice');
  if (ms !== undefined && !/^\d+$/.test(ms)) throw Errors.USAGE(`--${op === 'drain' ? 'deadline' : 'notice'} takes milliseconds, got "${ms}"`);
  const req: SchedulerNodeRequest =
    op === 'drain' ? { type: 'drain', nodeId, ...(ms ? { deadlineMs: Number(ms) } : {}) } : { type: 'preempt', nodeId, ...(ms ? { noticeMs: Number(ms) } : {}) };
  const nc = await connectClient(config);
  try {
    const answer = await request(nc, subjects(config.subjectPrefix).scheduler('nodes'), req, { timeoutMs: 10_000 });
    if (flags.has('json')) process.stdout.write(`${JSON.stringify({ request: req, answer }, null, 2)}\n`);
    else process.stdout.write(`${nodeId}: ${op === 'drain' ? 'draining' : 'preemption notice sent; draining'} (its actors move to other nodes)\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
