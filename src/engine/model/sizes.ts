/**
 * Size arithmetic of the model with no GPU in it: parameter counts and the multi-query attention
 * backward's head groups and workspace. The GPU model (`gpt-bigcode.ts`), the attention kernels, the
 * loaders and the memory planner (`memory-plan.ts`) share these; the page bundles them through the
 * model presets (`io/presets.ts`), so this module imports only the config and types: no GPU context,
 * kernel, shader or loader (a lint rule and tests/build/main-chunk.test.ts hold the page to that).
 */
import type { AttentionShape } from '../reference/attention.ts';
import { baseParamSpecs, ConfigError, numel, type ResolvedConfig } from './config.ts';

export interface AttentionKernelShape extends AttentionShape {
  /** Tokens in the flattened batch (packs × pack length). */
  T: number;
}

/** Total parameter count of a config (for presets and messages): the base model, no score head or LoRA. */
export function parameterCount(config: ResolvedConfig): number {
  return baseParamSpecs(config, false).reduce((s, p) => s + numel(p.shape), 0);
}

/** Bytes of the dK/dV partials workspace: [headGroups, T, 2·hd] f32 (0 when no workspace is needed). */
export function attentionPartialsBytes(shape: AttentionKernelShape, headGroups: number): number {
  return shape.multiQuery && headGroups > 1 ? headGroups * shape.T * 2 * shape.headDim * 4 : 0;
}

/**
 * Head groups for the multi-query dK/dV pass so that it has about `targetWorkgroups` units of work,
 * counting key tiles of 16 rows (each group repeats the tile's K/V rows and adds a reduce pass, so
 * few groups are best on CPU drivers; more help a GPU fill its cores). 1 for multi-head attention.
 */
export function suggestHeadGroups(shape: AttentionKernelShape, targetWorkgroups = 1024): number {
  if (!shape.multiQuery) return 1;
  const keyTiles = Math.ceil(shape.T / 16);
  return Math.max(1, Math.min(shape.nHead, Math.floor(targetWorkgroups / keyTiles)));
}

/** Head groups of the multi-query dK/dV pass: 'auto' → suggestHeadGroups, clamped to [1, n_head]. */
export function resolveHeadGroups(groups: number | 'auto', shape: AttentionKernelShape): number {
  if (!shape.multiQuery) return 1;
  if (groups === 'auto') return suggestHeadGroups(shape);
  if (!Number.isInteger(groups) || groups < 1 || groups > shape.nHead) {
    throw new ConfigError(`attentionHeadGroups must be an integer in [1, ${shape.nHead}] (got ${groups}).`);
  }
  return groups;
}
