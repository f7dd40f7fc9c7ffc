/**
 * The typed protocol between the page (UI) and the engine worker. The UI never touches the GPU;
 * everything it knows about the adapter, the model, the data or a run arrives through these messages.
 * Requests get exactly one response; progress and run events arrive as unsolicited `event` messages.
 */
import type { AdapterSummary as EngineAdapterSummary, KernelSet } from '../engine/gpu/context.ts';
import type { VulnLabErrorCode } from '../engine/errors.ts';
import type { ModelConfig } from '../engine/model/decoder.ts';
import type { FieldMapping } from '../data/fields.ts';
import type { QualityReport } from '../data/quality.ts';
import type { GroupKey, SplitFractions, SplitStrategy, SplitSummary } from '../data/splits.ts';
import type { DatasetFormat, ImportIssue, ImportIssueKind, SplitName } from '../data/types.ts';
import type { CachedModelInfo } from '../io/cache.ts';
import type { LoadProgress } from '../io/progress.ts';
import type { RunConfig } from '../train/config.ts';
import type { EvalMetrics, ScoredExample } from '../train/evaluate.ts';
import type { HistoryView, SerializedHistory } from '../train/history.ts';
import type { RunEvent } from '../train/run.ts';
import type { DetectorMetadata } from '../train/onnx/export.ts';
import type { OnnxWeightFormat } from '../train/onnx/weights.ts';

export type { KernelSet, RunConfig, RunEvent, EvalMetrics, HistoryView };

/** The adapter as the lab shows it: the engine's summary plus the kernel set its GPU context uses. */
export interface AdapterSummary extends EngineAdapterSummary {
  kernels: KernelSet;
  /** Whether `kernels` is the adapter's default set ('cpu' on CPU-backed adapters, else 'gpu'). */
  kernelsDefault: boolean;
}

export interface SerializedError {
  /** storage-*: browser storage (checkpoints) failed; the engine's own codes otherwise. */
  code: VulnLabErrorCode | 'internal' | 'storage-full' | 'storage-unavailable';
  message: string;
  hint: string;
}

export interface SelftestResult {
  /** The kernel that ran, e.g. "matmul 33x17x65". */
  kernel: string;
  maxRelError: number;
  ok: boolean;
  ms: number;
}

export type ModelSource =
  | { kind: 'demo' }
  | { kind: 'hub'; repo: string; revision?: string; token?: string }
  | { kind: 'files'; files: File[] };

export interface ModelInfo {
  name: string;
  /** GPT-BigCode's config or a Llama family's (model_type llama, qwen2, starcoder2). */
  config: ModelConfig;
  parameters: number;
  format: string;
  tensors: number;
  vocabSize: number;
}

export type DataSource = { kind: 'demo' } | { kind: 'files'; files: File[] };

export interface DatasetInfo {
  name: string;
  format: DatasetFormat;
  recordCount: number;
  /** First rows as imported (code is plain text; the UI must render it as text). */
  preview: { code: string; label: 0 | 1; cwe?: string; split?: SplitName }[];
  fieldMapping?: Partial<FieldMapping>;
  /** Columns seen in the first tabular file, for manual mapping (absent for .java files). */
  columns?: string[];
  issues: ImportIssue[];
  issueCounts: Partial<Record<ImportIssueKind, number>>;
  parseFailures: { file: string; message: string }[];
  quality: QualityReport;
  splits: SplitSummary[];
  /** How the splits above were made, and what a run will use. */
  split: SplitInfo;
}

/** How the Data panel splits a dataset; the default (`auto`) is what the CLI does. */
export interface SplitOptions {
  strategy: SplitStrategy;
  fractions?: SplitFractions;
  /** For stratified/grouped splits; default: the run's seed (as the CLI). */
  seed?: number;
  groupBy?: GroupKey;
}

export interface SplitInfo {
  strategy: Exclude<SplitStrategy, 'auto'>;
  requested: SplitOptions;
  seed: number;
  groupBy?: GroupKey;
  notes: string[];
  /**
   * true: runs use exactly these splits (the options were chosen by hand). false: the default, the
   * same rule as the CLI (the split field, else a stratified split seeded by the run's seed).
   */
  fixed: boolean;
  /** Functions longer than this many tokens are counted as truncated in the quality report. */
  contextLength: number;
}

/** Where a saved run's base model came from (tokens are never stored). */
export type SavedModelSource =
  { kind: 'demo' } | { kind: 'hub'; repo: string; revision?: string } | { kind: 'files'; name: string };

/** A run interrupted (reload, crash, lost device) with a checkpoint in this browser's storage. */
export interface SavedRun {
  runId: string;
  name: string;
  /** Optimizer steps done at the checkpoint, and the epoch it was in. */
  step: number;
  epoch: number;
  totalSteps?: number;
  /** Date.now() of the checkpoint. */
  savedAt: number;
  model: SavedModelSource;
  /** The model's name as loaded ("demo", a repo id or a folder name). */
  modelName: string;
  dataset: string;
  records: number;
  /** The config the run started with. */
  config: RunConfig;
}

/** A run's curves as the browser's run store keeps them (runs saved before checkpoints carried them). */
export type SavedHistory = SerializedHistory;

/** What the worker keeps of a finished run for the page (weights stay in the worker). */
export interface RunSummary {
  steps: number;
  bestStep: number;
  threshold: number;
  validation: EvalMetrics;
  test: EvalMetrics;
  scores: { split: 'validation' | 'test'; examples: ScoredExample[] }[];
  throughput: { tokensPerSecond: number; examplesPerSecond: number; trainMs: number };
  history: { step: number; path: string; value: unknown }[];
  /** The run's curves from its first step, thinned (first, last, best and change points kept). */
  curves: HistoryView;
}

export interface ScanResult {
  methods: { name: string; line: number; code: string; probability: number }[];
  parseFailures: { file: string; message: string }[];
  /** Methods at or above it are flagged (the threshold its run chose on validation); null: none known. */
  threshold?: number | null;
  /** Which detector scored (the latest run, or an imported adapter). */
  note?: string;
}

/** Token attributions: gradient × input (unsigned) or integrated gradients (signed). */
export type ExplainMethod = 'grad' | 'ig';

/** One method's attributions, for the Scan panel's heat-map (code is plain text: render it as text). */
export interface ExplainedMethod {
  name: string;
  line: number;
  code: string;
  /** logit(vulnerable) − logit(not) at the input: the log-odds of the probability. */
  margin: number;
  /** ig: the margin with every token replaced by padding (the attributions sum to about margin − this). */
  baselineMargin?: number;
  /**
   * `code` cut into consecutive pieces: a token where it sits in the source with its attribution, or
   * text that was not scored (comments or whitespace removed by normalization, code cut by truncation:
   * score null). The pieces joined give `code` back.
   */
  segments: { text: string; score: number | null }[];
  /** Attribution summed per line (0-based within `code`), lines with tokens only. */
  lines: { line: number; weight: number }[];
  /** The strongest positive lines, strongest first, with their share of the total absolute weight. */
  topLines: { line: number; weight: number; share: number }[];
  /** The method was longer than the context and dropped (nothing to show). */
  dropped?: boolean;
}

export interface ExplainResult {
  method: ExplainMethod;
  /** ig: integration steps. */
  steps?: number;
  methods: ExplainedMethod[];
  ms: number;
}

/** A PEFT adapter imported for scanning (base model + adapter on the GPU). */
export interface ImportedAdapterInfo {
  /** The picked folder's name ('' for picked files). */
  name: string;
  /** The model the adapter was trained on, as recorded in it (may be empty). */
  baseModel: string;
  /** The loaded model it scores with. */
  modelName: string;
  r: number;
  alpha: number;
  tensors: number;
  objective: 'cls' | 'ntp';
  /** From vulnlab_detector.json when the adapter came with it. */
  threshold: number | null;
  packLength: number;
  validationRocAuc: number | null;
  /** e.g. the adapter was trained on another base model. */
  warning?: string;
}

export interface ExportedFile {
  name: string;
  bytes: Uint8Array;
}

/** An ONNX export of the latest run: files as Blobs (external weights can be large). */
export interface OnnxExport {
  files: { name: string; blob: Blob }[];
  metadata: DetectorMetadata;
}

/** Converted Hub models kept in this browser, and how much storage the site uses. */
export interface CacheListing {
  models: CachedModelInfo[];
  /** Bytes of interrupted runs' checkpoints (Train panel). */
  checkpointBytes: number;
  /** navigator.storage.estimate(), when the browser gives it. */
  storage?: { usage: number; quota: number };
  /** OPFS or the Cache API; absent when the browser has neither. */
  store?: string;
}

type NoFields = Record<never, never>;

/** Request type → [request fields, response]. */
export interface EngineApi {
  /**
   * The page's first request: creates the GPU context. `kernels` (the lab's `?kernels=cpu|gpu`)
   * overrides the adapter's default kernel set for contexts created from then on.
   */
  probe: [{ kernels?: KernelSet }, AdapterSummary];
  selftest: [NoFields, SelftestResult];
  loadModel: [{ source: ModelSource }, ModelInfo];
  importData: [
    {
      source: DataSource;
      fields?: Partial<FieldMapping>;
      split?: SplitOptions;
      /** Tokens a function may have before it counts as truncated (default: the model's, at most 2048). */
      contextLength?: number;
    },
    DatasetInfo,
  ];
  /** Splits the imported dataset again (other options) without reading its files again. */
  splitData: [{ split?: SplitOptions; contextLength?: number }, DatasetInfo];
  /** `runId` names the run's checkpoint folder and its events; `name`/`dataset` are shown on resume. */
  startRun: [{ config: RunConfig; runId?: string; name?: string }, RunSummary];
  /** Interrupted runs with a checkpoint in this browser (none that another tab is running). */
  listCheckpoints: [NoFields, SavedRun[]];
  /** Continues a saved run from its checkpoint (the model must be loaded, see SavedRun.model). */
  resumeRun: [{ runId: string }, RunSummary];
  deleteCheckpoint: [{ runId: string }, void];
  /** Hub models cached (converted) in this browser, with the storage used and available. */
  listCache: [NoFields, CacheListing];
  deleteCache: [{ key: CachedModelInfo['key'] }, void];
  controlRun: [{ action: 'pause' | 'resume' | 'stop' }, void];
  updateRun: [{ path: string; value: unknown }, void];
  scan: [{ code: string }, ScanResult];
  /**
   * Token attributions of the given methods (as a scan returned them) with the detector scans use:
   * the imported adapter, else the latest run's weights evaluated without LoRA dropout.
   */
  explain: [
    { methods: { name: string; line: number; code: string }[]; method: ExplainMethod; steps?: number },
    ExplainResult,
  ];
  /** Scans use this adapter (files of a PEFT folder, vulnlab_detector.json optional) until cleared. */
  importAdapter: [{ files: File[] }, ImportedAdapterInfo];
  /** Scans use the latest run again. */
  clearAdapter: [NoFields, void];
  exportAdapter: [NoFields, ExportedFile[]];
  exportOnnx: [{ format: OnnxWeightFormat }, OnnxExport];
}

export type RequestType = keyof EngineApi;
export type EngineRequest = { [K in RequestType]: { type: K } & EngineApi[K][0] }[RequestType];
export type EngineResponses = { [K in RequestType]: EngineApi[K][1] };

export type EngineEvent =
  | { kind: 'model-progress'; progress: LoadProgress }
  | { kind: 'data-progress'; stage: 'import' | 'tokenize'; done: number; total?: number }
  | { kind: 'run'; runId?: string; event: RunEvent }
  /**
   * The run's curves so far (its own history, from step 1 for a resumed run), thinned for charts:
   * sent after a resume restored them, then as the run goes. Each replaces the last.
   */
  | { kind: 'run-history'; runId: string; history: HistoryView }
  /** Checkpoints stopped being saved (storage full or refused); the run goes on. */
  | { kind: 'checkpoints-off'; runId: string; error: SerializedError };

export type RequestMessage = EngineRequest & { id: number };

export type ResponseMessage =
  | { id: number; ok: true; result: EngineResponses[RequestType] }
  | { id: number; ok: false; error: SerializedError }
  | { id: 0; event: EngineEvent };
