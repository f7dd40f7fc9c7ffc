/**
 * A run's curves: per-step training values, per-evaluation validation values (validation loss
 * included) and the settings changed along the way. One recorder for every consumer: the training
 * run keeps it and carries it in its checkpoints (so a resumed run continues its curves from the
 * start), the CLI writes it into metrics.json, and the engine worker sends the page thinned views of
 * it. Nothing else turns run events into curves.
 */
import { VulnLabError } from '../shared/errors.ts';
import type { RunEvent } from './types.ts';

export interface CurvePoint {
  x: number;
  y: number;
}

/** What the curves keep of a run's 'step' event. */
export type HistoryStep = Pick<
  Extract<RunEvent, { type: 'step' }>,
  'step' | 'epoch' | 'loss' | 'lr' | 'gradNorm' | 'tokensPerSecond'
>;

export interface HistoryEval {
  step: number;
  epoch: number;
  /** Validation loss (absent in histories saved before it was recorded). */
  loss?: number;
  rocAuc: number | null;
  prAuc: number | null;
  f1: number;
  threshold: number;
  /** The ROC and PR curves of this evaluation, thinned to EVAL_CURVE_POINTS when recorded. */
  roc: CurvePoint[];
  pr: CurvePoint[];
}

/** A setting changed during the run, from this optimizer step on. */
export interface HistoryMarker {
  step: number;
  path: string;
  value: unknown;
}

/** A history (or a thinned selection of one) as plain data: JSON and structured-clone safe. */
export interface HistoryView {
  steps: HistoryStep[];
  evals: HistoryEval[];
  markers: HistoryMarker[];
}

/** The stored form (checkpoints, the browser's run store). Non-finite numbers are stored as null. */
export type SerializedHistory = HistoryView;

/** Points kept of each evaluation's ROC and PR curve. */
export const EVAL_CURVE_POINTS = 100;
/** Points of a live run's charts (steps and evaluations each). */
export const CHART_POINTS = 400;
/** Points kept of a finished run's loss curve in the page's saved results. */
export const FINISHED_POINTS = 200;

/** At most `max` points of a curve, evenly by index, its first and last included. */
export function thinCurve(curve: { x: ArrayLike<number>; y: ArrayLike<number> }, max: number): CurvePoint[] {
  const n = curve.x.length;
  const pick = (i: number) => ({ x: curve.x[i], y: curve.y[i] });
  if (n <= max) return Array.from({ length: n }, (_, i) => pick(i));
  if (max <= 1) return [pick(n - 1)];
  return Array.from({ length: max }, (_, i) => pick(Math.round((i * (n - 1)) / (max - 1))));
}

/**
 * Indices of `n` points to keep for at most `max` (sorted): every index in `keep`, then the rest of
 * the budget spread evenly over the others. More kept indices than `max` are all returned.
 */
export function thinIndices(n: number, max: number, keep: Iterable<number>): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const kept = new Set([...keep].filter((i) => i >= 0 && i < n));
  const budget = max - kept.size;
  if (budget > 0) {
    const others: number[] = [];
    for (let i = 0; i < n; i++) if (!kept.has(i)) others.push(i);
    if (budget === 1) kept.add(others[Math.floor(others.length / 2)]);
    else
      for (let k = 0; k < budget; k++) kept.add(others[Math.round((k * (others.length - 1)) / (budget - 1))]);
  }
  return [...kept].sort((a, b) => a - b);
}

/** First index whose step is at least `step` (points sorted by step); `points.length` if none. */
function firstAtOrAfter(points: readonly { step: number }[], step: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].step < step) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function selectPoints<T extends { step: number }>(
  points: readonly T[],
  max: number,
  best: number,
  markers: readonly HistoryMarker[],
): T[] {
  const keep = [0, points.length - 1, best];
  // A change shows as the last point before it and the first point under it.
  for (const m of markers) {
    const at = firstAtOrAfter(points, m.step);
    keep.push(at - 1, at);
  }
  return thinIndices(points.length, max, keep).map((i) => points[i]);
}

function bestIndex<T>(
  points: readonly T[],
  value: (p: T) => number | null | undefined,
  lower: boolean,
): number {
  let best = -1;
  let bestValue = 0;
  points.forEach((p, i) => {
    const v = value(p);
    if (v === null || v === undefined || !Number.isFinite(v)) return;
    if (best < 0 || (lower ? v < bestValue : v > bestValue)) {
      best = i;
      bestValue = v;
    }
  });
  return best;
}

/**
 * At most `max` steps and `max` evaluations of a history. Kept whatever the budget: the first and
 * the last point, the best (lowest training loss; highest validation ROC AUC) and the points on both
 * sides of every change marker. Markers are all kept.
 */
export function thinHistory(history: HistoryView, max: number): HistoryView {
  return {
    steps: selectPoints(
      history.steps,
      max,
      bestIndex(history.steps, (p) => p.loss, true),
      history.markers,
    ),
    evals: selectPoints(
      history.evals,
      max,
      bestIndex(history.evals, (e) => e.rocAuc, false),
      history.markers,
    ),
    markers: [...history.markers],
  };
}

export class RunHistory {
  private constructor(private readonly data: HistoryView) {}

  static empty(): RunHistory {
    return new RunHistory({ steps: [], evals: [], markers: [] });
  }

  /** Reads a serialized history (throws a bad-input error naming what is wrong). */
  static deserialize(value: unknown): RunHistory {
    const bad = (what: string) =>
      new VulnLabError(
        'bad-input',
        `The run's saved curves are damaged: ${what}.`,
        'Start the run again, or resume from an earlier copy of its checkpoint.',
      );
    const object = (v: unknown, what: string) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} is not an object`);
      return v as Record<string, unknown>;
    };
    const list = (v: unknown, what: string) => {
      if (!Array.isArray(v)) throw bad(`${what} is not a list`);
      return v as unknown[];
    };
    // JSON stores NaN and ±Infinity as null: non-finite values come back as NaN.
    const num = (v: unknown, what: string) => {
      if (typeof v === 'number') return v;
      if (v === null) return NaN;
      throw bad(`${what} is ${JSON.stringify(v) ?? String(v)}`);
    };
    const integer = (v: unknown, what: string) => {
      if (!Number.isInteger(v) || (v as number) < 0)
        throw bad(`${what} is ${JSON.stringify(v) ?? String(v)}`);
      return v as number;
    };
    const nullable = (v: unknown, what: string) => (v === null ? null : num(v, what));
    const points = (v: unknown, what: string) =>
      list(v, what).map((p, i) => {
        const o = object(p, `${what}[${i}]`);
        return { x: num(o.x, `${what}[${i}].x`), y: num(o.y, `${what}[${i}].y`) };
      });
    const root = object(value, 'the history');
    const steps = list(root.steps, 'steps').map((s, i) => {
      const o = object(s, `steps[${i}]`);
      const at = (key: string) => num(o[key], `steps[${i}].${key}`);
      return {
        step: integer(o.step, `steps[${i}].step`),
        epoch: integer(o.epoch, `steps[${i}].epoch`),
        loss: at('loss'),
        lr: at('lr'),
        gradNorm: at('gradNorm'),
        tokensPerSecond: at('tokensPerSecond'),
      };
    });
    const evals = list(root.evals, 'evals').map((e, i) => {
      const o = object(e, `evals[${i}]`);
      const what = `evals[${i}]`;
      return {
        step: integer(o.step, `${what}.step`),
        epoch: integer(o.epoch, `${what}.epoch`),
        ...(o.loss !== undefined && { loss: num(o.loss, `${what}.loss`) }),
        rocAuc: nullable(o.rocAuc, `${what}.rocAuc`),
        prAuc: nullable(o.prAuc, `${what}.prAuc`),
        f1: num(o.f1, `${what}.f1`),
        threshold: num(o.threshold, `${what}.threshold`),
        roc: points(o.roc, `${what}.roc`),
        pr: points(o.pr, `${what}.pr`),
      };
    });
    const markers = list(root.markers, 'markers').map((m, i) => {
      const o = object(m, `markers[${i}]`);
      if (typeof o.path !== 'string') throw bad(`markers[${i}].path is not a string`);
      return { step: integer(o.step, `markers[${i}].step`), path: o.path, value: o.value };
    });
    for (const [name, series] of [
      ['steps', steps],
      ['evals', evals],
    ] as const) {
      if (series.some((p, i) => i > 0 && p.step < series[i - 1].step)) throw bad(`${name} are out of order`);
    }
    return new RunHistory({ steps, evals, markers });
  }

  /** Adds what a run event brings to the curves (steps, validation evaluations, changes). */
  record(event: RunEvent): void {
    if (event.type === 'step') {
      const { step, epoch, loss, lr, gradNorm, tokensPerSecond } = event;
      this.data.steps.push({ step, epoch, loss, lr, gradNorm, tokensPerSecond });
    } else if (event.type === 'eval' && event.split === 'validation') {
      this.data.evals.push({
        step: event.step,
        epoch: event.epoch,
        loss: event.loss,
        rocAuc: event.metrics.rocAuc,
        prAuc: event.metrics.prAuc,
        f1: event.metrics.atThreshold.f1,
        threshold: event.threshold,
        roc: thinCurve(event.metrics.roc, EVAL_CURVE_POINTS),
        pr: thinCurve(event.metrics.pr, EVAL_CURVE_POINTS),
      });
    } else if (event.type === 'change') {
      this.data.markers.push({ step: event.step, path: event.path, value: event.value });
    }
  }

  get size(): { steps: number; evals: number; markers: number } {
    return {
      steps: this.data.steps.length,
      evals: this.data.evals.length,
      markers: this.data.markers.length,
    };
  }

  /** Every point (full precision), as a copy. */
  view(): HistoryView {
    return { steps: [...this.data.steps], evals: [...this.data.evals], markers: [...this.data.markers] };
  }

  /** At most `max` steps and evaluations; see thinHistory for what is always kept. */
  thin(max: number): HistoryView {
    return thinHistory(this.data, max);
  }

  /** A JSON-safe deep copy (what a checkpoint stores). */
  serialize(): SerializedHistory {
    return JSON.parse(JSON.stringify(this.data)) as SerializedHistory;
  }
}
