/**
 * Whether a quantized version may be served: it is rejected when it is slower than its source
 * or loses more than a point of its main metric on the source's holdout. A pure function of the
 * measurements, so the policy is tested without timing anything.
 */
import type { LatencyComparison } from './latency.ts';

export interface VerdictPolicy {
  /**
   * Slower means: at some batch size, every round's quantized/float ratio is above 1 and the
   * overall ratio is above 1 + this (noise on a shared machine moves single rounds a few %).
   * @default 0.03
   */
  slowerTolerance: number;
  /** Largest loss of the main metric allowed, in points (0.01 of a metric in [0, 1]). @default 1 */
  maxMetricLossPoints: number;
}

export const DEFAULT_VERDICT_POLICY: VerdictPolicy = { slowerTolerance: 0.03, maxMetricLossPoints: 1 };

/** The main metric on the holdout, source and quantized model scored on the same rows. */
export interface MainMetric {
  metric: string;
  source: number;
  quantized: number;
}

export interface Verdict {
  rejected: boolean;
  reasons: string[];
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

export function judge(latency: readonly LatencyComparison[], main: MainMetric | undefined, policy: VerdictPolicy = DEFAULT_VERDICT_POLICY): Verdict {
  const reasons: string[] = [];
  for (const l of latency) {
    if (l.ratioRange[0] > 1 && l.ratio > 1 + policy.slowerTolerance) {
      reasons.push(`slower at batch ${l.batch}: ${r3(l.ratio)}× the source's latency (rounds ${r3(l.ratioRange[0])}–${r3(l.ratioRange[1])}, ${l.runs} runs each)`);
    }
  }
  if (main) {
    const lossPoints = (main.source - main.quantized) * 100;
    if (lossPoints > policy.maxMetricLossPoints) {
      reasons.push(`${main.metric} ${r3(main.quantized)} vs ${r3(main.source)} on the holdout: loses ${lossPoints.toFixed(2)} points (at most ${policy.maxMetricLossPoints} allowed)`);
    }
  }
  return { rejected: reasons.length > 0, reasons };
}
