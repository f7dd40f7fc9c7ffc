/**
 * Size arithmetic of the model with no GPU in it: parameter counts, the attention's K/V head layout
 * and the dK/dV pass's head groups and workspace. The GPU model (`decoder-gpu.ts`, `train-step.ts`),
 * the attention kernels, the loaders and the memory planner (`memory-plan.ts`) share these; the page
 * bundles them through the model presets (`io/presets.ts`), so this module imports only the config and
 * types: no GPU context, kernel, shader or loader (a lint rule and tests/build/main-chunk.test.ts hold
 * the page to that).
 */
import { ShapeError } from '../errors.ts';
import type { AttentionShape } from '../reference/attention.ts';
import { ConfigError, numel } from './config.ts';
import { baseParamSpecs, type ModelConfig } from './decoder.ts';

export interface AttentionKernelShape extends AttentionShape {
  /** Tokens in the flattened batch (packs × pack length). */
  T: number;
}

/** Total parameter count of a config (for presets and messages): the base model, no score head or LoRA. */
export function parameterCount(config: ModelConfig): number {
  return baseParamSpecs(config, false).reduce((s, p) => s + numel(p.shape), 0);
}

/**
 * K/V heads of the grouped layout [Q | K | V] (multi-query: 1), or 0 for GPT-BigCode's interleaved
 * multi-head layout (multiQuery false, no kvHeads). Throws unless kvHeads divides nHead (and is 1
 * with multiQuery).
 */
export function attentionKvHeads(shape: AttentionShape): number {
  const { nHead, kvHeads, multiQuery } = shape;
  if (kvHeads === undefined) return multiQuery ? 1 : 0;
  if (!Number.isInteger(kvHeads) || kvHeads < 1 || nHead % kvHeads !== 0 || (multiQuery && kvHeads !== 1)) {
    throw new ShapeError(
      `attention: kvHeads ${kvHeads} must divide n_head ${nHead}${multiQuery ? ' and be 1 with multiQuery' : ''}`,
    );
  }
  return kvHeads;
}

/** Query heads per K/V head (1 for the interleaved multi-head layout). */
export function attentionGroupSize(shape: AttentionShape): number {
  const kv = attentionKvHeads(shape);
  return kv === 0 ? 1 : shape.nHead / kv;
}

/**
 * Bytes of the dK/dV partials workspace: [headGroups, T, 2·kvHeads·hd] f32 (0 when no workspace is
 * needed: one head group, or the interleaved layout).
 */
export function attentionPartialsBytes(shape: AttentionKernelShape, headGroups: number): number {
  const kv = attentionKvHeads(shape);
  return kv > 0 && headGroups > 1 ? headGroups * shape.T * 2 * kv * shape.headDim * 4 : 0;
}

/**
 * Head groups for the dK/dV pass of the grouped layout (multi-query, grouped-query): each K/V head's
 * query heads are split into this many groups, so that the pass has about `targetWorkgroups` units of
 * work, counting key tiles of 16 rows × K/V heads (each group repeats the tile's K/V rows and adds a
 * reduce pass, so few groups are best on CPU drivers; more help a GPU fill its cores). 1 for the
 * interleaved layout. At most the query heads per K/V head.
 */
export function suggestHeadGroups(shape: AttentionKernelShape, targetWorkgroups = 1024): number {
  const kv = attentionKvHeads(shape);
  if (kv === 0) return 1;
  const units = Math.ceil(shape.T / 16) * kv;
  return Math.max(1, Math.min(shape.nHead / kv, Math.floor(targetWorkgroups / units)));
}

/** Head groups of the dK/dV pass: 'auto' → suggestHeadGroups, else in [1, query heads per K/V head]. */
export function resolveHeadGroups(groups: number | 'auto', shape: AttentionKernelShape): number {
  if (attentionKvHeads(shape) === 0) return 1;
  if (groups === 'auto') return suggestHeadGroups(shape);
  const max = attentionGroupSize(shape);
  if (!Number.isInteger(groups) || groups < 1 || groups > max) {
    throw new ConfigError(`attentionHeadGroups must be an integer in [1, ${max}] (got ${groups}).`);
  }
  return groups;
}
