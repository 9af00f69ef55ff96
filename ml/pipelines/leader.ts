/**
 * The runner as the scheduler leader starts it (ml/control.ts): the real stages, the labeled rows
 * counted in the labeled stream (labels.ts, for `triggers.newLabels`), and the monitor's alerts
 * (`<prefix>.events.alert`) turned into triggers for every pipeline of the alerting model that
 * asked for that kind of alert.
 */
import { systemClock, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import type { ModelDeployments } from '../serving/deployments.ts';
import { labeledRowsSince } from './labels.ts';
import { PipelineRunner } from './runner.ts';
import { realStages } from './stages.ts';
import { PipelineStore } from './store.ts';

const DRIFT_RULES = new Set(['feature-drift', 'dataset-drift', 'prediction-drift']);
const QUALITY_RULES = new Set(['quality-drop', 'estimated-quality-drop', 'confidence-drop']);

/** Which `onAlert` kind a monitor alert rule is (undefined: none). */
export const alertKind = (rule: string): 'drift' | 'quality' | undefined => (DRIFT_RULES.has(rule) ? 'drift' : QUALITY_RULES.has(rule) ? 'quality' : undefined);

export async function startPipelineRunner(o: { nc: NatsConnection; subjects: Subjects; deployments: ModelDeployments; log: Logger; instance: string }): Promise<{ runner: PipelineRunner; stop(): void }> {
  const store = await PipelineStore.open(o.nc, o.subjects.prefix);
  const runner = new PipelineRunner({ store, stages: realStages({ ...o, clock: systemClock }), log: o.log, instance: o.instance, labelsSince: labeledRowsSince(o.nc, o.subjects.prefix) });
  const sub = o.nc.subscribe(o.subjects.event('alert'), {
    callback: (err, m) => {
      if (err) return;
      void (async () => {
        const alert = JSON.parse(new TextDecoder().decode(m.data)) as { id?: string; model?: string; rule?: string; message?: string };
        const kind = alert.rule ? alertKind(alert.rule) : undefined;
        if (!kind || !alert.model) return;
        for (const name of await store.specNames()) {
          const spec = await store.getSpec(name);
          if (spec?.spec.model === alert.model && spec.spec.triggers.onAlert?.includes(kind)) await runner.fire(name, { kind: 'alert', detail: `${alert.rule}: ${alert.message ?? alert.id ?? ''}`.slice(0, 500) });
        }
      })().catch((e: unknown) => o.log.warn({ err: e }, 'pipeline alert trigger failed'));
    },
  });
  await runner.start();
  return {
    runner,
    stop() {
      sub.unsubscribe();
      runner.stop();
    },
  };
}
