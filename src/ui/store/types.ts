/** The lab's state: what each part of the store holds, and the actions it offers. */
import type { StoreApi } from 'zustand';
import type {
  AdapterSummary,
  DataSource,
  DatasetInfo,
  EvalMetrics,
  HistoryView,
  ImportedAdapterInfo,
  ModelInfo,
  ModelSource,
  RunConfig,
  RunSummary,
  SavedRun,
  SelftestResult,
  SerializedError,
  SplitOptions,
} from '../../worker/protocol.ts';
import type { FieldMapping } from '../../data/fields.ts';
import type { LoadProgress } from '../../io/progress.ts';
import type { HistoryEval } from '../../train/history.ts';
import type { RunState } from '../../train/run.ts';

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

/** A step as the live run's status and ETA use it: performance.now() when it arrived. */
export interface StepArrival {
  step: number;
  loss: number;
  at: number;
}

/** An evaluation on a live run's charts (validation loss undefined in runs saved before it was recorded). */
export type EvalPoint = HistoryEval;

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
  /** The run's curves as the worker's RunHistory sends them (thinned there; from step 1 when resumed). */
  history: HistoryView;
  /** The last steps as they arrived (for the ETA and the status line). */
  arrivals: StepArrival[];
  /** Chart markers, selected from the history's changes (and the resume step). */
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
  /** Validation ROC AUC and loss per evaluation (loss absent in runs kept before it was recorded). */
  evals: { step: number; rocAuc: number | null; loss?: number }[];
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

export interface LabState {
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

/** What the parts of the store get to read and change it. */
export interface LabApi {
  set: StoreApi<LabState>['setState'];
  get: () => LabState;
}
