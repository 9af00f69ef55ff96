/**
 * The stages of a run as the scheduler leader does them: the data pinned by digest in the dataset
 * store (with `data.labeled`, the dataset plus the model's labeled rows as a new version; with
 * `data.features`, a feature-view training set built point-in-time up to the trigger time and
 * handed to the job pinned, feature-data.ts), training through the job queue (`shoal submit`'s path, on spot by default), the gates scored here with ONNX
 * Runtime on one holdout for both versions, the shadow (shadow-stage.ts), rejection in the registry, and
 * the canary through the deployments the rollout controller watches (which may roll a step back on
 * errors or latency; the run then records the rollback), each step also judged on model quality
 * from both tracks' monitors (canary-quality.ts) and rolled back here when it fails.
 */
import * as ort from 'onnxruntime-node';
import { JobState, type Clock, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { split, take } from '../datasets/dataset.ts';
import { DatasetStore } from '../datasets/store.ts';
import { getPolicy } from '../governance/fairness/gate.ts';
import { sensitiveColumns, trainingFairnessAudit } from '../governance/fairness/index.ts';
import { ModelRegistry } from '../registry/registry.ts';
import type { ModelDeployments } from '../serving/deployments.ts';
import { JobClient } from '../training/jobs.ts';
import { MlErrors } from '../errors.ts';
import { modelMonitoring } from '../monitoring/monitor-client.ts';
import type { MonitorReport } from '../monitoring/monitor-actor.ts';
import { judgeCanaryQuality, type CanaryQuality, type CanaryQualityPolicy } from './canary-quality.ts';
import { featureJobDataset, snapshotFeatures } from './feature-data.ts';
import { judgeGates } from './gates.ts';
import { appendLabeled, readLabeled } from './labels.ts';
import type { PipelineStages } from './runner.ts';
import { QUALITY_DEFAULTS, nextScheduled } from './spec.ts';
import { shadowStage } from './shadow-stage.ts';
import { loggedRows, openSession, replayLatency, type LatencyReplay } from './latency-gate.ts';
import type { RunRecord } from './store.ts';

export interface StagesOptions {
  nc: NatsConnection;
  subjects: Subjects;
  deployments: ModelDeployments;
  log: Logger;
  clock: Clock;
  /** Longest a training job may take before the run fails. @default 3600000 */
  trainTimeoutMs?: number;
  /** How often a canary step waiting for enough rows reads the monitors again. @default 2000 */
  qualityPollMs?: number;
  /** Wall-clock time (the monitors' windows are in record time, epoch ms). @default Date.now */
  now?: () => number;
}

const SCORE_BATCH = 1024;

/** Probabilities of the positive class from a registered single-input FP32 model. */
async function score(registry: ModelRegistry, model: string, version: number, x: Float32Array, rows: number, cols: number): Promise<Float32Array> {
  const { version: mv, bytes } = await registry.loadArtifact(model, version);
  const input = mv.signature.inputs[0];
  if (mv.format !== 'onnx' || mv.signature.inputs.length !== 1 || !input) throw MlErrors.BAD_INPUT(`${model} v${version}: the gates score single-input ONNX models only`);
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const out = new Float32Array(rows);
    for (let at = 0; at < rows; at += SCORE_BATCH) {
      const k = Math.min(SCORE_BATCH, rows - at);
      const res = await s.run({ [input.name]: new ort.Tensor('float32', x.slice(at * cols, (at + k) * cols), [k, cols]) });
      const p = res[s.outputNames[0]!]!.data as Float32Array;
      if (p.length === k) out.set(p, at);
      else if (p.length === 2 * k) for (let i = 0; i < k; i++) out[at + i] = p[2 * i + 1]!;
      else throw MlErrors.BAD_INPUT(`${model} v${version}: its first output has ${p.length / k} values per row; the gates need a probability or two class scores`);
    }
    return out;
  } finally {
    await s.release();
  }
}

export function realStages(o: StagesOptions): PipelineStages {
  const { nc, subjects, deployments, log, clock } = o;
  const prefix = subjects.prefix;
  /** The latency gate's replay: the latest logged rows (else the holdout's), both versions interleaved. */
  const replay_ = async (registry: ModelRegistry, r: RunRecord, columns: string[], prodVersion: number | undefined, requests: number, holdout: { x: Float32Array; rows: number }): Promise<LatencyReplay> => {
    const cols = columns.length;
    const logged = await loggedRows(nc, prefix, r.spec.model, columns, requests);
    const rows = logged.rows > 0 ? logged : { x: holdout.x.subarray(0, Math.min(requests, holdout.rows) * cols), rows: Math.min(requests, holdout.rows) };
    const cand = await openSession(registry, r.spec.model, r.candidate!.version);
    const prod = prodVersion !== undefined ? await openSession(registry, r.spec.model, prodVersion).catch(async (err: unknown) => {
      await cand.session.release();
      throw err;
    }) : undefined;
    try {
      return await replayLatency(cand, prod, rows.x, rows.rows, cols, logged.rows > 0 ? 'log' : 'holdout');
    } finally {
      await cand.session.release();
      await prod?.session.release();
    }
  };
  const wait = (ms: number) => new Promise<void>((resolve) => clock.after(ms, resolve));
  const now = o.now ?? Date.now;
  const pollMs = o.qualityPollMs ?? 2000;

  /** Both tracks' monitor reports judged (canary-quality.ts); `wait` while a monitor does not answer yet. */
  const judgeStep = async (model: string, since: number, policy: CanaryQualityPolicy): Promise<CanaryQuality> => {
    const m = await modelMonitoring(nc, subjects, model).catch((err: unknown) => ({ error: (err as Error).message }));
    if (!m || 'error' in m) return { pass: true, basis: 'insufficient', reason: `monitoring not readable: ${m ? m.error : 'not deployed'}`, n: 0, stableN: 0, wait: true };
    const stable = m.versions.find((v) => v.role === 'stable');
    const canary = m.versions.find((v) => v.role === 'canary');
    if (!stable && !canary) return { pass: true, basis: 'insufficient', reason: 'the deployment has no monitoring: the step is judged on errors and latency only', n: 0, stableN: 0 };
    for (const [role, v] of [['stable', stable], ['canary', canary]] as const) {
      if (!v) return { pass: true, basis: 'insufficient', reason: `the ${role} track has no monitor`, n: 0, stableN: 0, wait: true };
      if ('error' in v) return { pass: true, basis: 'insufficient', reason: `the ${role}'s monitor does not answer: ${v.error}`, n: 0, stableN: 0, wait: true };
    }
    return judgeCanaryQuality((stable as { report: MonitorReport }).report, (canary as { report: MonitorReport }).report, policy, since);
  };
  return {
    async snapshot(r) {
      if (r.spec.data.features) return snapshotFeatures(nc, subjects, r);
      const datasets = await DatasetStore.open(nc, prefix);
      const dv = await datasets.resolve(r.spec.data.dataset!);
      if (!r.spec.data.labeled) return { digest: dv.digest, rows: dv.rows };
      // The dataset plus the model's labeled rows, as a version of its own (the same rows give the same digest when the stage is redone).
      const rows = await readLabeled(nc, prefix, r.spec.model);
      const { dataset, appended, skipped } = appendLabeled(await datasets.load(dv), rows);
      if (skipped > 0) log.warn({ pipeline: r.pipeline, run: r.run, skipped, columns: dv.columns.length }, 'labeled rows whose features or label do not fit the dataset were skipped');
      if (appended === 0) return { digest: dv.digest, rows: dv.rows, dataset: dv.name, labeledRows: 0, skippedRows: skipped };
      const name = `${dv.name.slice(0, 56)}-labeled`;
      const v = await datasets.put(name, dataset, { splitSeed: dv.splits.seed, source: `pipeline ${r.pipeline} run ${r.run}: ${dv.name}@${dv.digest.slice(0, 12)} + ${appended} labeled rows of ${r.spec.model}` });
      return { digest: v.digest, rows: v.rows, dataset: name, labeledRows: appended, skippedRows: skipped };
    },

    async train(r, jobId) {
      const t = r.spec.training;
      const deadline = nextScheduled(r.spec, r.trigger.at);
      const spec = {
        model: { name: r.spec.model, type: t.type },
        // A feature set goes as its views plus the set pinned by digest, so the version records its feature lineage (feature-data.ts).
        dataset: r.spec.data.features ? featureJobDataset(r) : `sha256:${r.snapshot!.digest}`,
        hyper: { optimizer: 'adam', lr: t.lr, steps: t.steps, batchSize: 512, seed: t.seed },
        spotOk: t.spotOk,
        // The seed's cost note: a scheduled retrain should be done before the next one is due (cron or interval).
        ...(deadline !== undefined ? { deadline } : {}),
      };
      const jobs = await JobClient.open(nc, prefix);
      await jobs.submit(spec, { id: jobId });
    },

    async trained(r) {
      const jobs = await JobClient.open(nc, prefix);
      const last = await jobs.follow(r.jobId!, () => undefined, o.trainTimeoutMs ?? 3_600_000);
      if (last.state !== JobState.SUCCEEDED) throw MlErrors.JOB_FAILED(r.jobId!, `${last.state}${last.reason ? `: ${last.reason}` : ''}`);
      const version = Number(last.result?.['version']);
      if (!Number.isInteger(version)) throw MlErrors.JOB_FAILED(r.jobId!, 'it succeeded without registering a version');
      return { version };
    },

    async evaluate(r) {
      const registry = await ModelRegistry.open(nc, prefix);
      const datasets = await DatasetStore.open(nc, prefix);
      const dv = await datasets.resolve(r.spec.gates.holdout ?? `sha256:${r.snapshot!.digest}`);
      const d = await datasets.load(dv);
      const idx = split(d.rows, dv.splits.seed).holdout;
      if (idx.length === 0) throw MlErrors.BAD_DATASET(dv.name, 'its holdout split is empty');
      const { x, y } = take(d, idx);
      const cols = d.columns.length;
      const model = r.spec.model;
      const candidate = await score(registry, model, r.candidate!.version, x, idx.length, cols);
      const record = await registry.get(model);
      const prodVersion = record.aliases['production'];
      const production = prodVersion !== undefined && prodVersion !== r.candidate!.version ? await score(registry, model, prodVersion, x, idx.length, cols) : undefined;
      const fairness = r.spec.gates.fairness ?? (await getPolicy(registry, model))?.policy;
      const mv = await registry.version(model, r.candidate!.version);
      const threshold = (await registry.loadReference(mv).catch(() => undefined))?.threshold ?? 0.5;
      const audit = fairness ? trainingFairnessAudit(candidate, y, sensitiveColumns(d, idx), threshold) : undefined;
      const lat = r.spec.gates.latency;
      const latencyPolicy = lat ? { maxRatio: lat.maxRatio ?? 1.5, ...(lat.maxP99Ms !== undefined ? { maxP99Ms: lat.maxP99Ms } : {}) } : undefined;
      const replay = lat ? await replay_(registry, r, d.columns, prodVersion !== r.candidate!.version ? prodVersion : undefined, lat.requests ?? 300, { x, rows: idx.length }) : undefined;
      const report = judgeGates(
        { maxAucDrop: r.spec.gates.maxDrop, confidence: r.spec.gates.confidence, ...(r.spec.gates.maxEce !== undefined ? { maxEce: r.spec.gates.maxEce } : {}), ...(fairness ? { fairness } : {}), ...(latencyPolicy ? { latency: latencyPolicy } : {}) },
        { y, candidate, ...(production ? { production } : {}) },
        audit,
        replay,
      );
      log.info({ pipeline: r.pipeline, run: r.run, candidate: r.candidate!.version, production: prodVersion, pass: report.pass }, 'pipeline gates judged');
      return { report, ...(production ? { production: prodVersion } : {}) };
    },

    shadow: (r) => shadowStage({ nc, subjects, deployments, log, clock }, r),

    async reject(r, reason) {
      const registry = await ModelRegistry.open(nc, prefix);
      await registry.markRejected(r.spec.model, r.candidate!.version, reason);
    },

    async rollout(r, onStep) {
      const model = r.spec.model;
      const version = r.candidate!.version;
      const dep = await deployments.get(model);
      if (!dep || r.spec.rollout.direct) {
        const registry = await ModelRegistry.open(nc, prefix);
        await registry.setAlias(model, 'production', version);
        return { outcome: 'promoted', reason: dep ? 'direct promotion (rollout.direct)' : `${model} is not deployed: the production alias moved to v${version}` };
      }
      if (dep.stable.version === version) return { outcome: 'promoted', reason: `v${version} already serves` };
      const steps = r.spec.rollout.steps;
      // Specs stored before rollout.quality existed have none: the defaults.
      const q = { ...QUALITY_DEFAULTS, ...r.spec.rollout.quality, comparisons: steps.length };
      // The canary is monitored as the stable is, so each step can be judged on quality.
      const monitoring = dep.stable.monitoring ? { monitoring: dep.stable.monitoring } : {};
      if (!dep.canary) await deployments.canary(model, { version, weight: steps[Math.min(r.steps.length, steps.length - 1)]! / 100, ...monitoring });
      else if (dep.canary.version !== version) throw MlErrors.CANARY_NOT_READY(model, `v${dep.canary.version} is already the canary`);
      for (let i = r.steps.length; i < steps.length; i++) {
        const percent = steps[i]!;
        await deployments.setWeight(model, percent / 100);
        const since = now();
        await wait(r.spec.rollout.stepMs);
        const waitUntil = clock.now() + q.maxWaitMs;
        let quality: CanaryQuality;
        for (;;) {
          const cur = await deployments.get(model);
          if (!cur?.canary || cur.canary.version !== version) {
            // The rollout controller (errors, latency) or a person rolled it back during the step.
            const ev = cur?.history.findLast((h) => h.version === version && h.event === 'rolled-back');
            const reason = `rolled back at ${percent}%: ${ev?.detail ?? 'the canary was removed'}`;
            await onStep({ percent, pass: false, at: now(), reason });
            return { outcome: 'rolled-back', reason };
          }
          quality = await judgeStep(model, since, q);
          if (!quality.pass || !quality.wait || clock.now() >= waitUntil) break;
          await wait(pollMs);
        }
        if (!quality.pass) {
          const reason = `rolled back at ${percent}%: ${quality.reason}`;
          // Rolled back before the step is recorded: a leader taking over in between finds the canary gone and records the same reason from its history.
          await deployments.rollback(model, `pipeline ${r.pipeline} run ${r.run} canary quality: ${quality.reason}`, version);
          log.warn({ pipeline: r.pipeline, run: r.run, model, version, percent, basis: quality.basis, reason: quality.reason }, 'canary step failed on quality: rolled back');
          await onStep({ percent, pass: false, at: now(), reason, quality });
          return { outcome: 'rolled-back', reason };
        }
        const { wait: waited, ...judged } = quality;
        const recorded: CanaryQuality = waited ? { ...judged, reason: `after waiting ${q.maxWaitMs} ms past the step: ${judged.reason}` } : judged;
        log.info({ pipeline: r.pipeline, run: r.run, model, version, percent, basis: recorded.basis, n: recorded.n }, 'canary step passed');
        await onStep({ percent, pass: true, at: now(), quality: recorded });
      }
      await deployments.promote(model);
      return { outcome: 'promoted', reason: `every canary step passed (${steps.join('% → ')}%)` };
    },
  };
}
