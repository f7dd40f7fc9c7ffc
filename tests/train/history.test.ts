/** RunHistory: one recorder of a run's curves, thinned for charts and carried in checkpoints. */
import { describe, expect, it } from 'vitest';
import {
  EVAL_CURVE_POINTS,
  RunHistory,
  thinCurve,
  thinHistory,
  thinIndices,
  type HistoryView,
} from '../../src/train/history.ts';
import type { RunEvent } from '../../src/train/run.ts';
import type { EvalMetrics } from '../../src/train/evaluate.ts';

const step = (n: number, loss: number): RunEvent => ({
  type: 'step',
  step: n,
  epoch: 0,
  loss,
  lr: 1e-3,
  gradNorm: 1,
  tokensPerSecond: 100,
  examplesPerSecond: 1,
  gpuBytes: 0,
  elapsedMs: n,
});

const curve = (n: number) => ({
  x: Array.from({ length: n }, (_, i) => i / (n - 1)),
  y: Array.from({ length: n }, (_, i) => Math.sqrt(i / (n - 1))),
});

const evalEvent = (
  n: number,
  rocAuc: number | null,
  split: 'validation' | 'test' = 'validation',
): RunEvent => ({
  type: 'eval',
  step: n,
  epoch: 0,
  split,
  threshold: 0.5,
  loss: 1 / n,
  metrics: {
    rocAuc,
    prAuc: 0.5,
    atThreshold: { f1: 0.4 },
    roc: curve(300),
    pr: curve(3),
  } as unknown as EvalMetrics,
});

/** 1000 steps with a dip at 637, an evaluation every 10 (best at 420), a change at 333 and 777. */
function longHistory(): RunHistory {
  const history = RunHistory.empty();
  for (let n = 1; n <= 1000; n++) {
    if (n === 333) history.record({ type: 'change', step: n, path: 'optimizer.lr', value: 5e-4 });
    if (n === 777) history.record({ type: 'change', step: n, path: 'loss.gamma', value: 1 });
    history.record(step(n, n === 637 ? 0.01 : 2 + Math.sin(n)));
    if (n % 10 === 0) history.record(evalEvent(n, n === 420 ? 0.99 : 0.5 + (n % 7) / 100));
  }
  history.record(evalEvent(1000, 0.3, 'test'));
  history.record({ type: 'checkpoint', step: 1000, epoch: 0 });
  return history;
}

describe('RunHistory', () => {
  it('records steps, validation evaluations (with their loss) and changes, and nothing else', () => {
    const history = longHistory();
    expect(history.size).toEqual({ steps: 1000, evals: 100, markers: 2 });
    const view = history.view();
    expect(view.evals[0]).toMatchObject({ step: 10, loss: 0.1, f1: 0.4, threshold: 0.5, prAuc: 0.5 });
    expect(view.evals[0].roc).toHaveLength(EVAL_CURVE_POINTS);
    expect(view.evals[0].roc[0]).toEqual({ x: 0, y: 0 });
    expect(view.evals[0].roc.at(-1)).toEqual({ x: 1, y: 1 });
    expect(view.evals[0].pr).toHaveLength(3);
    expect(view.markers).toEqual([
      { step: 333, path: 'optimizer.lr', value: 5e-4 },
      { step: 777, path: 'loss.gamma', value: 1 },
    ]);
  });

  it('thins to N points keeping the first, the last, the best and both sides of every change', () => {
    const thinned = longHistory().thin(50);
    const steps = thinned.steps.map((p) => p.step);
    expect(steps).toHaveLength(50);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    for (const kept of [1, 1000, 637, 332, 333, 776, 777]) expect(steps).toContain(kept);
    const evals = thinned.evals.map((e) => e.step);
    expect(evals).toHaveLength(50);
    // Evaluations: first, last, best ROC AUC, and those around the changes.
    for (const kept of [10, 1000, 420, 330, 340, 770, 780]) expect(evals).toContain(kept);
    expect(thinned.markers).toHaveLength(2);
    // The rest is spread over the run, not bunched at one end.
    expect(steps.filter((s) => s > 500).length).toBeGreaterThan(15);
    expect(steps.filter((s) => s <= 500).length).toBeGreaterThan(15);
  });

  it('returns short histories whole, and every marker even past the budget', () => {
    const view: HistoryView = longHistory().view();
    expect(thinHistory(view, 2000).steps).toHaveLength(1000);
    expect(thinIndices(5, 3, [0, 1, 2, 3, 4])).toEqual([0, 1, 2, 3, 4]);
    expect(thinIndices(10, 4, [0, 9])).toEqual([0, 1, 8, 9]);
    expect(thinCurve({ x: [0, 1, 2, 3, 4], y: [0, 1, 2, 3, 4] }, 3)).toEqual([
      { x: 0, y: 0 },
      { x: 2, y: 2 },
      { x: 4, y: 4 },
    ]);
  });

  it('serializes to JSON and back unchanged, non-finite losses included', () => {
    const history = longHistory();
    history.record(step(1001, NaN));
    const json = JSON.stringify(history.serialize());
    const back = RunHistory.deserialize(JSON.parse(json));
    expect(back.view()).toEqual(history.view());
    expect(back.view().steps.at(-1)!.loss).toBeNaN();
    // A copy: recording into one leaves the other alone.
    back.record(step(1002, 1));
    expect(history.size.steps).toBe(1001);
  });

  it('reads a history saved before validation loss was recorded', () => {
    const old = { steps: [], evals: [{ ...longHistory().view().evals[0], loss: undefined }], markers: [] };
    const back = RunHistory.deserialize(JSON.parse(JSON.stringify(old)));
    expect(back.view().evals[0].loss).toBeUndefined();
  });

  it('refuses damaged input, saying what is wrong', () => {
    const good = longHistory().serialize();
    expect(() => RunHistory.deserialize(null)).toThrow(/history is not an object/);
    expect(() => RunHistory.deserialize({ ...good, steps: 'x' })).toThrow(/steps is not a list/);
    const badStep = { ...good, steps: [{ ...good.steps[0], step: -1 }] };
    expect(() => RunHistory.deserialize(badStep)).toThrow(/steps\[0\]\.step is -1/);
    const badLoss = { ...good, evals: [{ ...good.evals[0], loss: 'high' }] };
    expect(() => RunHistory.deserialize(badLoss)).toThrow(/evals\[0\]\.loss is "high"/);
    const reversed = { ...good, steps: [...good.steps].reverse() };
    expect(() => RunHistory.deserialize(reversed)).toThrow(/steps are out of order/);
  });
});
