/**
 * `data.labeled` (issue #16 item 1): the run's data is the dataset plus the model's labeled rows.
 * Features meet the dataset's columns by name, or by position for a single logged input
 * `<input>_i`; rows that do not fit (a missing column, a string value, a label not 0/1) are counted
 * and skipped; a prediction labeled twice counts once with its latest label; sensitive attributes
 * of appended rows are the unknown group.
 */
import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../ml/datasets/dataset.ts';
import { UNKNOWN_GROUP, appendLabeled } from '../../ml/pipelines/labels.ts';
import type { LabeledRecord } from '../../ml/index.ts';

const d: Dataset = { columns: ['a', 'b'], rows: 2, features: Float32Array.from([1, 2, 3, 4]), labels: Uint8Array.from([0, 1]), sensitive: Uint8Array.from([1, 2]), sensitiveName: 'band' };
let ts = 0;
const rec = (id: string, features: LabeledRecord['features'], label: LabeledRecord['label']): LabeledRecord => ({ id, model: 'm', version: 1, ts: ++ts, features, outputs: { Y: 0.5 }, latencyMs: 1, label, labelTs: ++ts });

describe('labeled rows appended to a dataset', () => {
  it('maps by name or by position, skips what does not fit, keeps the latest label of an id', () => {
    const rows = [
      rec('by-name', { a: 5, b: 6, extra: 'x' }, 1),
      rec('by-position', { X_0: 7, X_1: 8 }, false),
      rec('relabeled', { a: 9, b: 10 }, 0),
      rec('relabeled', { a: 9, b: 10 }, true),
      rec('missing-b', { a: 1 }, 1),
      rec('string-value', { a: 1, b: 'high' }, 1),
      rec('not-binary', { a: 1, b: 2 }, 3),
      rec('string-label', { a: 1, b: 2 }, 'fraud'),
      rec('three-cols', { X_0: 1, X_1: 2, X_2: 3 }, 1),
    ];
    const { dataset, appended, skipped } = appendLabeled(d, rows);
    expect({ appended, skipped }).toEqual({ appended: 3, skipped: 5 });
    expect(dataset.rows).toBe(5);
    expect(Array.from(dataset.features)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(Array.from(dataset.labels)).toEqual([0, 1, 1, 0, 1]);
    expect(Array.from(dataset.sensitive!)).toEqual([1, 2, UNKNOWN_GROUP, UNKNOWN_GROUP, UNKNOWN_GROUP]);
    expect(dataset.columns).toEqual(['a', 'b']);
    // The input dataset is untouched.
    expect(d.rows).toBe(2);
    expect(d.features.length).toBe(4);
  });

  it('nothing fitting leaves the dataset as it was', () => {
    const r = appendLabeled(d, [rec('x', { c: 1 }, 1)]);
    expect(r).toMatchObject({ appended: 0, skipped: 1 });
    expect(r.dataset).toBe(d);
  });
});
