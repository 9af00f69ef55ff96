/** Loading control modules by config (`scheduler.modules`): what loads, and how a bad module is named. */
import { describe, expect, it } from 'vitest';
import { Errors, loadConfig, loadControlModules } from '../../cluster/index.ts';

describe('control modules', () => {
  it('the defaults are the registry, features, privacy and feedback services, the feature compactor, the label join, the rollout and scale-to-zero controllers, the pipelines service and runner, shipped with Shoal', async () => {
    const config = loadConfig({ argv: [], env: {} });
    expect(config.scheduler.modules).toEqual(['shoal:ml/control.ts']);
    const mods = await loadControlModules(config.scheduler.modules);
    expect(mods.map((m) => [m.name, m.leaderOnly ?? false])).toEqual([
      ['registry', false],
      ['features', false],
      ['privacy', false],
      ['features-compactor', true],
      ['feedback', false],
      ['feedback-join', true],
      ['rollout', true],
      ['scale-to-zero', true],
      ['pipelines', false],
      ['pipeline-runner', true],
    ]);
  });

  it('loads modules by path, in order, and refuses bad ones naming the module', async () => {
    const mods = await loadControlModules(['test/fixtures/control.ts']);
    expect(mods.map((m) => [m.name, m.leaderOnly ?? false])).toEqual([
      ['every', false],
      ['leader', true],
    ]);
    const missing = await loadControlModules(['test/fixtures/nope.ts']).catch((e: unknown) => e);
    expect(Errors.BAD_CONFIG.is(missing)).toBe(true);
    expect((missing as Error).message).toMatch(/scheduler\.modules: cannot load test\/fixtures\/nope\.ts/);
    const none = await loadControlModules(['test/fixtures/tasks.ts']).catch((e: unknown) => e);
    expect((none as Error).message).toMatch(/does not export a `controlModules` array/);
    const twice = await loadControlModules(['test/fixtures/control.ts', 'test/fixtures/control.ts']).catch((e: unknown) => e);
    expect((twice as Error).message).toMatch(/"every" is defined twice/);
  });
});
