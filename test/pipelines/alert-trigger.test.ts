/**
 * Which monitor alerts start a pipeline run (ml/pipelines/leader.ts): the rule's kind against
 * `triggers.onAlert`, and only alerts on the version the deployment serves as stable — a canary's
 * alert is about the candidate in rollout, and the old stable's last window closing after a
 * promotion must not retrain the model that has just replaced it (seen in the drift → promote e2e,
 * test/e2e/pipeline-drift.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { alertKind, alertTriggers } from '../../ml/pipelines/index.ts';

describe('pipeline alert triggers', () => {
  it('maps monitor rules to onAlert kinds', () => {
    expect(['feature-drift', 'dataset-drift', 'prediction-drift'].map(alertKind)).toEqual(['drift', 'drift', 'drift']);
    expect(['quality-drop', 'estimated-quality-drop', 'confidence-drop'].map(alertKind)).toEqual(['quality', 'quality', 'quality']);
    expect(alertKind('latency')).toBeUndefined();
  });

  it('fires on the stable version only; an unknown version or deployment does not hold a trigger back', () => {
    expect(alertTriggers(1, 1)).toBe(true);
    // After v2 was promoted: v1's late window, and a canary v3's window, do not trigger.
    expect(alertTriggers(1, 2)).toBe(false);
    expect(alertTriggers(3, 2)).toBe(false);
    expect(alertTriggers(undefined, 2)).toBe(true);
    expect(alertTriggers(2, undefined)).toBe(true);
  });
});
