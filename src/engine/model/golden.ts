/**
 * Typed view of a PyTorch golden case (tests/fixtures/engine/*.json, format in FORMAT.md there): the
 * model, batch, optimizer and expected values, converted to the engine's types. Only parsing lives here;
 * reading the file is the caller's business.
 */
import { BadInputError } from '../errors.ts';
import type { AttentionMode, Objective, PackedBatch, ParamMap } from '../reference/model.ts';
import type { FocalOptions } from '../reference/loss.ts';
import type { LoraConfig, Trainable } from './config.ts';
import type { ModelConfig } from './decoder.ts';

export interface GoldenCase {
  name: string;
  /** GPT-BigCode's config (the cases without model_type) or a Llama family's (`llama_*`, `qwen2_*`, …). */
  config: ModelConfig;
  lora: LoraConfig | null;
  trainable: Trainable;
  objective: Objective;
  focal: FocalOptions;
  mode: AttentionMode;
  params: ParamMap;
  shapes: Map<string, number[]>;
  batch: PackedBatch;
  optimizer: {
    lr: number;
    betas: [number, number];
    eps: number;
    weight_decay: number;
    max_grad_norm: number;
    steps: number;
  };
  expected: {
    loss: number;
    /** cls: [F·2] flat; ntp: [B·L·V] flat. */
    logits: Float64Array;
    lastHiddenState: Float64Array | null;
    /** Trainable names in the fixture's order. */
    trainable: string[];
    grads: ParamMap;
    gradNorm: number;
    steps: { loss: number; grad_norm: number; clipped?: boolean }[];
    paramsAfter: ParamMap;
    ntpLossTokens: number | null;
  };
}

interface RawCase {
  case: string;
  config: ModelConfig;
  lora?: LoraConfig | null;
  trainable: Trainable;
  objective: Objective;
  focal?: { gamma: number; alpha: number | null };
  mode: AttentionMode;
  params: Record<string, { shape: number[]; data: number[] }>;
  batch: {
    input_ids: number[][];
    segment_ids: number[][];
    position_ids: number[][];
    functions: PackedBatch['functions'];
  };
  optimizer: GoldenCase['optimizer'];
  expected: {
    loss: number;
    logits?: number[][];
    ntp_logits_sample?: number[];
    last_hidden_state?: number[];
    grads: Record<string, number[]>;
    grad_norm: number;
    steps: GoldenCase['expected']['steps'];
    params_after: Record<string, number[]>;
    ntp_loss_tokens?: number;
  };
}

const toMap = (record: Record<string, number[]>): ParamMap =>
  new Map(Object.entries(record).map(([k, v]) => [k, Float64Array.from(v)]));

export function parseGoldenCase(json: unknown): GoldenCase {
  const raw = json as RawCase;
  if (!raw || typeof raw !== 'object' || !raw.config || !raw.params || !raw.expected) {
    throw new BadInputError(
      'golden case: not a fixture object (config, params, expected missing)',
      'The golden fixture is damaged or not one the fixture script wrote; regenerate it.',
    );
  }
  const e = raw.expected;
  const logits = raw.objective === 'cls' ? (e.logits ?? []).flat() : (e.ntp_logits_sample ?? []);
  return {
    name: raw.case,
    config: raw.config,
    lora: raw.lora ?? null,
    trainable: raw.trainable,
    objective: raw.objective,
    focal: raw.focal ?? { gamma: 0, alpha: null },
    mode: raw.mode,
    params: new Map(Object.entries(raw.params).map(([k, v]) => [k, Float64Array.from(v.data)])),
    shapes: new Map(Object.entries(raw.params).map(([k, v]) => [k, v.shape])),
    batch: {
      inputIds: raw.batch.input_ids,
      segmentIds: raw.batch.segment_ids,
      positionIds: raw.batch.position_ids,
      functions: raw.batch.functions,
    },
    optimizer: raw.optimizer,
    expected: {
      loss: e.loss,
      logits: Float64Array.from(logits),
      lastHiddenState: e.last_hidden_state ? Float64Array.from(e.last_hidden_state) : null,
      trainable: Object.keys(e.grads),
      grads: toMap(e.grads),
      gradNorm: e.grad_norm,
      steps: e.steps,
      paramsAfter: toMap(e.params_after),
      ntpLossTokens: e.ntp_loss_tokens ?? null,
    },
  };
}
