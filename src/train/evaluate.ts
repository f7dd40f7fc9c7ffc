/**
 * Evaluation of per-function scores: everything the lab charts and the CLI writes, with the decision
 * threshold chosen on validation and applied unchanged to test. The paper's figure (threshold picked
 * on the scored set itself) is reported too, labelled as such.
 */
import {
  atThreshold,
  averagePrecision,
  bestF1Threshold,
  bootstrapInterval,
  groupRocAuc,
  precisionRecallCurve,
  rocAuc,
  rocCurve,
  trapezoid,
  type GroupAuc,
  type Interval,
  type ThresholdMetrics,
} from './metrics.ts';

export interface ScoredExample {
  /** Probability of "vulnerable". */
  score: number;
  label: 0 | 1;
  cwe?: string;
  /** Index of the record in the imported dataset. */
  exampleIndex: number;
}

export interface EvalMetrics {
  n: number;
  positives: number;
  rocAuc: number | null;
  /** Average precision (area under the step PR curve). */
  prAuc: number | null;
  prAucTrapezoid: number | null;
  /** Decision at the threshold chosen on validation. */
  atThreshold: ThresholdMetrics;
  /** F1 with the threshold picked on this very set (the paper's protocol; optimistic). */
  selfTunedF1: ThresholdMetrics;
  perCwe: Record<string, GroupAuc>;
  intervals?: { rocAuc: Interval; prAuc: Interval; f1: Interval };
  /** Points for charts (collinear points dropped; at most ~200 PR points). */
  roc: { x: number[]; y: number[] };
  pr: { x: number[]; y: number[] };
}

const finiteOrNull = (value: number) => (Number.isFinite(value) ? value : null);

/** Keeps at most `max` points of a curve, always its ends, for charts. */
function thin(x: number[], y: number[], max = 200): { x: number[]; y: number[] } {
  if (x.length <= max) return { x, y };
  const stride = (x.length - 1) / (max - 1);
  const keep = Array.from({ length: max }, (_, i) => Math.round(i * stride));
  return { x: keep.map((i) => x[i]), y: keep.map((i) => y[i]) };
}

export function evaluateScores(
  examples: readonly ScoredExample[],
  threshold: number,
  { intervals = false, seed = 1 } = {},
): EvalMetrics {
  const scores = examples.map((e) => e.score);
  const labels = examples.map((e) => e.label);
  const roc = rocCurve(scores, labels, true);
  const pr = precisionRecallCurve(scores, labels);
  const positives = labels.filter((l) => l === 1).length;
  const metrics: EvalMetrics = {
    n: examples.length,
    positives,
    rocAuc: finiteOrNull(rocAuc(scores, labels)),
    prAuc: positives ? averagePrecision(scores, labels) : null,
    prAucTrapezoid: positives ? trapezoid(pr.x, pr.y) : null,
    atThreshold: atThreshold(scores, labels, threshold),
    selfTunedF1: bestF1Threshold(scores, labels),
    perCwe: groupRocAuc(
      scores,
      labels,
      examples.map((e) => e.cwe),
    ),
    roc: { x: roc.x, y: roc.y },
    pr: thin(pr.x, pr.y),
  };
  if (intervals) {
    const options = { samples: 1000, seed };
    metrics.intervals = {
      rocAuc: bootstrapInterval(scores, labels, rocAuc, options),
      prAuc: bootstrapInterval(
        scores,
        labels,
        (s, l) => (l.includes(1) ? averagePrecision(s, l) : NaN),
        options,
      ),
      f1: bootstrapInterval(scores, labels, (s, l) => atThreshold(s, l, threshold).f1, options),
    };
  }
  return metrics;
}

/** The F1-maximising threshold on validation (0.5 when validation has no positives). */
export function chooseThreshold(validation: readonly ScoredExample[]): number {
  if (!validation.some((e) => e.label === 1)) return 0.5;
  return bestF1Threshold(
    validation.map((e) => e.score),
    validation.map((e) => e.label),
  ).threshold;
}
