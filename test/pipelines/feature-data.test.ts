/**
 * The job spec a `data.features` run submits (feature-data.ts): the label range ends at the
 * trigger time (from `windowMs` before it when set), the job's dataset names the snapshot's view
 * versions and pins the built set, and the training spec refuses a pinned set whose views are not
 * the `features` it names.
 */
import { describe, expect, it } from 'vitest';
import { featureJobDataset, featureSetName, labelRange } from '../../ml/pipelines/feature-data.ts';
import type { RunRecord } from '../../ml/pipelines/store.ts';
import { parseTrainingSpec } from '../../ml/training/spec.ts';

const digest = 'ab'.repeat(32);
const labels = { view: 'outcome', label: 'is_fraud' };

describe('pipeline feature data', () => {
  it('takes labels up to the trigger time, from windowMs before it when set', () => {
    expect(labelRange({ features: ['spend'], labels }, 1_000_000)).toEqual({ until: 1_000_000 });
    expect(labelRange({ features: ['spend'], labels: { ...labels, windowMs: 60_000 } }, 1_000_000)).toEqual({ since: 940_000, until: 1_000_000 });
    expect(featureSetName('fraud.nightly')).toBe('fraud_nightly-features');
  });

  it("the job's dataset pins the snapshot's set and view versions, and the training spec takes it", () => {
    const snapshot = { digest, rows: 10, dataset: 'pf-features', views: [{ name: 'spend', version: 3, digest: 'v3', through: 42 }], labels: { ...labels, until: 5 } };
    const r = { pipeline: 'pf', run: 1, snapshot } as unknown as RunRecord;
    const ds = featureJobDataset(r);
    expect(ds).toEqual({ features: ['spend@3'], labels: { ...labels, until: 5 }, pinned: { digest, views: [{ view: 'spend@3', digest: 'v3', through: 42 }] } });
    expect(parseTrainingSpec('j', { model: { name: 'm', type: 'logreg' }, dataset: ds }).dataset).toEqual(ds);
    expect(() => featureJobDataset({ ...r, snapshot: { digest, rows: 10 } })).toThrow(/no feature views/);
  });

  it('the training spec refuses a pinned set whose views are not the features named, or a bad digest, naming the field', () => {
    const spec = (pinned: unknown) => ({ model: { name: 'm', type: 'logreg' }, dataset: { features: ['spend@3'], labels, pinned } });
    expect(() => parseTrainingSpec('j', spec({ digest, views: [{ view: 'spend@2', digest: 'v', through: 1 }] }))).toThrow(/dataset\.pinned\.views: must be the views of features/);
    expect(() => parseTrainingSpec('j', spec({ digest, views: [{ view: 'spend', digest: 'v', through: 1 }] }))).toThrow(/dataset\.pinned\.views\.0\.view: /);
    expect(() => parseTrainingSpec('j', spec({ digest: 'abc', views: [{ view: 'spend@3', digest: 'v', through: 1 }] }))).toThrow(/dataset\.pinned\.digest: /);
  });
});
