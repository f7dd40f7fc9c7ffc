/**
 * Evaluation metrics for binary vulnerability detection, computed exactly (ties handled) and checked
 * against scikit-learn fixtures. Convention: an example is predicted vulnerable iff score >= threshold.
 */
import { Rng } from '../shared/random.ts';

export interface Curve {
  x: number[];
  y: number[];
  thresholds: number[];
}

/** Counts of true and false positives at each distinct score, from the highest score down. */
function cumulativeCounts(scores: ArrayLike<number>, labels: ArrayLike<number>) {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const tps: number[] = [];
  const fps: number[] = [];
  const thresholds: number[] = [];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; i++) {
    if (labels[order[i]] === 1) tp++;
    else fp++;
    // Close a group only where the next score differs: tied examples enter together.
    if (i === order.length - 1 || scores[order[i + 1]] !== scores[order[i]]) {
      tps.push(tp);
      fps.push(fp);
      thresholds.push(scores[order[i]]);
    }
  }
  return { tps, fps, thresholds };
}

function countPositives(labels: ArrayLike<number>): number {
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i] === 1 ? 1 : 0;
  return positives;
}

/** ROC AUC by the Mann–Whitney statistic with mid-ranks for ties; NaN when one class is missing. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const positives = countPositives(labels);
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return NaN;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let rankSum = 0;
  for (let start = 0; start < n;) {
    let end = start;
    while (end + 1 < n && scores[order[end + 1]] === scores[order[start]]) end++;
    const midRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) if (labels[order[k]] === 1) rankSum += midRank;
    start = end + 1;
  }
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** scikit-learn's drop_intermediate: keep the ends and points where fps or tps bends. */
function dropCollinear(tps: number[], fps: number[]): number[] {
  const keep = [0];
  for (let i = 1; i < tps.length - 1; i++) {
    const bends = fps[i - 1] - 2 * fps[i] + fps[i + 1] !== 0 || tps[i - 1] - 2 * tps[i] + tps[i + 1] !== 0;
    if (bends) keep.push(i);
  }
  if (tps.length > 1) keep.push(tps.length - 1);
  return keep;
}

/**
 * ROC curve (x = false-positive rate, y = true-positive rate) from (0, 0), whose threshold is
 * max score + 1 as in scikit-learn 1.2. `dropIntermediate` removes collinear points.
 */
export function rocCurve(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  dropIntermediate = false,
): Curve {
  const { tps, fps, thresholds } = cumulativeCounts(scores, labels);
  const keep = dropIntermediate ? dropCollinear(tps, fps) : tps.map((_, i) => i);
  const positives = tps[tps.length - 1] ?? 0;
  const negatives = fps[fps.length - 1] ?? 0;
  return {
    x: [0, ...keep.map((i) => (negatives ? fps[i] / negatives : NaN))],
    y: [0, ...keep.map((i) => (positives ? tps[i] / positives : NaN))],
    thresholds: [(thresholds[0] ?? 0) + 1, ...keep.map((i) => thresholds[i])],
  };
}

/**
 * Precision–recall curve (x = recall, y = precision) ordered by increasing threshold, ending at
 * (recall 0, precision 1) without a threshold, as scikit-learn's precision_recall_curve.
 */
export function precisionRecallCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): Curve {
  const { tps, fps, thresholds } = cumulativeCounts(scores, labels);
  const positives = tps[tps.length - 1] ?? 0;
  const precision = tps.map((tp, i) => (tp + fps[i] ? tp / (tp + fps[i]) : 0));
  const recall = tps.map((tp) => (positives ? tp / positives : 1));
  return {
    x: [...recall.reverse(), 0],
    y: [...precision.reverse(), 1],
    thresholds: [...thresholds].reverse(),
  };
}

/** Average precision: Σ (R_k − R_{k−1}) · P_k (scikit-learn's average_precision_score). */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { x: recall, y: precision } = precisionRecallCurve(scores, labels);
  let ap = 0;
  for (let i = 0; i < recall.length - 1; i++) ap += (recall[i] - recall[i + 1]) * precision[i];
  return ap;
}

/** Trapezoidal area under a curve given by x (monotone) and y. */
export function trapezoid(x: number[], y: number[]): number {
  let area = 0;
  for (let i = 1; i < x.length; i++) area += ((x[i] - x[i - 1]) * (y[i] + y[i - 1])) / 2;
  return Math.abs(area);
}

export interface ThresholdMetrics {
  threshold: number;
  precision: number;
  recall: number;
  f1: number;
  /** [[tn, fp], [fn, tp]] as scikit-learn's confusion_matrix. */
  confusion: [[number, number], [number, number]];
}

export function atThreshold(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  threshold: number,
): ThresholdMetrics {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < scores.length; i++) {
    const predicted = scores[i] >= threshold;
    if (labels[i] === 1) {
      if (predicted) tp++;
      else fn++;
    } else if (predicted) fp++;
    else tn++;
  }
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
  return {
    threshold,
    precision,
    recall,
    f1,
    confusion: [
      [tn, fp],
      [fn, tp],
    ],
  };
}

/** The distinct score that maximises F1 on this set (ties: the highest such threshold). */
export function bestF1Threshold(scores: ArrayLike<number>, labels: ArrayLike<number>): ThresholdMetrics {
  const { tps, fps, thresholds } = cumulativeCounts(scores, labels);
  const positives = tps[tps.length - 1] ?? 0;
  let best = -1;
  let bestF1 = -1;
  for (let i = 0; i < tps.length; i++) {
    const f1 = positives ? (2 * tps[i]) / (tps[i] + fps[i] + positives) : 0;
    if (f1 > bestF1) {
      bestF1 = f1;
      best = i;
    }
  }
  return atThreshold(scores, labels, best >= 0 ? thresholds[best] : 0.5);
}

export interface Interval {
  low: number;
  high: number;
}

/**
 * Percentile bootstrap 95% interval of a metric: resample examples with replacement; resamples
 * where the metric is undefined (one class only) are skipped.
 */
export function bootstrapInterval(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  metric: (scores: number[], labels: number[]) => number,
  { samples = 1000, seed = 1 } = {},
): Interval {
  const rng = new Rng(seed);
  const n = scores.length;
  const values: number[] = [];
  const s = new Array<number>(n);
  const l = new Array<number>(n);
  for (let b = 0; b < samples; b++) {
    for (let i = 0; i < n; i++) {
      const j = rng.int(n);
      s[i] = scores[j];
      l[i] = labels[j];
    }
    const value = metric(s, l);
    if (Number.isFinite(value)) values.push(value);
  }
  if (values.length === 0) return { low: NaN, high: NaN };
  values.sort((a, b) => a - b);
  const pick = (q: number) =>
    values[Math.min(values.length - 1, Math.max(0, Math.round(q * (values.length - 1))))];
  return { low: pick(0.025), high: pick(0.975) };
}

export interface GroupAuc {
  n: number;
  positives: number;
  rocAuc: number | null;
}

/** ROC AUC per group (e.g. CWE); null where the group has one class only. */
export function groupRocAuc(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  groups: ArrayLike<string | undefined>,
): Record<string, GroupAuc> {
  const members = new Map<string, number[]>();
  for (let i = 0; i < scores.length; i++) {
    const group = groups[i] ?? 'unknown';
    members.set(group, [...(members.get(group) ?? []), i]);
  }
  const result: Record<string, GroupAuc> = {};
  for (const [group, index] of [...members].sort(([a], [b]) => a.localeCompare(b))) {
    const s = index.map((i) => scores[i]);
    const l = index.map((i) => labels[i]);
    const auc = rocAuc(s, l);
    result[group] = { n: index.length, positives: countPositives(l), rocAuc: Number.isNaN(auc) ? null : auc };
  }
  return result;
}
