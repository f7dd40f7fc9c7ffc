/**
 * The typed protocol between the page (UI) and the engine worker. The UI never touches the GPU;
 * everything it knows about the adapter, the model, the data or a run arrives through these messages.
 * Requests get exactly one response; progress and run events arrive as unsolicited `event` messages.
 */
import type { AdapterSummary } from '../engine/gpu/context.ts';
import type { VulnLabErrorCode } from '../engine/errors.ts';
import type { GptBigCodeConfig } from '../engine/model/config.ts';
import type { FieldMapping } from '../data/fields.ts';
import type { QualityReport } from '../data/quality.ts';
import type { SplitSummary } from '../data/splits.ts';
import type { DatasetFormat, ImportIssue, ImportIssueKind, SplitName } from '../data/types.ts';
import type { LoadProgress } from '../io/progress.ts';
import type { RunConfig } from '../train/config.ts';
import type { EvalMetrics, ScoredExample } from '../train/evaluate.ts';
import type { RunEvent } from '../train/run.ts';

export type { AdapterSummary, RunConfig, RunEvent, EvalMetrics };

export interface SerializedError {
  code: VulnLabErrorCode | 'internal';
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
  config: GptBigCodeConfig;
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
  /** Columns seen in the first tabular file, for manual mapping. */
  issues: ImportIssue[];
  issueCounts: Partial<Record<ImportIssueKind, number>>;
  parseFailures: { file: string; message: string }[];
  quality: QualityReport;
  splits: SplitSummary[];
}

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
}

export interface ScanResult {
  methods: { name: string; line: number; code: string; probability: number }[];
  parseFailures: { file: string; message: string }[];
}

export interface ExportedFile {
  name: string;
  bytes: Uint8Array;
}

type NoFields = Record<never, never>;

/** Request type → [request fields, response]. */
export interface EngineApi {
  probe: [NoFields, AdapterSummary];
  selftest: [NoFields, SelftestResult];
  loadModel: [{ source: ModelSource }, ModelInfo];
  importData: [{ source: DataSource; fields?: Partial<FieldMapping> }, DatasetInfo];
  startRun: [{ config: RunConfig }, RunSummary];
  controlRun: [{ action: 'pause' | 'resume' | 'stop' }, void];
  updateRun: [{ path: string; value: unknown }, void];
  scan: [{ code: string }, ScanResult];
  exportAdapter: [NoFields, ExportedFile[]];
}

export type RequestType = keyof EngineApi;
export type EngineRequest = { [K in RequestType]: { type: K } & EngineApi[K][0] }[RequestType];
export type EngineResponses = { [K in RequestType]: EngineApi[K][1] };

export type EngineEvent =
  | { kind: 'model-progress'; progress: LoadProgress }
  | { kind: 'data-progress'; stage: 'import' | 'tokenize'; done: number; total?: number }
  | { kind: 'run'; event: RunEvent };

export type RequestMessage = EngineRequest & { id: number };

export type ResponseMessage =
  | { id: number; ok: true; result: EngineResponses[RequestType] }
  | { id: number; ok: false; error: SerializedError }
  | { id: 0; event: EngineEvent };
