/**
 * PII declarations (issue #20), unit level: which prediction-log fields a declaration excludes
 * (signature names; the model columns a PII feature of a view produces, one-hot included), that
 * PII implies logExclude in the log itself (the value is in no published byte while an ordinary
 * column's is), that a push's type error withholds a PII value but shows an ordinary one, and the
 * parsing/matching of an entity for erasure.
 */
import { describe, expect, it } from 'vitest';
import { ContentType, encode } from '../../cluster/index.ts';
import { PredictionLog, WITHHELD, checkEvent, deserialize, importCsv, jsonErrorMessage, serialize, entityRef, keyMatch, parseEntity, piiLogFields, withPiiExcluded, type FeatureViewDef } from '../../ml/index.ts';
import { containsBytes, numberEncodings } from '../fixtures/monitoring.ts';

const view = {
  name: 'person',
  entity: ['customer_id'],
  source: { type: 'push' },
  ttlSeconds: 0,
  features: [
    { name: 'income', type: 'numeric', pii: true },
    { name: 'spend', type: 'numeric' },
    { name: 'email', type: 'categorical', pii: true, transforms: [{ op: 'onehot', vocabulary: ['a', 'b'] }] },
    { name: 'nickname', type: 'categorical', transforms: [{ op: 'ordinal', vocabulary: ['x'] }] },
  ],
} as FeatureViewDef;
const columns = ['income', 'spend', 'email=a', 'email=b', 'email=<unknown>', 'nickname'];

describe('PII declarations', () => {
  it('a signature\'s pii names and the columns of a view\'s PII features (one-hot: every column) are excluded', () => {
    const mv = { signature: { inputs: [], outputs: [], pii: ['score_raw'] } };
    expect(piiLogFields(mv)).toEqual(['score_raw']);
    // Two views in input order: the second's columns are offset by the first's width.
    const other = { name: 'merch', definition: { features: [{ name: 'risk', type: 'numeric', pii: true }] } as FeatureViewDef, columns: ['risk'] };
    expect(piiLogFields(mv, [{ name: 'person', definition: view, columns }, other], 'X')).toEqual(['X_0', 'X_2', 'X_3', 'X_4', 'X_6', 'score_raw']);
    expect(piiLogFields({ signature: { inputs: [], outputs: [] } }, [{ name: 'person', definition: { features: view.features.map((f) => ({ ...f, pii: false })) }, columns }], 'X')).toEqual([]);
  });

  it('PII implies logExclude: the prediction log publishes no byte of a PII column, and does publish an ordinary one', async () => {
    const PII = 98765.4375;
    const CTRL = 87654.3125;
    const published: Uint8Array[] = [];
    const spec = withPiiExcluded({ sampleRate: 1, batchRecords: 1, logExclude: ['X_5'] }, piiLogFields({ signature: { inputs: [], outputs: [] } }, [{ name: 'person', definition: view, columns }], 'X'));
    expect(spec.logExclude).toEqual(['X_5', 'X_0', 'X_2', 'X_3', 'X_4']);
    const log = new PredictionLog({ model: 'm', version: 1, spec, publish: async (bytes: Uint8Array) => void published.push(bytes), encode: (m) => encode(m, ContentType.MSGPACK) });
    const p = log.begin([{ name: 'X', datatype: 'FP32', data: Float32Array.from([PII, CTRL, 0, 1, 0, 3]), dims: [1, 6] }], 'r1', undefined, 0)!;
    p.entityRefs = [[entityRef('customer_id', 'c-1')]];
    log.end(p, [{ name: 'y', datatype: 'FP32', data: Float32Array.from([0.5]), dims: [1, 1] }], 1);
    await log.close();
    expect(published).toHaveLength(1);
    const has = (v: number) => numberEncodings(v).some((enc) => containsBytes(published[0]!, enc));
    expect(has(PII)).toBe(false);
    expect(has(CTRL)).toBe(true);
    // The entity key is kept hashed, never in clear.
    expect(containsBytes(published[0]!, new TextEncoder().encode('c-1'))).toBe(false);
    expect(containsBytes(published[0]!, new TextEncoder().encode(entityRef('customer_id', 'c-1')))).toBe(true);
  });

  it('a push\'s type error withholds a PII value and shows an ordinary one', () => {
    const ev = (values: Record<string, unknown>) => ({ eventId: 'e1', entity: { customer_id: 'c-1' }, values, eventTime: 1000 }) as never;
    expect(() => checkEvent(view, ev({ income: 'pii-marker-0042' }), 2000, 300_000)).toThrow(new RegExp(`values\\.income: \\${WITHHELD.slice(0, -1)}\\) is not a numeric value`));
    try {
      checkEvent(view, ev({ income: 'pii-marker-0042' }), 2000, 300_000);
    } catch (err) {
      expect((err as Error).message).not.toContain('pii-marker-0042');
    }
    expect(() => checkEvent(view, ev({ spend: 'ctrl-marker-0042' }), 2000, 300_000)).toThrow(/values\.spend: "ctrl-marker-0042" is not a numeric value/);
  });

  it('an entity to forget: parsed from column=value pairs; matched against a view\'s key positions', () => {
    expect(parseEntity('customer_id=c-17')).toEqual({ customer_id: 'c-17' });
    expect(parseEntity('customer_id=a=b,merchant_id=m')).toEqual({ customer_id: 'a=b', merchant_id: 'm' });
    expect(() => parseEntity('c-17')).toThrow(/<key column>=<value>/);
    expect(keyMatch({ entity: ['merchant_id', 'customer_id'] }, { customer_id: 'c-17' })).toEqual([[1, 'c-17']]);
    expect(keyMatch({ entity: ['merchant_id'] }, { customer_id: 'c-17' })).toEqual([]);
  });

  it('a JSON syntax error loses the quoted body V8 puts in its message', () => {
    const msg = (text: string) => {
      try {
        JSON.parse(text);
      } catch (err) {
        return jsonErrorMessage(err);
      }
      throw new Error('parsed');
    };
    expect(msg('{"email":pii-mark-33}')).toBe("Unexpected token 'p' (the body is not shown)");
    expect(msg(`{"x":"${'pii-mark-44'.repeat(30)}" oops`)).not.toContain('pii-mark-44');
    expect(msg('{"a":1} x')).toMatch(/position 8$/);
  });

  it('a dataset\'s PII columns: marked at import (every one-hot column of a PII category), kept through serialisation, and a model\'s lineage.pii is excluded', () => {
    const csv = 'y,age,zip,plan\n1,30,75001,pro\n0,41,10115,free\n';
    const d = importCsv(csv, { label: 'y', numeric: ['age', 'zip'], categorical: ['plan'], pii: ['zip'] });
    expect(d.pii).toEqual(['zip']);
    expect(importCsv(csv, { label: 'y', numeric: ['age'], categorical: ['zip'], pii: ['zip'] }).pii).toEqual(['zip_10115', 'zip_75001']);
    expect(deserialize(serialize(d)).pii).toEqual(['zip']);
    expect(deserialize(serialize(importCsv(csv, { label: 'y', numeric: ['age'] }))).pii).toBeUndefined();
    expect(() => importCsv(csv, { label: 'y', numeric: ['age'], pii: ['nope'] })).toThrow(/pii column "nope"/);
    expect(piiLogFields({ signature: { inputs: [], outputs: [] }, lineage: { pii: ['X_1'] } })).toEqual(['X_1']);
  });
});
