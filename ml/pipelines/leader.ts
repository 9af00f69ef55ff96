/**
 * The runner as the scheduler leader starts it (ml/control.ts): the real stages, the labeled rows
 * counted in the labeled stream (labels.ts, for `triggers.newLabels`), and the monitor's alerts
 * (`<prefix>.events.alert`) turned into triggers for every pipeline of the alerting model that
 * asked for that kind of alert — alerts on the version the deployment serves as stable only.
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

/**
 * Whether an alert on `version` should trigger the model's pipelines, given the version the
 * deployment serves as stable (undefined: not deployed, or unknown). Only the stable version's
 * alerts do: a canary's are about the candidate being rolled out, and a window of the old stable
 * closing after a promotion (its windows close `latenessMs` after their end) would otherwise start
 * a retrain of the model that has just replaced it.
 */
export const alertTriggers = (version: number | undefined, stable: number | undefined): boolean => version === undefined || stable === undefined || version === stable;

export async function startPipelineRunner(o: { nc: NatsConnection; subjects: Subjects; deployments: ModelDeployments; log: Logger; instance: string }): Promise<{ runner: PipelineRunner; stop(): void }> {
  const store = await PipelineStore.open(o.nc, o.subjects.prefix);
  const runner = new PipelineRunner({ store, stages: realStages({ ...o, clock: systemClock }), log: o.log, instance: o.instance, labelsSince: labeledRowsSince(o.nc, o.subjects.prefix) });
  const sub = o.nc.subscribe(o.subjects.event('alert'), {
    callback: (err, m) => {
      if (err) return;
      void (async () => {
        const alert = JSON.parse(new TextDecoder().decode(m.data)) as { id?: string; model?: string; version?: number; rule?: string; message?: string };
        const kind = alert.rule ? alertKind(alert.rule) : undefined;
        if (!kind || !alert.model) return;
        const stable = (await o.deployments.get(alert.model).catch(() => undefined))?.stable.version;
        if (!alertTriggers(alert.version, stable)) {
          o.log.debug({ model: alert.model, version: alert.version, stable, rule: alert.rule }, 'alert on a version that is not the stable one: no pipeline trigger');
          return;
        }
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
