import { create } from 'zustand';
import { persist, type PersistStorage, type StorageValue } from 'zustand/middleware';
import { EngineClient, EngineError } from '../worker/client.ts';
import type {
  AdapterSummary,
  DataSource,
  DatasetInfo,
  EngineEvent,
  EvalMetrics,
  ImportedAdapterInfo,
  ModelInfo,
  ModelSource,
  RunConfig,
  RunSummary,
  SavedHistory,
  SavedRun,
  SelftestResult,
  SerializedError,
  SplitOptions,
} from '../worker/protocol.ts';
import type { FieldMapping } from '../data/fields.ts';
import type { LoadProgress } from '../io/progress.ts';
import {
  configForModel,
  defaultConfig,
  FIELDS,
  getField,
  resolveConfig,
  withField,
} from '../train/config.ts';
import { findPreset } from '../io/presets.ts';
import type { RunEvent, RunState } from '../train/run.ts';
import { isQuotaError } from './errors.tsx';
import { configDiff, deepMerge } from './share.ts';
import { formatValue } from './format.ts';

export const PANELS = ['model', 'data', 'train', 'results', 'scan'] as const;
export type PanelId = (typeof PANELS)[number];

export type GpuStatus =
  | { state: 'probing' }
  | { state: 'ready'; adapter: AdapterSummary; selftest?: SelftestResult; selftestError?: SerializedError }
  | { state: 'unavailable'; error: SerializedError };

export interface Point {
  x: number;
  y: number;
}

export interface ModelState {
  status: 'none' | 'loading' | 'ready' | 'error';
  /** "demo", a Hub repo id or the picked folder's name. */
  name?: string;
  /** What is being loaded now (the current model stays until it has loaded). */
  loading?: string;
  info?: ModelInfo;
  progress?: LoadProgress;
  error?: SerializedError;
}

export interface DataState {
  status: 'none' | 'loading' | 'ready' | 'error';
  name?: string;
  /** What is being imported now (the current dataset stays until it has been imported). */
  loading?: string;
  info?: DatasetInfo;
  progress?: { stage: 'import' | 'tokenize'; done: number; total?: number };
  error?: SerializedError;
  /** The files of the last import (kept in memory to re-import with another field mapping). */
  source?: DataSource;
  fields?: Partial<FieldMapping>;
  /** Split options of the last import (undefined: the default, as the CLI splits). */
  split?: SplitOptions;
}

export interface StepPoint {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  /** performance.now() when the step arrived, for the ETA (0 for steps restored from a checkpoint). */
  at: number;
}

export interface EvalPoint {
  step: number;
  epoch: number;
  /** Validation loss (undefined in runs saved before it was recorded). */
  loss?: number;
  rocAuc: number | null;
  prAuc: number | null;
  f1: number;
  threshold: number;
  roc: Point[];
  pr: Point[];
}

export interface LiveRun {
  id: string;
  name: string;
  config: RunConfig;
  phase: 'preparing' | RunState | 'failed';
  reason?: string;
  startedAt: number;
  totalSteps?: number;
  stepsPerEpoch?: number;
  wastedShare?: number;
  trainFunctions?: number;
  steps: StepPoint[];
  evals: EvalPoint[];
  markers: { step: number; label: string }[];
  warnings: { step: number; message: string }[];
  error?: SerializedError;
  /** Id of the finished run in `runs` once it ended. */
  finishedId?: string;
  /** Dataset shown with the run (for a resumed run, the saved one's name). */
  dataset?: string;
  /** Step the run was resumed at (0 or undefined for a run from the start). */
  resumedAt?: number;
  /** The last checkpoint saved in this browser (a reload or a lost device resumes from it). */
  lastCheckpoint?: { step: number; epoch: number };
  /** Why checkpoints stopped being saved (storage full or refused); the run went on. */
  checkpointsOff?: SerializedError;
}

/** Metrics kept of a finished run: everything but the full curves, which are thinned. */
export type MetricsSummary = Omit<EvalMetrics, 'roc' | 'pr'> & { roc: Point[]; pr: Point[] };

export interface HistogramBin {
  from: number;
  to: number;
  vulnerable: number;
  safe: number;
}

/** What survives a reload: summaries and curves, never weights or code. */
export interface FinishedRun {
  id: string;
  name: string;
  finishedAt: number;
  model: string;
  dataset: string;
  config: RunConfig;
  state: RunState;
  steps: number;
  stepsPerEpoch: number;
  bestStep: number;
  threshold: number;
  wastedShare?: number;
  validation: MetricsSummary;
  test: MetricsSummary;
  throughput: RunSummary['throughput'];
  /** Training time per epoch in seconds (from the measured step time). */
  secondsPerEpoch: number;
  history: RunSummary['history'];
  loss: { step: number; loss: number }[];
  evals: { step: number; rocAuc: number | null }[];
  histogram: { split: 'validation' | 'test'; bins: HistogramBin[] };
}

export interface AblationRow {
  key: 'packed-focal' | 'padded-focal' | 'packed-ce';
  label: string;
  runId?: string;
  status: 'waiting' | 'running' | 'done' | 'failed';
}

export interface Notice {
  id: number;
  kind: 'info' | 'warning' | 'error';
  text: string;
  /** Notices with a tag can be withdrawn together when they no longer apply. */
  tag?: string;
}

/**
 * The classroom demo: 240 steps, an evaluation every 10 so the ROC curve is redrawn as it learns (about 10
 * minutes on SwiftShader, measured; the demo model does not learn the demo set well yet: issue 16).
 */
export const DEMO_CONFIG = {
  model: 'demo',
  trainable: 'all',
  weightFormat: 'f32',
  optimizer: { lr: 1e-3 },
  batching: { packLength: 256, packsPerStep: 4 },
  epochs: 3,
  evalEvery: 10,
} as const;

const MAX_RUNS = 30;
const CURVE_POINTS = 120;

interface LabState {
  panel: PanelId;
  largeType: boolean;
  theme: 'system' | 'light' | 'dark';
  gpu: GpuStatus;
  model: ModelState;
  data: DataState;
  /** The Train panel's settings (also what "Start" runs). */
  draft: RunConfig;
  live?: LiveRun;
  runs: FinishedRun[];
  /** Runs chosen for the Results overlay. */
  selected: string[];
  ablation?: { status: 'running' | 'done' | 'failed'; rows: AblationRow[] };
  demo?: {
    status: 'loading-model' | 'loading-data' | 'training' | 'done' | 'failed';
    error?: SerializedError;
  };
  notices: Notice[];
  storageFull: boolean;
  /** Interrupted runs with a checkpoint in this browser (none that a tab is running). */
  saved: SavedRun[];
  /** An adapter imported in the Scan panel: scans use it instead of the latest run. */
  importedAdapter?: ImportedAdapterInfo;
  setPanel(panel: PanelId): void;
  setLargeType(on: boolean): void;
  setTheme(theme: LabState['theme']): void;
  /** Asks the engine worker for its adapter, then runs the kernel self-test. */
  probeGpu(): Promise<void>;
  loadModel(source: ModelSource, name: string): Promise<boolean>;
  importData(
    source: DataSource,
    name: string,
    fields?: Partial<FieldMapping>,
    split?: SplitOptions,
  ): Promise<boolean>;
  /** Splits the imported dataset again with other options (no re-import). */
  splitData(split?: SplitOptions): Promise<boolean>;
  setDraft(config: RunConfig): void;
  setDraftField(path: string, value: unknown): void;
  startRun(config?: RunConfig, name?: string): Promise<FinishedRun | undefined>;
  controlRun(action: 'pause' | 'resume' | 'stop'): Promise<void>;
  /** Asks the worker which interrupted runs it can resume. */
  refreshSaved(): Promise<void>;
  /** Loads the saved run's model if needed and continues the run from its checkpoint. */
  resumeSaved(runId: string): Promise<FinishedRun | undefined>;
  discardSaved(runId: string): Promise<void>;
  /** Imports a PEFT adapter for scanning; returns the error when it cannot be used. */
  importAdapter(files: File[]): Promise<SerializedError | undefined>;
  /** Scans use the latest run again. */
  clearAdapter(): Promise<void>;
  updateRun(path: string, value: unknown): Promise<SerializedError | undefined>;
  runDemo(overrides?: unknown): Promise<void>;
  runAblations(overrides?: unknown): Promise<void>;
  toggleSelected(id: string): void;
  deleteRun(id: string): void;
  notify(kind: Notice['kind'], text: string, tag?: string): void;
  dismiss(id: number): void;
  dismissTag(tag: string): void;
}

let engine: EngineClient | undefined;
export function engineClient(): EngineClient {
  if (!engine) {
    engine = new EngineClient();
    engine.onEvent(onEngineEvent);
  }
  return engine;
}

export function asSerialized(error: unknown): SerializedError {
  if (error instanceof EngineError) return error.detail;
  return {
    code: 'internal',
    message: error instanceof Error ? error.message : String(error),
    hint: 'Reload the page; if it keeps happening, report it.',
  };
}

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

function thinSeries<T>(values: T[], max: number): T[] {
  if (values.length <= max) return values;
  const stride = (values.length - 1) / (max - 1);
  return Array.from({ length: max }, (_, i) => values[Math.round(i * stride)]);
}

// ---- engine events -------------------------------------------------------------------------------

let stepBuffer: StepPoint[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;

function flushSteps(): void {
  flushTimer = undefined;
  const steps = stepBuffer;
  stepBuffer = [];
  if (!steps.length) return;
  useLab.setState((s) => (s.live ? { live: { ...s.live, steps: [...s.live.steps, ...steps] } } : {}));
}

function onRunEvent(event: RunEvent, runId: string | undefined): void {
  // Events of another run (e.g. one that ended while a resume was being prepared) are not this one's.
  if (runId !== undefined && useLab.getState().live?.id !== runId) return;
  if (event.type === 'step') {
    stepBuffer.push({
      step: event.step,
      epoch: event.epoch,
      loss: event.loss,
      lr: event.lr,
      gradNorm: event.gradNorm,
      tokensPerSecond: event.tokensPerSecond,
      at: performance.now(),
    });
    flushTimer ??= setTimeout(flushSteps, 200);
    return;
  }
  // Anything else is rare: apply the buffered steps first so the order holds.
  flushSteps();
  useLab.setState((s) => {
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
            markers:
              event.resumedAt > 0
                ? [...live.markers, { step: event.resumedAt, label: 'resumed' }]
                : live.markers,
          },
        };
      case 'checkpoint':
        return live.checkpointsOff
          ? {}
          : { live: { ...live, lastCheckpoint: { step: event.step, epoch: event.epoch } } };
      case 'eval':
        if (event.split !== 'validation') return {};
        return {
          live: {
            ...live,
            evals: [
              ...live.evals,
              {
                step: event.step,
                epoch: event.epoch,
                loss: event.loss,
                rocAuc: event.metrics.rocAuc,
                prAuc: event.metrics.prAuc,
                f1: event.metrics.atThreshold.f1,
                threshold: event.threshold,
                roc: toPoints(event.metrics.roc, 200),
                pr: toPoints(event.metrics.pr, 200),
              },
            ],
          },
        };
      case 'change': {
        let config = live.config;
        try {
          config = withField(config, event.path, event.value);
        } catch {
          // keep the old config; the worker accepted the change
        }
        return {
          live: {
            ...live,
            config,
            markers: [
              ...live.markers,
              { step: event.step, label: `${shortName(event.path)} → ${formatValue(event.value)}` },
            ],
          },
        };
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

export const shortName = (path: string) => path.split('.').pop() ?? path;

/** A saved run's charts up to its checkpoint, in the live run's shapes. */
export function restoredCharts(history: SavedHistory): Pick<LiveRun, 'steps' | 'evals' | 'markers'> {
  return {
    steps: history.steps.map((p) => ({ ...p, at: 0 })),
    evals: history.evals.map((e) => ({ ...e })),
    markers: history.markers.map((m) => ({
      step: m.step,
      label: `${shortName(m.path)} → ${formatValue(m.value)}`,
    })),
  };
}

function onEngineEvent(event: EngineEvent): void {
  if (event.kind === 'run') onRunEvent(event.event, event.runId);
  else if (event.kind === 'run-restored') {
    flushSteps();
    useLab.setState((s) =>
      s.live?.id === event.runId ? { live: { ...s.live, ...restoredCharts(event.history) } } : {},
    );
  } else if (event.kind === 'checkpoints-off') {
    useLab.setState((s) =>
      s.live?.id === event.runId ? { live: { ...s.live, checkpointsOff: event.error } } : {},
    );
  } else if (event.kind === 'model-progress')
    useLab.setState((s) => ({ model: { ...s.model, progress: event.progress } }));
  else if (event.kind === 'data-progress')
    useLab.setState((s) => ({
      data: { ...s.data, progress: { stage: event.stage, done: event.done, total: event.total } },
    }));
}

/**
 * The draft for a newly loaded model, layered as the CLI layers a config: the paper's defaults, then
 * the model preset's own (the demo model wants a higher learning rate), then what the user changed
 * from the paper's defaults — so the same settings give the same run in the lab and on the CLI.
 */
export function draftForModel(draft: RunConfig, model: string): RunConfig {
  const defaults = findPreset(model)?.runDefaults;
  const config = { ...draft, model };
  if (!defaults) return config;
  try {
    return configForModel(defaults, configDiff(config));
  } catch {
    return config;
  }
}

/** The context the quality report counts truncation against: the run's pack, within the model's. */
function previewContext(draft: RunConfig, model: ModelState): number {
  return Math.min(draft.batching.packLength, model.info?.config.n_positions ?? draft.batching.packLength);
}

// ---- runs ----------------------------------------------------------------------------------------

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
    loss: thinSeries(
      (live?.steps ?? []).map((p) => ({ step: p.step, loss: p.loss })),
      200,
    ),
    evals: (live?.evals ?? []).map((e) => ({ step: e.step, rocAuc: e.rocAuc })),
    histogram: scoreHistogram(summary),
  };
}

/** Waits for a started or resumed run to end; keeps its result, or its error, in the store. */
async function followRun(id: string, request: () => Promise<RunSummary>): Promise<FinishedRun | undefined> {
  let summary: RunSummary;
  try {
    summary = await request();
  } catch (error) {
    flushSteps();
    useLab.setState((s) =>
      s.live?.id === id ? { live: { ...s.live, phase: 'failed', error: asSerialized(error) } } : {},
    );
    // A run that failed after a checkpoint (a lost device, a crash) can be resumed from it.
    void useLab.getState().refreshSaved();
    return undefined;
  }
  flushSteps();
  const state = useLab.getState();
  const live = state.live?.id === id ? state.live : undefined;
  const run = finishedRun(
    id,
    live?.name ?? id,
    live,
    summary,
    state.model.name ?? live?.config.model ?? '',
    live?.dataset ?? state.data.name ?? '',
  );
  useLab.setState((s) => ({
    runs: [...s.runs.filter((r) => r.id !== id), run].slice(-MAX_RUNS),
    selected: [...s.selected.filter((x) => x !== id), id].slice(-6),
    live: s.live?.id === id ? { ...s.live, phase: run.state, finishedId: id } : s.live,
    // The worker deleted the finished run's checkpoint.
    saved: s.saved.filter((r) => r.runId !== id),
  }));
  // The newest detector is the one scans use: a run that ends replaces an imported adapter.
  if (useLab.getState().importedAdapter) void useLab.getState().clearAdapter();
  return run;
}

// ---- persistence ---------------------------------------------------------------------------------

type Persisted = Pick<LabState, 'runs' | 'selected' | 'largeType' | 'theme'>;
let lastSaved: Persisted | undefined;

function writeItem(name: string, value: StorageValue<Persisted>): void {
  try {
    localStorage.setItem(name, JSON.stringify(value));
    return;
  } catch (error) {
    if (!isQuotaError(error)) throw error;
  }
  // Quota full: drop the oldest runs until it fits rather than losing everything.
  const runs = [...value.state.runs];
  let dropped = 0;
  while (runs.length > 0) {
    runs.shift();
    dropped++;
    try {
      localStorage.setItem(name, JSON.stringify({ ...value, state: { ...value.state, runs } }));
      break;
    } catch (error) {
      if (!isQuotaError(error)) throw error;
    }
  }
  onStorageFull(dropped);
}

/**
 * localStorage, written only when a persisted field changed (persist calls setItem on every state
 * change, and a run changes the state several times a second).
 */
const storage: PersistStorage<Persisted> = {
  getItem(name) {
    const text = localStorage.getItem(name);
    if (!text) return null;
    try {
      return JSON.parse(text) as StorageValue<Persisted>;
    } catch {
      return null;
    }
  },
  removeItem: (name) => localStorage.removeItem(name),
  setItem(name, value) {
    const s = value.state;
    if (
      lastSaved &&
      lastSaved.runs === s.runs &&
      lastSaved.selected === s.selected &&
      lastSaved.largeType === s.largeType &&
      lastSaved.theme === s.theme
    )
      return;
    lastSaved = s;
    writeItem(name, value);
  },
};

let noticeId = 1;

export const useLab = create<LabState>()(
  persist(
    (set, get) => ({
      panel: 'model',
      largeType: false,
      theme: 'system',
      gpu: { state: 'probing' },
      model: { status: 'none' },
      data: { status: 'none' },
      draft: defaultConfig(),
      runs: [],
      selected: [],
      notices: [],
      storageFull: false,
      saved: [],
      setPanel: (panel) => set({ panel }),
      setLargeType: (largeType) => set({ largeType }),
      setTheme: (theme) => set({ theme }),
      async probeGpu() {
        set({ gpu: { state: 'probing' } });
        let adapter: AdapterSummary;
        try {
          adapter = await engineClient().request({ type: 'probe' });
        } catch (error) {
          set({ gpu: { state: 'unavailable', error: asSerialized(error) } });
          return;
        }
        set({ gpu: { state: 'ready', adapter } });
        try {
          const selftest = await engineClient().request({ type: 'selftest' });
          set({ gpu: { state: 'ready', adapter, selftest } });
        } catch (error) {
          set({ gpu: { state: 'ready', adapter, selftestError: asSerialized(error) } });
        }
      },
      async loadModel(source, name) {
        // The worker keeps its current model until a new one has loaded, and so does the page.
        set((s) => ({
          model: { ...s.model, status: 'loading', loading: name, progress: undefined, error: undefined },
        }));
        try {
          const info = await engineClient().request({ type: 'loadModel', source });
          const loaded = source.kind === 'files' ? info.name : name;
          const before = get().draft;
          const draft = draftForModel(before, loaded);
          set((s) => ({
            model: { status: 'ready', name: loaded, info, progress: s.model.progress },
            draft,
            // The worker dropped an imported adapter: it was set up on the previous model.
            importedAdapter: undefined,
          }));
          const changed = FIELDS.filter(
            (f) =>
              f.path !== 'model' &&
              JSON.stringify(getField(draft, f.path)) !== JSON.stringify(getField(before, f.path)),
          );
          if (changed.length) {
            get().notify(
              'info',
              `${loaded}'s own defaults are set in the Train panel (as on the command line): ${changed
                .map((f) => `${shortName(f.path)} ${formatValue(getField(draft, f.path))}`)
                .join(', ')}.`,
            );
          }
          return true;
        } catch (error) {
          set((s) => ({
            model: {
              ...s.model,
              status: s.model.info ? 'ready' : 'error',
              loading: undefined,
              error: asSerialized(error),
            },
          }));
          return false;
        }
      },
      async importData(source, name, fields, split) {
        set((s) => ({
          data: { ...s.data, status: 'loading', loading: name, progress: undefined, error: undefined },
        }));
        const { draft, model } = get();
        try {
          const info = await engineClient().request({
            type: 'importData',
            source,
            fields,
            // The default split is shown with the run's seed, as a run (and the CLI) will make it.
            split: split ?? { strategy: 'auto', seed: draft.seed },
            contextLength: previewContext(draft, model),
          });
          set({ data: { status: 'ready', name: info.name || name, info, source, fields, split } });
          return true;
        } catch (error) {
          set((s) => ({
            data: {
              ...s.data,
              status: s.data.info ? 'ready' : 'error',
              loading: undefined,
              error: asSerialized(error),
            },
          }));
          return false;
        }
      },
      async splitData(split) {
        const { draft, model } = get();
        try {
          const info = await engineClient().request({
            type: 'splitData',
            split: split ?? { strategy: 'auto', seed: draft.seed },
            contextLength: previewContext(draft, model),
          });
          set((s) => ({ data: { ...s.data, info, split, error: undefined } }));
          return true;
        } catch (error) {
          set((s) => ({ data: { ...s.data, error: asSerialized(error) } }));
          return false;
        }
      },
      setDraft: (draft) => set({ draft }),
      setDraftField(path, value) {
        set((s) => ({ draft: withField(s.draft, path, value) }));
      },
      async startRun(configArg, nameArg) {
        const live = get().live;
        if (live && (live.phase === 'running' || live.phase === 'paused' || live.phase === 'preparing')) {
          get().notify('warning', 'A run is already going: stop it before starting another.');
          return undefined;
        }
        const config = { ...(configArg ?? get().draft), model: get().model.name ?? get().draft.model };
        const id = `run-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e4)}`;
        const name =
          nameArg ??
          `${config.batching.mode} · ${config.loss.kind} · lr ${formatValue(config.optimizer.lr)} · ${new Date().toLocaleTimeString()}`;
        stepBuffer = [];
        set({
          live: {
            id,
            name,
            config,
            phase: 'preparing',
            startedAt: Date.now(),
            steps: [],
            evals: [],
            markers: [],
            warnings: [],
            dataset: get().data.name,
          },
        });
        return followRun(id, () => engineClient().request({ type: 'startRun', config, runId: id, name }));
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
          live: {
            id: runId,
            name: saved.name,
            config: saved.config,
            phase: 'preparing',
            startedAt: Date.now(),
            steps: [],
            evals: [],
            markers: [],
            warnings: [],
            dataset: saved.dataset,
            resumedAt: saved.step,
            lastCheckpoint: { step: saved.step, epoch: saved.epoch },
            totalSteps: saved.totalSteps,
          },
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
        return followRun(runId, () => engineClient().request({ type: 'resumeRun', runId }));
      },
      async importAdapter(files) {
        try {
          const importedAdapter = await engineClient().request({ type: 'importAdapter', files });
          set({ importedAdapter });
          return undefined;
        } catch (error) {
          return asSerialized(error);
        }
      },
      async clearAdapter() {
        await engineClient()
          .request({ type: 'clearAdapter' })
          .catch(() => undefined);
        set({ importedAdapter: undefined });
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
      async runDemo(overrides) {
        set({ demo: { status: 'loading-model' }, panel: 'train' });
        const fail = (error?: SerializedError) => set({ demo: { status: 'failed', error } });
        if (get().model.status !== 'ready' || get().model.name !== 'demo') {
          if (!(await get().loadModel({ kind: 'demo' }, 'demo'))) {
            fail(get().model.error);
            return;
          }
        }
        set({ demo: { status: 'loading-data' } });
        if (get().data.status !== 'ready' || get().data.name !== 'demo dataset') {
          if (!(await get().importData({ kind: 'demo' }, 'demo dataset'))) {
            fail(get().data.error);
            return;
          }
        }
        let config: RunConfig;
        try {
          config = resolveConfig(deepMerge(structuredClone(DEMO_CONFIG), overrides ?? {}));
        } catch (error) {
          {
            fail(asSerialized(error));
            return;
          }
        }
        set({ demo: { status: 'training' }, draft: config });
        const run = await get().startRun(config, 'classroom demo · packed · focal');
        if (run) set({ demo: { status: 'done' } });
        else fail(get().live?.error);
        return;
      },
      async runAblations(overrides) {
        const rows: AblationRow[] = [
          { key: 'packed-focal', label: 'packed sequences · focal loss', status: 'waiting' },
          { key: 'padded-focal', label: 'padded (one function per row) · focal loss', status: 'waiting' },
          { key: 'packed-ce', label: 'packed sequences · cross-entropy', status: 'waiting' },
        ];
        set({ ablation: { status: 'running', rows }, panel: 'train' });
        const update = (i: number, patch: Partial<AblationRow>) =>
          set((s) =>
            s.ablation
              ? {
                  ablation: {
                    ...s.ablation,
                    rows: s.ablation.rows.map((r, j) => (j === i ? { ...r, ...patch } : r)),
                  },
                }
              : {},
          );
        if (get().model.name !== 'demo' || get().model.status !== 'ready') {
          if (!(await get().loadModel({ kind: 'demo' }, 'demo'))) {
            set({ ablation: { status: 'failed', rows } });
            return;
          }
        }
        if (get().data.name !== 'demo dataset' || get().data.status !== 'ready') {
          if (!(await get().importData({ kind: 'demo' }, 'demo dataset'))) {
            set({ ablation: { status: 'failed', rows } });
            return;
          }
        }
        const variants: Record<AblationRow['key'], unknown> = {
          'packed-focal': { batching: { mode: 'packed' }, loss: { kind: 'focal' } },
          'padded-focal': { batching: { mode: 'padded' }, loss: { kind: 'focal' } },
          'packed-ce': { batching: { mode: 'packed' }, loss: { kind: 'ce' } },
        };
        for (let i = 0; i < rows.length; i++) {
          update(i, { status: 'running' });
          const base = deepMerge(structuredClone(DEMO_CONFIG), overrides ?? {});
          const config = resolveConfig(deepMerge(base, variants[rows[i].key]));
          const run = await get().startRun(config, `ablation · ${rows[i].label}`);
          if (!run) {
            update(i, { status: 'failed' });
            set((s) => (s.ablation ? { ablation: { ...s.ablation, status: 'failed' } } : {}));
            return;
          }
          update(i, { status: 'done', runId: run.id });
        }
        set((s) => ({
          ablation: s.ablation ? { ...s.ablation, status: 'done' } : undefined,
          selected: (s.ablation?.rows ?? []).map((r) => r.runId).filter((x): x is string => !!x),
        }));
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
      notify(kind, text, tag) {
        const id = noticeId++;
        set((s) => ({ notices: [...s.notices.slice(-4), { id, kind, text, tag }] }));
      },
      dismiss: (id) => set((s) => ({ notices: s.notices.filter((n) => n.id !== id) })),
      dismissTag: (tag) => set((s) => ({ notices: s.notices.filter((n) => n.tag !== tag) })),
    }),
    {
      name: 'vulnlab',
      version: 1,
      storage,
      partialize: (s): Persisted => ({
        runs: s.runs,
        selected: s.selected,
        largeType: s.largeType,
        theme: s.theme,
      }),
    },
  ),
);

function onStorageFull(dropped: number): void {
  if (useLab.getState().storageFull) return;
  queueMicrotask(() => {
    useLab.setState({ storageFull: true });
    useLab
      .getState()
      .notify(
        'warning',
        `Browser storage is full: ${dropped} older run${dropped === 1 ? '' : 's'} could not be kept after a reload. Delete runs in Results or export them first.`,
      );
  });
}
