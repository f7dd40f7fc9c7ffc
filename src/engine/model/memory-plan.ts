/**
 * Estimates the GPU memory of a training step before anything is allocated, so the lab can refuse a
 * configuration (or suggest q4_0, recompute, a shorter pack) instead of failing half-way. The plan
 * mirrors the buffers `DecoderGpu`, `TrainStep` (train-step.ts) and `ModelOptimizer` allocate for any
 * decoder description (decoder.ts) (a GPU test checks
 * the figures against the real allocations on a tiny model):
 * - weights: every parameter buffer — the block linears in `weightFormat` (GGUF block sizes, rows
 *   padded to 32), embeddings, norms, biases, heads and LoRA A/B in f32.
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
import { ConfigError, numel, type LoraTarget } from './config.ts';
import {
  attentionKernelShape,
  baseParamSpecs,
  blockLinears,
  describeDecoder,
  loraParamSpecs,
  qkvWidth,
  trainableSpecs,
  type BlockDesc,
  type ModelConfig,
} from './decoder.ts';
import { attentionPartialsBytes, resolveHeadGroups } from './sizes.ts';

export type { WeightFormat } from '../quant.ts';

export interface MemoryPlanOptions {
  config: ModelConfig;
  weightFormat: WeightFormat;
  /** LoRA rank; 0 for none (only with trainable 'all'). */
  loraRank: number;
  /** Tokens per pack (sequence length). */
  packLength: number;
  packsPerStep: number;
  recompute: boolean;
  trainable: 'lora' | 'all';
  /** LoRA targets; every block linear of the family by default. */
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
  const d = describeDecoder(options.config);
  const { weightFormat, loraRank: r, packLength, packsPerStep, recompute, trainable } = options;
  const targets = [...(options.loraTargets ?? d.loraTargets.filter((t) => t !== 'wte'))];
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
  if (packLength > d.maxPositions) {
    throw new ConfigError(
      `packLength ${packLength} exceeds the model's n_positions ${d.maxPositions}.`,
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
  const config = options.config;
  const lora = r > 0 ? { r, alpha: r, dropout, targets } : null;
  const withScore = objective === 'cls';
  const D = d.width;
  const L = d.blocks.length;
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
  const blockName = (name: string) => name.replace(/^(transformer\.h|model\.layers)\.\d+\./, '');

  // Parameters.
  let weights = 0;
  for (const s of [...baseParamSpecs(config, withScore), ...(lora ? loraParamSpecs(config, lora) : [])]) {
    if (s.kind === 'linear-weight' && weightFormat !== 'f32') {
      weights += consider(alloc(matrixBytes(s.shape[0], s.shape[1], weightFormat)), blockName(s.name));
    } else {
      weights += f32(numel(s.shape), blockName(s.name));
    }
  }
  const trained = trainableSpecs(config, lora, trainable, withScore);
  const trainableParams = trained.reduce((a, s) => a + numel(s.shape), 0);
  const perValue = (options.accumulate ?? 1) > 1 ? 4 : 3; // grad, m, v (+ accumulator)
  const trainableBytes = trained.reduce((a, s) => a + perValue * f32(numel(s.shape)), 0);

  // Activations kept for the backward (train-step.ts blockActivations and its LoRA scratch).
  const normStats = (b: BlockDesc) =>
    (b.norm1.kind === 'layernorm' ? 2 : 1) * f32(T) + (b.norm2.kind === 'layernorm' ? 2 : 1) * f32(T);
  const blockSet = (b: BlockDesc): number => {
    const { attention, mlp } = b;
    return (
      3 * f32(T * D) + // norm1 out, residual mid, norm2 out
      f32(T * attention.nHead * attention.headDim) + // attention out
      normStats(b) +
      f32(T * qkvWidth(attention), 'qkv [T, q/k/v row]') +
      f32(T * attention.nHead) + // log-sum-exp per head
      (mlp.kind === 'gelu' ? 2 : 3) * f32(T * mlp.inner, 'MLP activation [T, intermediate]')
    );
  };
  const loraSite = (b: BlockDesc): number =>
    lora
      ? blockLinears(b)
          .filter((l) => targets.includes(l.target))
          .reduce((a, l) => a + f32(T * r) + (dropout > 0 ? f32(T * l.in) : 0), 0)
      : 0;
  const perBlock = d.blocks.map((b) => blockSet(b) + loraSite(b));
  const activations = L * f32(T * D) + (recompute ? (perBlock[0] ?? 0) : perBlock.reduce((a, b) => a + b, 0));

  // Workspace: inputs, final norm, shared gradient buffers, head (train-step.ts scratch).
  const widest = (pick: (b: BlockDesc) => number) => Math.max(1, ...d.blocks.map(pick));
  const inner = widest((b) => b.mlp.inner);
  let workspace = 2 * f32(T) + f32(4 * T); // ids, positions, mask
  workspace += 2 * f32(T * D) + (d.finalNorm.kind === 'layernorm' ? 2 : 1) * f32(T); // final output, hidden, stats
  workspace += 3 * f32(T * D) + f32(T * widest((b) => b.attention.nHead * b.attention.headDim)); // dX, dHidden, dLn; dAttn
  workspace += f32(T * inner) + f32(T * widest((b) => qkvWidth(b.attention))); // dAct; dQkv
  if (d.blocks.some((b) => b.mlp.kind === 'swiglu')) workspace += 2 * f32(T * inner); // dGate, dUp
  if (d.blocks.some((b) => b.attention.projections.length > 1)) {
    const width = widest((b) => Math.max(...b.attention.projections.map((p) => p.out)));
    workspace += 2 * f32(T * width); // one projection's output and gradient
  }
  workspace += f32(T * Math.max(r, 1)); // LoRA dh
  if (lora && targets.includes('wte')) workspace += f32(T * r) + f32(3 * T + 2); // its h, scatter index
  if (dropout > 0) workspace += f32(T * widest((b) => Math.max(...blockLinears(b).map((l) => l.in))));
  const first = d.blocks[0]?.attention;
  const attnShape = first ? attentionKernelShape(T, first) : null;
  const partials = attnShape
    ? attentionPartialsBytes(attnShape, resolveHeadGroups(options.attentionHeadGroups ?? 'auto', attnShape))
    : 0;
  if (partials > 0) workspace += f32(partials / 4);
  if (objective === 'ntp') {
    workspace += f32(T * d.vocab, 'next-token logits [T, vocab]') + 2 * f32(T) + f32(1);
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
