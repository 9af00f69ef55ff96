/**
 * The pipelines service on a real nats-server, called with the client role's credentials (as the
 * CLI is): apply refusals name the field, an unknown pipeline cannot be run, and runs are readable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, ensureResources, subjects, type NatsConnection } from '../../cluster/index.ts';
import { DatasetStore, generateFraud } from '../../ml/index.ts';
import { PipelineClient, startPipelineService } from '../../ml/pipelines/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

describe('pipelines service', () => {
  let nats: TestNats;
  let client: PipelineClient;
  let stop: () => void = () => undefined;
  const s = subjects('shoal');

  beforeAll(async () => {
    nats = await startTestNats();
    const sched: NatsConnection = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    await (await DatasetStore.open(sched)).put('fraud', generateFraud({ rows: 200, seed: 1 }));
    stop = (await startPipelineService({ nc: sched, subjects: s, log: createLogger({ level: 'silent' }) })).stop;
    client = new PipelineClient(await nats.connect(Role.CLIENT), s);
  });
  afterAll(async () => {
    stop();
    await nats?.stop();
  });

  it('refuses an unknown model naming `model`, before anything is stored', async () => {
    await expect(client.apply({ name: 'p', model: 'nope', triggers: { interval: '1h' }, data: { dataset: 'fraud' } })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringMatching(/pipeline model: model "nope" is not registered/) });
    await expect(client.apply({ name: 'p', model: 'nope', triggers: { interval: 'soon' }, data: { dataset: 'fraud' } })).rejects.toMatchObject({ message: expect.stringMatching(/pipeline triggers\.interval/) });
    expect(await client.runs('p')).toBeUndefined();
  });

  it('a manual run of a pipeline that does not exist is refused naming it', async () => {
    await expect(client.run('ghost')).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringMatching(/no pipeline named "ghost"/) });
  });
});
