/**
 * Estimates the GPU memory of a training step before anything is allocated, so the lab can refuse a
 * configuration (or suggest q4_0, recompute, a shorter pack) instead of failing half-way. The plan
 * mirrors the buffers `GptBigCodeGpu`, `TrainStep` and `ModelOptimizer` allocate (a GPU test checks
 * the figures against the real allocations on a tiny model):
 * - weights: every parameter buffer — the four block linears in `weightFormat` (GGUF block sizes, rows
 *   padded to 32), embeddings, norms, biases, score head and LoRA A/B in f32.
 * - trainable: gradient + Adam m + v of every trained value (12 bytes each), + 4 for the gradient
 *   accumulator with `accumulate` > 1 micro-batches per optimizer step.
 * - activations: what the backward reads, per block (input, normed inputs and their mean/rstd, qkv,
 *   attention output and log-sum-exp per head, residual, MLP pre- and post-activation, x·Aᵀ of each
 *   LoRA target). With `recompute` only each block's input is kept plus one shared block's worth.
 * - workspace: the batch inputs, final norm and hidden states, the backward's shared gradient buffers
 *   and the head (logits over the vocabulary for every token with the next-token objective).
 * Attention is flash-style: no T × T score matrix is stored.
 *
 * Plain arithmetic with no GPU, kernel or shader import (the page's presets plan with it; the shared
 * figures of the attention workspace are in ./sizes.ts).
 */
import { bytesPerRow, type WeightFormat } from '../quant.ts';
import {
  ConfigError,
  LINEAR_TARGETS,
  baseParamSpecs,
  linearShape,
  loraParamSpecs,
  numel,
  resolveConfig,
  trainableSpecs,
  type GptBigCodeConfig,
  type LoraTarget,
} from './config.ts';
import { attentionPartialsBytes, resolveHeadGroups } from './sizes.ts';

export type { WeightFormat } from '../quant.ts';

export interface MemoryPlanOptions {
  config: GptBigCodeConfig;
  weightFormat: WeightFormat;
  /** LoRA rank; 0 for none (only with trainable 'all'). */
  loraRank: number;
  /** Tokens per pack (sequence length). */
  packLength: number;
  packsPerStep: number;
  recompute: boolean;
  trainable: 'lora' | 'all';
  /** LoRA targets; all four linears by default. */
  loraTargets?: readonly LoraTarget[];
  /** LoRA dropout > 0 keeps a dropped copy of each adapted input. */
  loraDropout?: number;
  /** 'cls' (score head on last tokens) or 'ntp' (logits over the vocabulary for every token). */
  objective?: 'cls' | 'ntp';
  /** Capacity of functions per step for the cls head; defaults to packsPerStep × 8. */
  functionsPerStep?: number;
  /** Multi-query dK/dV head groups as in TrainStep (workspace [groups, T, 2·head_dim]); 'auto' default. */
  attentionHeadGroups?: number | 'auto';
  /** Micro-batches per optimizer step (ModelOptimizer's `accumulate`); > 1 adds a gradient copy. */
  accumulate?: number;
}

export interface MemoryPlan {
  weights: number;
  trainable: number;
  activations: number;
  workspace: number;
  total: number;
  /** The largest single buffer (must fit maxStorageBufferBindingSize). */
  largestBinding: { bytes: number; what: string };
  /** Number of trained values. */
  trainableParams: number;
}

/** Bytes of a [rows, cols] matrix in a weight format (GGUF rows padded to whole 32-blocks). */
export function matrixBytes(rows: number, cols: number, format: WeightFormat): number {
  return rows * bytesPerRow(format, cols);
}

/** A buffer's allocated size (ctx.createBuffer rounds up to 4 bytes, at least 4). */
const alloc = (bytes: number): number => Math.max(4, Math.ceil(bytes / 4) * 4);

export function planMemory(options: MemoryPlanOptions): MemoryPlan {
  const c = resolveConfig(options.config);
  const { weightFormat, loraRank: r, packLength, packsPerStep, recompute, trainable } = options;
  const targets = [...(options.loraTargets ?? LINEAR_TARGETS)];
  const objective = options.objective ?? 'cls';
  const dropout = options.loraDropout ?? 0;
  if (
    !Number.isInteger(packLength) ||
    packLength <= 0 ||
    !Number.isInteger(packsPerStep) ||
    packsPerStep <= 0
  ) {
    throw new ConfigError(
      `packLength and packsPerStep must be positive integers (got ${packLength}, ${packsPerStep}).`,
    );
  }
  if (packLength > c.n_positions) {
    throw new ConfigError(
      `packLength ${packLength} exceeds the model's n_positions ${c.n_positions}.`,
      'Choose a pack length no longer than the model context.',
    );
  }
  if (trainable === 'all' && weightFormat !== 'f32') {
    throw new ConfigError(
      `Full finetuning needs f32 weights (got ${weightFormat}).`,
      'Use LoRA with quantized weights, or f32 weights for full finetuning.',
    );
  }
  if (!Number.isInteger(r) || r < 0 || (trainable === 'lora' && r === 0)) {
    throw new ConfigError(`loraRank must be a positive integer (got ${r}).`);
  }
  const lora = r > 0 ? { r, alpha: r, dropout, targets } : null;
  const withScore = objective === 'cls';
  const D = c.n_embd;
  const L = c.n_layer;
  const H = c.n_head;
  const Q = c.qkvDim;
  const I = c.n_inner;
  const T = packLength * packsPerStep;
  const F = options.functionsPerStep ?? packsPerStep * 8;
  const largest = { bytes: 0, what: '' };
  const consider = (bytes: number, what: string): number => {
    if (bytes > largest.bytes) {
      largest.bytes = bytes;
      largest.what = what;
    }
    return bytes;
  };
  const f32 = (floats: number, what?: string): number => {
    const bytes = alloc(floats * 4);
    return what ? consider(bytes, what) : bytes;
  };

  // Parameters.
  let weights = 0;
  for (const s of [...baseParamSpecs(c, withScore), ...(lora ? loraParamSpecs(c, lora) : [])]) {
    if (s.kind === 'linear-weight' && weightFormat !== 'f32') {
      weights += consider(
        alloc(matrixBytes(s.shape[0], s.shape[1], weightFormat)),
        s.name.replace(/^transformer\.h\.\d+\./, ''),
      );
    } else {
      weights += f32(numel(s.shape), s.name.replace(/^transformer\.h\.\d+\./, ''));
    }
  }
  const trained = trainableSpecs(c, lora, trainable, withScore);
  const trainableParams = trained.reduce((a, s) => a + numel(s.shape), 0);
  const perValue = (options.accumulate ?? 1) > 1 ? 4 : 3; // grad, m, v (+ accumulator)
  const trainableBytes = trained.reduce((a, s) => a + perValue * f32(numel(s.shape)), 0);

  // Activations kept for the backward.
  const blockSet =
    4 * f32(T * D) + // ln_1 out, attention out, residual mid, ln_2 out
    4 * f32(T) + // mean and rstd of both norms
    f32(T * Q, 'qkv [T, c_attn]') +
    f32(T * H) + // log-sum-exp per head
    2 * f32(T * I, 'MLP activation [T, n_inner]');
  let loraSite = 0;
  if (lora) {
    for (const t of targets) {
      if (t !== 'wte') loraSite += f32(T * r) + (dropout > 0 ? f32(T * linearShape(c, t)[1]) : 0);
    }
  }
  const activations = L * f32(T * D) + (recompute ? blockSet + loraSite : L * (blockSet + loraSite));

  // Workspace: inputs, final norm, shared gradient buffers, head.
  let workspace = 2 * f32(T) + f32(4 * T); // ids, positions, mask
  workspace += 2 * f32(T * D) + 2 * f32(T); // final block output, hidden, ln_f mean/rstd
  workspace += 4 * f32(T * D) + f32(T * I) + f32(T * Q); // dX, dHidden, dAttn, dLn; dAct; dQkv
  workspace += f32(T * Math.max(r, 1)); // LoRA dh
  if (lora && targets.includes('wte')) workspace += f32(T * r) + f32(3 * T + 2); // its h, scatter index
  if (dropout > 0) workspace += f32(T * Math.max(D, I));
  const attnShape = { T, nHead: H, headDim: c.headDim, multiQuery: c.multi_query };
  const partials = attentionPartialsBytes(
    attnShape,
    resolveHeadGroups(options.attentionHeadGroups ?? 'auto', attnShape),
  );
  if (partials > 0) workspace += f32(partials / 4);
  if (objective === 'ntp') {
    workspace += f32(T * c.vocab_size, 'next-token logits [T, vocab]') + 2 * f32(T) + f32(1);
  } else {
    workspace += 3 * f32(F) + f32(T) + 2 * f32(2 * F) + f32(1);
  }

  const total = weights + trainableBytes + activations + workspace;
  return {
    weights,
    trainable: trainableBytes,
    activations,
    workspace,
    total,
    largestBinding: { ...largest },
    trainableParams,
  };
}
