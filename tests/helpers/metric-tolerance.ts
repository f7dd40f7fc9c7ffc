/**
 * Tolerances for ranking metrics when two DIFFERENT engines score the same examples (lab vs PyTorch,
 * lab vs ONNX Runtime, Chromium vs Node). Engines that agree on every probability to within
 * `scoreTol` can still order a near-tied (positive, negative) pair differently, and ROC AUC then jumps
 * by 1/(P·N) — far more than the probabilities differ. So a metric's tolerance is derived from the
 * scores: only pairs whose scores lie within 2·scoreTol of each other can change their order (each of
 * the two scores may move by up to scoreTol), and only they can move the metric.
 *
 * Semantics throughout: every score of the other engine differs from the matching score here by at
 * most `scoreTol` (assert that first, e.g. max |Δp| < scoreTol). The bounds are then rigorous; a few
 * ulps of slack absorb the float rounding of the comparisons themselves.
 */
import { expect } from 'vitest';

/** Slack for the float rounding of score differences and of the metrics' own sums. */
const SCORE_SLACK = 8 * Number.EPSILON;
const METRIC_SLACK = 1e-12;

/** Whether two scores may swap, tie or untie when each moves by at most scoreTol. */
const mayReorder = (a: number, b: number, scoreTol: number) => Math.abs(a - b) <= 2 * scoreTol + SCORE_SLACK;

function checkInputs(scores: ArrayLike<number>, labels: ArrayLike<number>, scoreTol: number): void {
  if (scores.length !== labels.length) throw new Error(`${scores.length} scores but ${labels.length} labels`);
  if (!(scoreTol >= 0)) throw new Error(`score tolerance must be ≥ 0, got ${scoreTol}`);
}

export interface PairCount {
  /** (positive, negative) pairs whose order may change. */
  ambiguous: number;
  /** All (positive, negative) pairs: P·N. */
  pairs: number;
}

/** (positive, negative) pairs whose scores lie within 2·scoreTol of each other. */
export function ambiguousPairs(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  scoreTol: number,
): PairCount {
  checkInputs(scores, labels, scoreTol);
  const positives: number[] = [];
  const negatives: number[] = [];
  for (let i = 0; i < scores.length; i++) (labels[i] === 1 ? positives : negatives).push(scores[i]);
  let ambiguous = 0;
  for (const p of positives) for (const n of negatives) if (mayReorder(p, n, scoreTol)) ambiguous++;
  return { ambiguous, pairs: positives.length * negatives.length };
}

/**
 * The most ROC AUC can move when every score moves by at most scoreTol: the fraction of
 * (positive, negative) pairs within 2·scoreTol. ROC AUC is the mean over pairs of 1 (ordered right),
 * ½ (tied) or 0; a pair outside 2·scoreTol keeps its order, one inside changes its term by at most 1.
 * 0 when a class is missing (ROC AUC is undefined on both sides then).
 */
export function rocAucTolerance(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  scoreTol: number,
): number {
  const { ambiguous, pairs } = ambiguousPairs(scores, labels, scoreTol);
  return pairs ? ambiguous / pairs : 0;
}

/**
 * The most average precision (the lab's PR AUC: (1/P)·Σ over positives i of the precision among the
 * examples scoring ≥ s_i) can move when every score moves by at most scoreTol. For each positive only
 * the examples within 2·scoreTol of s_i can enter or leave the set above it; the bound takes the
 * precision's extremes over those and averages the largest deviation over the positives.
 */
export function averagePrecisionTolerance(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  scoreTol: number,
): number {
  checkInputs(scores, labels, scoreTol);
  let positives = 0;
  let total = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    positives++;
    const s = scores[i];
    let tp = 0; // positives scoring ≥ s, i included
    let fp = 0;
    let tpOut = 0; // ≥ s but may drop below s_i
    let fpOut = 0;
    let tpIn = 0; // < s but may rise to s_i
    let fpIn = 0;
    for (let j = 0; j < scores.length; j++) {
      const positive = labels[j] === 1;
      const near = j !== i && mayReorder(scores[j], s, scoreTol);
      if (scores[j] >= s) {
        if (positive) tp++;
        else fp++;
        if (near && positive) tpOut++;
        if (near && !positive) fpOut++;
      } else if (near) {
        if (positive) tpIn++;
        else fpIn++;
      }
    }
    const precision = tp / (tp + fp);
    const low = (tp - tpOut) / (tp - tpOut + fp + fpIn);
    const high = (tp + tpIn) / (tp + tpIn + fp - fpOut);
    total += Math.max(precision - low, high - precision);
  }
  return positives ? total / positives : 0;
}

/** Indices of the scores within scoreTol of a threshold: their side of it (score ≥ t) may differ. */
export function nearThreshold(scores: ArrayLike<number>, threshold: number, scoreTol: number): number[] {
  const near: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    if (Math.abs(scores[i] - threshold) <= scoreTol + SCORE_SLACK) near.push(i);
  }
  return near;
}

/**
 * Pairs of scores (any labels) within 2·scoreTol: 0 means both engines order every example the same
 * way, so anything computed from the order alone (the F1-maximising threshold's example, the best
 * cut) picks the same example on both.
 */
export function closeScorePairs(scores: ArrayLike<number>, scoreTol: number): number {
  let close = 0;
  for (let i = 0; i < scores.length; i++) {
    for (let j = i + 1; j < scores.length; j++) if (mayReorder(scores[i], scores[j], scoreTol)) close++;
  }
  return close;
}

export interface ScoredSet {
  /** One engine's scores (either engine's: the bound is symmetric). */
  scores: ArrayLike<number>;
  labels: ArrayLike<number>;
  /** Largest |Δscore| allowed (and asserted) between the two engines. */
  scoreTol: number;
  /** What is compared, for the message (e.g. "test ROC AUC, lab vs torch"). */
  what?: string;
}

function expectWithin(
  metric: string,
  actual: number,
  expected: number,
  bound: number,
  detail: string,
  { scoreTol, what }: ScoredSet,
): void {
  const diff = Math.abs(actual - expected);
  const message =
    `${what ?? metric}: ${actual} vs ${expected}, |Δ| ${diff.toExponential(3)} > tolerance ${bound.toExponential(3)} ` +
    `derived from the score tolerance ${scoreTol.toExponential(2)} (${detail})`;
  expect(Number.isFinite(actual) && Number.isFinite(expected), message).toBe(true);
  expect(diff, message).toBeLessThanOrEqual(bound + METRIC_SLACK);
}

/** ROC AUC of two engines within the derived tolerance; the failure message states it. */
export function expectRocAucClose(actual: number, expected: number, set: ScoredSet): number {
  const { ambiguous, pairs } = ambiguousPairs(set.scores, set.labels, set.scoreTol);
  const bound = pairs ? ambiguous / pairs : 0;
  expectWithin(
    'ROC AUC',
    actual,
    expected,
    bound,
    `${ambiguous} of ${pairs} (positive, negative) pairs lie within 2·${set.scoreTol.toExponential(2)} and may swap`,
    set,
  );
  return bound;
}

/** Average precision (PR AUC) of two engines within the derived tolerance. */
export function expectAveragePrecisionClose(actual: number, expected: number, set: ScoredSet): number {
  const bound = averagePrecisionTolerance(set.scores, set.labels, set.scoreTol);
  expectWithin(
    'PR AUC',
    actual,
    expected,
    bound,
    'precision at each positive, over the examples within 2·tolerance of it that may cross it',
    set,
  );
  return bound;
}
