/**
 * The types a training run shares with the modules it uses (batches, checkpoints, exports, uploads,
 * detectors, data preparation, recipes): the model and data a run takes, its events and its result,
 * and its error. They live here, not in run.ts, so that those modules need not import run.ts back
 * (run.ts imports them); run.ts re-exports them for its users.
 */
import { VulnLabError } from '../shared/errors.ts';
import type { ModelConfig } from '../engine/index.ts';
import type { WeightCache } from '../io/cache.ts';
import type { ModelFiles } from '../io/files.ts';
import type { ProgressCallback } from '../io/progress.ts';
import type { EvalMetrics, ScoredExample } from './evaluate.ts';

export interface RunModel {
  /** "demo", a Hub id or a folder: recorded in exports. */
  name: string;
  /** GPT-BigCode's config or a Llama family's (describeDecoder gives its width, vocabulary, context…). */
  config: ModelConfig;
  /** Base weights by Hugging Face name (f32 values); empty when they stream from `files`. */
  weights: ReadonlyMap<string, ArrayLike<number>>;
  /** Set for models too large to keep in memory: every upload streams the checkpoint (upload.ts). */
  files?: { files: ModelFiles; onProgress?: ProgressCallback; cache?: WeightCache };
  /** Token that separates packed functions (EOS). */
  separatorId: number;
  padId: number;
}

export interface RunExample {
  tokens: Int32Array;
  label: 0 | 1;
  weight: number;
  cwe?: string;
  exampleIndex: number;
}

export interface RunData {
  train: RunExample[];
  validation: RunExample[];
  test: RunExample[];
  /** Next-token objective: examples are prompts, answered by these tokens (prepare.ts NTP_PROMPT). */
  answers?: NtpAnswers;
}

/** Token ids of the answers " YES" (vulnerable) and " NO". */
export interface NtpAnswers {
  yes: number;
  no: number;
}

export type EvalSplit = 'validation' | 'test';

export type RunEvent =
  | {
      type: 'started';
      totalSteps: number;
      stepsPerEpoch: number;
      trainFunctions: number;
      wastedShare: number;
      /** Steps already done when the run was resumed from a checkpoint (0 for a new run). */
      resumedAt: number;
    }
  | {
      type: 'step';
      step: number;
      epoch: number;
      loss: number;
      lr: number;
      gradNorm: number;
      tokensPerSecond: number;
      examplesPerSecond: number;
      gpuBytes: number;
      elapsedMs: number;
    }
  | {
      type: 'eval';
      step: number;
      epoch: number;
      split: EvalSplit;
      metrics: EvalMetrics;
      threshold: number;
      /** The training loss (focal/CE with the run's weights; next-token: on the answer) on this split. */
      loss: number;
    }
  | { type: 'change'; step: number; path: string; value: unknown }
  | { type: 'checkpoint'; step: number; epoch: number }
  | { type: 'warning'; step: number; message: string }
  | { type: 'state'; step: number; state: RunState; reason?: string };

export type RunState = 'running' | 'paused' | 'stopped' | 'finished';

export interface RunResult {
  steps: number;
  bestStep: number;
  threshold: number;
  validation: EvalMetrics;
  test: EvalMetrics;
  scores: { split: EvalSplit; examples: ScoredExample[] }[];
  /** Trainable tensors of the best evaluation (by validation ROC AUC). */
  trainables: Map<string, Float32Array>;
  throughput: { tokensPerSecond: number; examplesPerSecond: number; trainMs: number };
  history: RunHistoryEntry[];
}

/** A setting changed during a run, with the optimizer step from which it applied. */
export interface RunHistoryEntry {
  step: number;
  path: string;
  value: unknown;
}

export class RunError extends VulnLabError {
  constructor(message: string, hint: string) {
    super('bad-input', message, hint);
  }
}
