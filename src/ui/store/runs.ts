/** Runs: the live run (its events and history), finished runs, saved (interrupted) runs. */
import type {
  EngineEvent,
  EvalMetrics,
  ModelSource,
  RunSummary,
  SavedRun,
  SerializedError,
} from '../../worker/protocol.ts';
import { resolveConfig, withField } from '../../train/config.ts';
import type { RunEvent } from '../../train/run.ts';
import { formatValue } from '../format.ts';
import { targetsForModel } from '../loraTargets.ts';
import { chartMarkers, EMPTY_HISTORY, finishedCurves } from './curves.ts';
import { asSerialized, engineClient } from './engine.ts';
import type {
  FinishedRun,
  HistogramBin,
  LabApi,
  LabState,
  LiveRun,
  MetricsSummary,
  Point,
  StepArrival,
} from './types.ts';

const MAX_RUNS = 30;
/** Points kept of a finished run's ROC and PR curves. */
const CURVE_POINTS = 120;

const toPoints = (curve: { x: number[]; y: number[] }, max = CURVE_POINTS): Point[] => {
  const n = curve.x.length;
  if (n <= max) return curve.x.map((x, i) => ({ x, y: curve.y[i] }));
  const stride = (n - 1) / (max - 1);
  return Array.from({ length: max }, (_, i) => {
    const j = Math.round(i * stride);
    return { x: curve.x[j], y: curve.y[j] };
  });
};

function summarizeMetrics(metrics: EvalMetrics): MetricsSummary {
  return { ...metrics, roc: toPoints(metrics.roc), pr: toPoints(metrics.pr) };
}

function scoreHistogram(summary: RunSummary): FinishedRun['histogram'] {
  const entry =
    summary.scores.find((s) => s.split === 'test' && s.examples.length > 0) ??
    summary.scores.find((s) => s.split === 'validation');
  const bins: HistogramBin[] = Array.from({ length: 10 }, (_, i) => ({
    from: i / 10,
    to: (i + 1) / 10,
    vulnerable: 0,
    safe: 0,
  }));
  for (const e of entry?.examples ?? []) {
    const bin = bins[Math.min(9, Math.max(0, Math.floor(e.score * 10)))];
    if (e.label === 1) bin.vulnerable++;
    else bin.safe++;
  }
  return { split: entry?.split ?? 'test', bins };
}

// ---- engine events -------------------------------------------------------------------------------

let stepBuffer: StepArrival[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;

/** The last step arrivals kept (the ETA uses the rate of the last 30 steps). */
const ARRIVALS = 30;

function flushSteps(set: LabApi['set']): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  const steps = stepBuffer;
  stepBuffer = [];
  if (!steps.length) return;
  set((s) =>
    s.live ? { live: { ...s.live, arrivals: [...s.live.arrivals, ...steps].slice(-ARRIVALS) } } : {},
  );
}

function onRunEvent({ set, get }: LabApi, event: RunEvent, runId: string | undefined): void {
  // Events of another run (e.g. one that ended while a resume was being prepared) are not this one's.
  if (runId !== undefined && get().live?.id !== runId) return;
  if (event.type === 'step') {
    stepBuffer.push({ step: event.step, loss: event.loss, at: performance.now() });
    flushTimer ??= setTimeout(() => flushSteps(set), 200);
    return;
  }
  // Anything else is rare: apply the buffered steps first so the order holds.
  flushSteps(set);
  set((s) => {
    const live = s.live;
    if (!live) return {};
    switch (event.type) {
      case 'started':
        return {
          live: {
            ...live,
            totalSteps: event.totalSteps,
            stepsPerEpoch: event.stepsPerEpoch,
            wastedShare: event.wastedShare,
            trainFunctions: event.trainFunctions,
            resumedAt: event.resumedAt,
            markers: chartMarkers(live.history, event.resumedAt),
          },
        };
      case 'checkpoint':
        return live.checkpointsOff
          ? {}
          : { live: { ...live, lastCheckpoint: { step: event.step, epoch: event.epoch } } };
      // Evaluations reach the charts with the run's history (a run-history event right after).
      case 'change': {
        let config = live.config;
        try {
          config = withField(config, event.path, event.value);
        } catch {
          // keep the old config; the worker accepted the change
        }
        // Its marker arrives with the run's history.
        return { live: { ...live, config } };
      }
      case 'warning':
        return {
          live: { ...live, warnings: [...live.warnings, { step: event.step, message: event.message }] },
        };
      case 'state':
        return { live: { ...live, phase: event.state, reason: event.reason } };
    }
    return {};
  });
}

export function onEngineEvent(api: LabApi, event: EngineEvent): void {
  const { set } = api;
  if (event.kind === 'run') onRunEvent(api, event.event, event.runId);
  else if (event.kind === 'run-history') {
    const { history, runId } = event;
    set((s) =>
      s.live?.id === runId
        ? { live: { ...s.live, history, markers: chartMarkers(history, s.live.resumedAt) } }
        : {},
    );
  } else if (event.kind === 'checkpoints-off') {
    set((s) => (s.live?.id === event.runId ? { live: { ...s.live, checkpointsOff: event.error } } : {}));
  } else if (event.kind === 'model-progress')
    set((s) => ({ model: { ...s.model, progress: event.progress } }));
  else if (event.kind === 'data-progress')
    set((s) => ({
      data: { ...s.data, progress: { stage: event.stage, done: event.done, total: event.total } },
    }));
}

/** How to load a saved run's model again; undefined for a folder from this computer (dropped files). */
export function modelSourceOf(saved: Pick<SavedRun, 'model'>): ModelSource | undefined {
  if (saved.model.kind === 'demo') return { kind: 'demo' };
  if (saved.model.kind === 'hub')
    return { kind: 'hub', repo: saved.model.repo, revision: saved.model.revision };
  return undefined;
}

/** What the lab keeps of a run that ended (persisted across reloads). */
export function finishedRun(
  id: string,
  name: string,
  live: LiveRun | undefined,
  summary: RunSummary,
  model: string,
  dataset: string,
): FinishedRun {
  const config = live?.config;
  return {
    id,
    name,
    finishedAt: Date.now(),
    model,
    dataset,
    config: config ?? resolveConfig({}),
    state: live?.phase === 'stopped' ? 'stopped' : 'finished',
    steps: summary.steps,
    stepsPerEpoch: live?.stepsPerEpoch ?? summary.steps,
    bestStep: summary.bestStep,
    threshold: summary.threshold,
    wastedShare: live?.wastedShare,
    validation: summarizeMetrics(summary.validation),
    test: summarizeMetrics(summary.test),
    throughput: summary.throughput,
    secondsPerEpoch:
      summary.steps > 0
        ? (summary.throughput.trainMs / 1000 / summary.steps) * (live?.stepsPerEpoch ?? summary.steps)
        : 0,
    history: summary.history,
    // The worker's history of the run, thinned there (from step 1 for a resumed run).
    ...finishedCurves(summary.curves),
    histogram: scoreHistogram(summary),
  };
}

/** Waits for a started or resumed run to end; keeps its result, or its error, in the store. */
export async function followRun(
  { set, get }: LabApi,
  id: string,
  request: () => Promise<RunSummary>,
): Promise<FinishedRun | undefined> {
  let summary: RunSummary;
  try {
    summary = await request();
  } catch (error) {
    flushSteps(set);
    set((s) =>
      s.live?.id === id ? { live: { ...s.live, phase: 'failed', error: asSerialized(error) } } : {},
    );
    // A run that failed after a checkpoint (a lost device, a crash) can be resumed from it.
    void get().refreshSaved();
    return undefined;
  }
  flushSteps(set);
  const state = get();
  const live = state.live?.id === id ? state.live : undefined;
  const run = finishedRun(
    id,
    live?.name ?? id,
    live,
    summary,
    state.model.name ?? live?.config.model ?? '',
    live?.dataset ?? state.data.name ?? '',
  );
  set((s) => ({
    runs: [...s.runs.filter((r) => r.id !== id), run].slice(-MAX_RUNS),
    selected: [...s.selected.filter((x) => x !== id), id].slice(-6),
    live: s.live?.id === id ? { ...s.live, phase: run.state, finishedId: id } : s.live,
    // The worker deleted the finished run's checkpoint.
    saved: s.saved.filter((r) => r.runId !== id),
  }));
  // The newest detector is the one scans use: a run that ends replaces an imported adapter.
  if (get().importedAdapter) void get().clearAdapter();
  return run;
}

/** A run as it starts or resumes: preparing, no curves, arrivals, markers or warnings yet. */
function preparingRun(
  run: Pick<LiveRun, 'id' | 'name' | 'config'> &
    Partial<Pick<LiveRun, 'dataset' | 'resumedAt' | 'lastCheckpoint' | 'totalSteps'>>,
): LiveRun {
  return {
    ...run,
    phase: 'preparing',
    startedAt: Date.now(),
    history: EMPTY_HISTORY,
    arrivals: [],
    markers: [],
    warnings: [],
  };
}

export function runsSlice({
  set,
  get,
}: LabApi): Pick<
  LabState,
  | 'startRun'
  | 'controlRun'
  | 'refreshSaved'
  | 'resumeSaved'
  | 'discardSaved'
  | 'updateRun'
  | 'toggleSelected'
  | 'deleteRun'
> {
  return {
    async startRun(configArg, nameArg) {
      const live = get().live;
      if (live && (live.phase === 'running' || live.phase === 'paused' || live.phase === 'preparing')) {
        get().notify('warning', 'A run is already going: stop it before starting another.');
        return undefined;
      }
      const requested = { ...(configArg ?? get().draft), model: get().model.name ?? get().draft.model };
      // Never another family's targets silently: the run records the model's own, and says so.
      const { config, message } = targetsForModel(requested, get().model.info?.config, requested.model);
      if (message) get().notify('warning', message, 'lora-targets');
      const id = `run-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e4)}`;
      const name =
        nameArg ??
        `${config.batching.mode} · ${config.loss.kind} · lr ${formatValue(config.optimizer.lr)} · ${new Date().toLocaleTimeString()}`;
      stepBuffer = [];
      set({
        live: preparingRun({ id, name, config, dataset: get().data.name }),
      });
      return followRun({ set, get }, id, () =>
        engineClient().request({ type: 'startRun', config, runId: id, name }),
      );
    },
    async refreshSaved() {
      try {
        const saved = await engineClient().request({ type: 'listCheckpoints' });
        set({ saved });
      } catch {
        // Listing is a convenience: without it the lab works as before.
      }
    },
    async resumeSaved(runId) {
      const live = get().live;
      if (live && (live.phase === 'running' || live.phase === 'paused' || live.phase === 'preparing')) {
        get().notify('warning', 'A run is already going: stop it before resuming another.');
        return undefined;
      }
      const saved = get().saved.find((r) => r.runId === runId);
      if (!saved) return undefined;
      get().dismissTag('interrupted');
      stepBuffer = [];
      set({
        live: preparingRun({
          id: runId,
          name: saved.name,
          config: saved.config,
          dataset: saved.dataset,
          resumedAt: saved.step,
          lastCheckpoint: { step: saved.step, epoch: saved.epoch },
          totalSteps: saved.totalSteps,
        }),
        panel: 'train',
      });
      const fail = (error: SerializedError) => {
        set((s) => (s.live?.id === runId ? { live: { ...s.live, phase: 'failed', error } } : {}));
        return undefined;
      };
      // The run continues on its own model: load it unless it is the one loaded now.
      if (get().model.status !== 'ready' || get().model.name !== saved.modelName) {
        const source = modelSourceOf(saved);
        if (!source) {
          return fail({
            code: 'bad-input',
            message: `This run trained ${saved.modelName}, a model folder from this computer, which is not loaded now.`,
            hint: `Pick the same folder (${saved.modelName}) in the Model panel, then press Resume again.`,
          });
        }
        if (!(await get().loadModel(source, saved.modelName))) {
          return fail(
            get().model.error ?? {
              code: 'internal',
              message: `${saved.modelName} could not be loaded.`,
              hint: 'Load it in the Model panel, then press Resume again.',
            },
          );
        }
      }
      return followRun({ set, get }, runId, () => engineClient().request({ type: 'resumeRun', runId }));
    },
    async discardSaved(runId) {
      try {
        await engineClient().request({ type: 'deleteCheckpoint', runId });
      } catch (error) {
        const e = asSerialized(error);
        get().notify('error', `The saved run could not be removed: ${e.message} ${e.hint}`);
      }
      set((s) => ({ saved: s.saved.filter((r) => r.runId !== runId) }));
      if (!get().saved.length) get().dismissTag('interrupted');
    },
    async controlRun(action) {
      try {
        await engineClient().request({ type: 'controlRun', action });
      } catch (error) {
        const e = asSerialized(error);
        get().notify('error', `${action} failed: ${e.message} ${e.hint}`);
      }
    },
    async updateRun(path, value) {
      try {
        await engineClient().request({ type: 'updateRun', path, value });
        return undefined;
      } catch (error) {
        return asSerialized(error);
      }
    },
    toggleSelected: (id) =>
      set((s) => ({
        selected: s.selected.includes(id) ? s.selected.filter((x) => x !== id) : [...s.selected, id],
      })),
    deleteRun: (id) =>
      set((s) => ({
        runs: s.runs.filter((r) => r.id !== id),
        selected: s.selected.filter((x) => x !== id),
      })),
  };
}
