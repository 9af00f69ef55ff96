/**
 * The job watchdog's verdicts, on fixed times (no clock): a job is stalled after 20× its own
 * update interval and never sooner than the floor; a stalled job's coordinator is restarted up
 * to the budget, then the job fails with the reason; a failed coordinator fails the job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, JobState, LifecycleState, type DirectoryEntry, type JobRecord } from '../../cluster/index.ts';
import { DEFAULT_STALL_POLICY, judge, stallBoundMs } from '../../scheduler/job-watchdog.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const policy = { ...DEFAULT_STALL_POLICY, floorMs: 10_000, factor: 20, maxRestarts: 2 };
const rec = (o: Partial<JobRecord> = {}): JobRecord => ({ id: 'j', state: JobState.RUNNING, actorType: 'training-job', spec: {}, submittedAt: 0, updatedAt: 0, ...o });
const coord = (state: DirectoryEntry['state'], reason?: string): DirectoryEntry => ({ actorId: 'job-j', spec: { type: 'training-job' }, state, nodeId: 'n1', epoch: 1, updatedAt: 0, ...(reason ? { reason } : {}) });

describe('job watchdog verdicts', () => {
  it('derives the stall bound from the job\'s pace, with a floor', () => {
    expect(stallBoundMs(rec(), policy)).toBe(10_000); // no pace reported yet
    expect(stallBoundMs(rec({ progress: { stepMs: 5, every: 10 } }), policy)).toBe(10_000); // 20 × 50 ms < floor
    expect(stallBoundMs(rec({ progress: { stepMs: 2000, every: 10 } }), policy)).toBe(400_000); // slow steps: 20 × 20 s
  });

  it('leaves a job alone while it moves, restarts it once silent past the bound, then gives up', () => {
    const job = { record: rec({ progress: { stepMs: 5, every: 10 } }), seenAt: 1_000 };
    expect(judge(job, coord(LifecycleState.RUNNING), 1_000 + 9_999, policy)).toBeUndefined();
    expect(judge(job, coord(LifecycleState.RUNNING), 1_000 + 10_001, policy)).toMatchObject({ action: 'restart', reason: expect.stringMatching(/no progress for 10 s .*restarted \(1 of 2\)/) });
    const again = { record: rec({ restarts: 2 }), seenAt: 0 };
    expect(judge(again, coord(LifecycleState.RUNNING), 20_000, policy)).toMatchObject({ action: 'fail', reason: expect.stringMatching(/gave up after 2 restarts/) });
  });

  it('fails the job when its coordinator failed, restarts it when the coordinator is gone, waits while it is pending', () => {
    const job = { record: rec(), seenAt: 0 };
    expect(judge(job, coord(LifecycleState.FAILED, 'SHOAL_ERR_ACTOR_FAILED: boom'), 1, policy)).toEqual({ action: 'fail', reason: 'its coordinator failed: SHOAL_ERR_ACTOR_FAILED: boom' });
    expect(judge(job, undefined, 4_000, policy)).toBeUndefined(); // just being restarted, perhaps
    expect(judge(job, undefined, 6_000, policy)).toMatchObject({ action: 'restart', reason: expect.stringMatching(/coordinator is gone/) });
    expect(judge(job, coord(LifecycleState.PENDING), 1_000_000, policy)).toBeUndefined();
  });

  it('ignores queued and finished jobs', () => {
    for (const state of [JobState.QUEUED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]) expect(judge({ record: rec({ state }), seenAt: 0 }, undefined, 1e9, policy)).toBeUndefined();
  });
});

describe('job watchdog (real processes)', () => {
  let c: TestCluster;
  const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--scheduler.jobStallMs', '1500', '--scheduler.jobMaxRestarts', '2', '--actors.modules', '["test/fixtures/actors.ts"]'];

  beforeAll(async () => void (c = await startCluster({ args: ARGS, nodes: ['w1'] })), 60_000);
  afterAll(async () => c?.stop());

  it('a job that stops making progress is restarted, then failed with the reason — never running forever', async () => {
    const jobs = await c.jobs();
    const { id } = await jobs.submit({}, { id: 'stuck-1', actorType: 'stuck-job', unchecked: true });
    const seen = new Set<number>();
    const last = await jobs.follow(id, (r) => void seen.add(r.restarts ?? 0), 60_000);
    expect(last.state).toBe('failed');
    expect(last.reason).toMatch(/no progress for \d+ s .*gave up after 2 restarts of its coordinator/);
    expect(last.restarts).toBe(2);
    expect([...seen].sort()).toEqual([0, 1, 2]);
    // Its coordinator went with it.
    await until(() => c.actors.ref(`job-${id}`).ask({ type: 'status' }, { timeoutMs: 500 }).then(() => undefined, (e: unknown) => (Errors.ACTOR_NOT_FOUND.is(e) ? true : undefined)), 10_000, 'the stuck coordinator stopped');
  });
});
