/**
 * What the page selects from a run's history (the worker's RunHistory, thinned there): chart
 * markers, the latest step, and the curves a finished run keeps. Nothing here thins or records.
 */
import type { HistoryMarker, HistoryView } from '../../train/history.ts';
import { formatValue } from '../format.ts';
import type { FinishedRun, LiveRun } from './types.ts';

export const EMPTY_HISTORY: HistoryView = { steps: [], evals: [], markers: [] };

export const shortName = (path: string) => path.split('.').pop() ?? path;

/** e.g. "lr → 5e-4". */
export const markerLabel = (m: HistoryMarker) => `${shortName(m.path)} → ${formatValue(m.value)}`;

/** The charts' markers: every change in the history, and the step a resumed run continued from. */
export function chartMarkers(history: HistoryView, resumedAt?: number): LiveRun['markers'] {
  const markers = history.markers.map((m) => ({ step: m.step, label: markerLabel(m) }));
  if (resumedAt) markers.push({ step: resumedAt, label: 'resumed' });
  return markers.sort((a, b) => a.step - b.step);
}

/** The latest step of a live run: the last one to arrive, else the last restored from its checkpoint. */
export function latestStep(
  live: Pick<LiveRun, 'arrivals' | 'history'>,
): { step: number; loss: number } | undefined {
  const arrived = live.arrivals[live.arrivals.length - 1];
  const restored = live.history.steps[live.history.steps.length - 1];
  if (!arrived || !restored) return arrived ?? restored;
  return arrived.step >= restored.step ? arrived : restored;
}

/** The curves a finished run keeps (persisted): its loss per step, validation ROC AUC and loss. */
export function finishedCurves(history: HistoryView): Pick<FinishedRun, 'loss' | 'evals'> {
  return {
    loss: history.steps.map((p) => ({ step: p.step, loss: p.loss })),
    evals: history.evals.map((e) => ({ step: e.step, rocAuc: e.rocAuc, loss: e.loss })),
  };
}
