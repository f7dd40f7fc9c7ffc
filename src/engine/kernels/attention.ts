import { ShapeError, UnsupportedError } from '../errors.ts';
import type { KernelSet } from '../gpu/context.ts';
import { ceilDiv, type Binding, type Dispatch, type GpuContext } from '../gpu/index.ts';
import {
  maskBufferData,
  validateAttentionMask,
  type AttentionMask,
  type AttentionShape,
} from '../reference/attention.ts';
import {
  attentionGroupSize,
  attentionKvHeads,
  attentionPartialsBytes,
  type AttentionKernelShape,
} from '../model/sizes.ts';

// The size arithmetic lives in model/sizes.ts (no GPU there, so the page can plan memory).
export {
  attentionGroupSize,
  attentionKvHeads,
  attentionPartialsBytes,
  suggestHeadGroups,
  type AttentionKernelShape,
} from '../model/sizes.ts';
export {
  attentionWork,
  buildAttentionMask,
  segmentIdsFromLengths,
  validateAttentionMask,
  type AttentionMask,
  type AttentionMode,
  type AttentionShape,
  type AttentionWork,
} from '../reference/attention.ts';

/** 'cpu' set: rows per query tile and per key tile (TQ in shaders/attention*.wgsl): one workgroup's rows. */
export const ATTENTION_TILE = 8;
/**
 * 'gpu' set (shaders/attention_flash*.wgsl): rows per workgroup (R: query rows, or keys in the dK/dV
 * pass), each row served by FLASH_THREADS_PER_ROW threads that split its head dimension.
 */
export const FLASH_ROWS = 16;
const FLASH_THREADS_PER_ROW = 4;
/** Staged tile lengths (BK) the flash shaders are built for, largest first. */
const FLASH_TILES = [16, 8, 4] as const;
/**
 * Largest head dimension the kernels accept: 'cpu' MAXD4 = 64 vec4s per row an invocation keeps
 * privately; 'gpu' NC = 16 vec4s per thread, a quarter of the row.
 */
export const ATTENTION_MAX_HEAD_DIM = 256;
/**
 * 'cpu' set, shared K/V (multi-query, grouped-query): query heads per workgroup of the forward and dQ
 * passes (HPW; heads of one K/V head's group, they share its rows) ('gpu': FlashTiles.headsPerWorkgroup).
 * Fixed, so that every shape uses the same two pipelines (compiling one costs seconds on CPU drivers).
 */
const HEADS_PER_WORKGROUP = 4;

/**
 * Floats per c_attn row: (n_head + 2·kvHeads)·hd for the grouped layout (multi-query: kvHeads 1),
 * 3·n_head·hd for GPT-BigCode's interleaved multi-head layout.
 */
export function qkvWidth(shape: AttentionShape): number {
  const kv = attentionKvHeads(shape);
  return (kv > 0 ? shape.nHead + 2 * kv : 3 * shape.nHead) * shape.headDim;
}

/** Workgroups along y of the forward and dQ passes: per K/V head, its group's heads in chunks of hpw. */
function queryHeadWorkgroups(shape: AttentionShape, hpw: number): number {
  const kv = attentionKvHeads(shape) || shape.nHead;
  return kv * Math.ceil(attentionGroupSize(shape) / hpw);
}

function check(ctx: GpuContext, shape: AttentionKernelShape, rowsPerTile = ATTENTION_TILE): void {
  const { T, nHead, headDim } = shape;
  for (const [name, v] of Object.entries({ T, nHead, headDim })) {
    if (!Number.isInteger(v) || v < 1)
      throw new ShapeError(`attention: ${name} must be a positive integer, got ${v}`);
  }
  attentionKvHeads(shape); // throws unless kvHeads divides nHead
  if (headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new UnsupportedError(
      `attention: head_dim ${headDim} > ${ATTENTION_MAX_HEAD_DIM} is not supported`,
      `Pick a model whose attention heads have at most ${ATTENTION_MAX_HEAD_DIM} dimensions.`,
    );
  }
  const maxWg = ctx.adapter.limits.maxComputeWorkgroupsPerDimension;
  if (ceilDiv(T, rowsPerTile) > maxWg || nHead > maxWg) {
    throw new UnsupportedError(
      `attention: T=${T} or n_head=${nHead} exceeds the dispatch limit (${maxWg} workgroups)`,
      'Choose a smaller model or pack length, or a GPU with larger limits.',
    );
  }
}

/** Pipeline constants: the query heads per workgroup (1 without shared K/V). */
function constants(shape: AttentionShape): { HPW: number } {
  const kv = attentionKvHeads(shape);
  return { HPW: kv === 1 || attentionGroupSize(shape) > 1 ? HEADS_PER_WORKGROUP : 1 };
}

/**
 * The kernels' parameters (Params in shaders/attention*.wgsl): T, n_head, hd, kv_heads (0: the
 * interleaved layout), scale, head_groups, and for the flash shaders hpw (query heads per workgroup;
 * the 'cpu' shaders ignore it).
 */
function params(ctx: GpuContext, shape: AttentionKernelShape, headGroups = 1, hpw = 1): GPUBuffer {
  const data = new ArrayBuffer(32);
  new Uint32Array(data, 0, 4).set([shape.T, shape.nHead, shape.headDim, attentionKvHeads(shape)]);
  new Float32Array(data, 16, 1)[0] = 1 / Math.sqrt(shape.headDim);
  new Uint32Array(data, 20, 2).set([headGroups, hpw]);
  return ctx.uniform('attention.params', new Uint8Array(data));
}

/** The flash kernels' tiles for one shape (see attentionVariant). */
export interface FlashTiles {
  /** vec4s per staged row (D4): ceil(hd / 4) rounded up to 8, 16, 32 or 64. */
  d4: number;
  /** Rows per staged tile (BK) of the forward and of the backward passes. */
  forwardTile: number;
  backwardTile: number;
  /**
   * Query heads per workgroup (hpw): 1, 2 or 4 heads of one K/V head's group (multi-query,
   * grouped-query) sharing each K/V tile; 1 without sharing.
   */
  headsPerWorkgroup: number;
  /** Workgroup memory in bytes of the forward and backward pipelines. */
  forwardBytes: number;
  backwardBytes: number;
}

/** The attention variant a call runs: the requested kernel set, or 'cpu' with the reason. */
export interface AttentionVariant {
  kernels: KernelSet;
  /** 'gpu' only: the flash kernels' tiles. */
  tiles?: FlashTiles;
  /** Set when 'gpu' was asked for but the shape needs the 'cpu' variant: why. */
  fallback?: string;
}

const round16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** Floats per row of the flash shaders' partial-score arrays (PS: BK·C padded by C against bank conflicts). */
const partialRow = (tile: number): number => (tile + 1) * FLASH_THREADS_PER_ROW;

/** Workgroup memory of shaders/attention_flash.wgsl: K and V tiles, partial scores, key flags. */
export function flashForwardBytes(d4: number, tile: number): number {
  return 2 * round16(16 * tile * d4) + round16(4 * FLASH_ROWS * partialRow(tile)) + round16(4 * tile);
}

/**
 * Workgroup memory of shaders/attention_flash_backward.wgsl (the larger of its entry points is at most
 * this): two staged tiles, two partial arrays, the per-row flags, key_start, lse and Δ partials.
 */
export function flashBackwardBytes(d4: number, tile: number): number {
  const C = FLASH_THREADS_PER_ROW;
  const tiles = 2 * round16(16 * tile * d4);
  return (
    tiles + 2 * round16(4 * FLASH_ROWS * partialRow(tile)) + 3 * round16(4 * tile) + round16(4 * tile * C)
  );
}

/**
 * The variant of `kernels` (default ctx.kernels) for `shape`. 'gpu' runs the flash kernels with the
 * largest staged tile (16, 8 or 4 rows) whose workgroup memory fits the adapter's
 * maxComputeWorkgroupStorageSize, separately for forward and backward; when even 4 rows do not fit,
 * both passes fall back to the 'cpu' variant (same layouts and results) and `fallback` says why.
 * hd ≤ 256 needs at most ~10 KiB at 4 rows, so on adapters with WebGPU's guaranteed 16 KiB that
 * does not happen.
 */
export function attentionVariant(
  ctx: Pick<GpuContext, 'kernels' | 'adapter'>,
  shape: AttentionShape,
  kernels: KernelSet = ctx.kernels,
): AttentionVariant {
  if (kernels === 'cpu') return { kernels };
  const limit = ctx.adapter.limits.maxComputeWorkgroupStorageSize;
  const hd4 = Math.ceil(shape.headDim / 4);
  let d4 = 8; // buckets 8, 16, 32, 64: few pipelines (each costs seconds to compile on CPU drivers)
  while (d4 < hd4) d4 *= 2;
  const forwardTile = FLASH_TILES.find((bk) => flashForwardBytes(d4, bk) <= limit);
  const backwardTile = FLASH_TILES.find((bk) => flashBackwardBytes(d4, bk) <= limit);
  if (forwardTile === undefined || backwardTile === undefined) {
    const min = FLASH_TILES[FLASH_TILES.length - 1];
    const need = Math.max(flashForwardBytes(d4, min), flashBackwardBytes(d4, min));
    return {
      kernels: 'cpu',
      fallback:
        `head_dim ${shape.headDim} needs ${need} bytes of workgroup memory for the flash attention tiles ` +
        `(${min} staged rows of ${4 * d4} floats), the adapter allows ${limit}: using the cpu attention`,
    };
  }
  const group = attentionGroupSize(shape);
  const headsPerWorkgroup = group >= 4 ? 4 : group >= 2 ? 2 : 1;
  return {
    kernels,
    tiles: {
      d4,
      forwardTile,
      backwardTile,
      headsPerWorkgroup,
      forwardBytes: flashForwardBytes(d4, forwardTile),
      backwardBytes: flashBackwardBytes(d4, backwardTile),
    },
  };
}

/** The label suffix of a variant: ' flash' for the gpu kernels, the fallback noted for cpu. */
function variantTag(v: AttentionVariant): string {
  if (v.tiles) return ' flash';
  return v.fallback ? ' cpu-fallback' : '';
}

/** The label tag of the head layout: ' mqa', ' gqa<K/V heads>' for the grouped layout, '' interleaved. */
function layoutTag(shape: AttentionShape): string {
  const kv = attentionKvHeads(shape);
  return kv === 0 ? '' : kv === 1 ? ' mqa' : ` gqa${kv}`;
}

export interface AttentionOptions {
  /** The kernel variant; default `ctx.kernels` (chosen per adapter). See attentionVariant. */
  kernels?: KernelSet;
}

export interface AttentionBackwardOptions extends AttentionOptions {
  /**
   * Grouped layout (multi-query, grouped-query) only, in [1, nHead / kvHeads]: the dK/dV pass gives
   * each (key tile, K/V head) `headGroups` workgroups, each summing a contiguous part of the query
   * heads sharing that K/V head, then a reduce pass adds the parts in order (deterministic). 1
   * (default): one workgroup per key tile and K/V head sums its heads, no workspace. Ignored for the
   * interleaved layout. See suggestHeadGroups.
   */
  headGroups?: number;
  /** Workspace of attentionPartialsBytes(shape, headGroups) bytes; required when headGroups > 1. */
  partials?: GPUBuffer | Binding;
}

/** Validates the mask and uploads it as the kernels read it: vec4<i32> per token (segment, key_start, query_end, 0). */
export function uploadAttentionMask(ctx: GpuContext, mask: AttentionMask): Promise<GPUBuffer> {
  validateAttentionMask(mask);
  return ctx.storageFrom('attention.mask', maskBufferData(mask));
}

/**
 * Validates `mask` and writes it into an existing mask buffer (4·T i32), e.g. a new batch of the same
 * shape: the prepared dispatches stay valid because they only bake in T, n_head, hd and the layout.
 */
export function writeAttentionMask(ctx: GpuContext, buffer: GPUBuffer, mask: AttentionMask): void {
  validateAttentionMask(mask);
  if (buffer.size < mask.T * 16)
    throw new ShapeError(`attention mask buffer holds ${buffer.size} bytes, needs ${mask.T * 16}`);
  ctx.write(buffer, maskBufferData(mask));
}

/**
 * Forward: out [T, n_head·hd] and lse [T, n_head] from qkv [T, qkvWidth]: shaders/attention.wgsl
 * ('cpu' set) or shaders/attention_flash.wgsl ('gpu' set), see attentionVariant.
 */
export async function attentionForward(
  ctx: GpuContext,
  qkv: GPUBuffer | Binding,
  mask: GPUBuffer | Binding,
  out: GPUBuffer | Binding,
  lse: GPUBuffer | Binding,
  shape: AttentionKernelShape,
  options: AttentionOptions = {},
): Promise<Dispatch> {
  const variant = attentionVariant(ctx, shape, options.kernels);
  const { T, nHead, headDim } = shape;
  const label = `attention.forward T=${T} h=${nHead}x${headDim}${layoutTag(shape)}${variantTag(variant)}`;
  const { tiles } = variant;
  if (tiles) {
    const hpw = tiles.headsPerWorkgroup;
    check(ctx, shape, FLASH_ROWS / hpw);
    const pipeline = await ctx.pipeline('attention_flash', {
      entryPoint: 'forward',
      constants: { D4: tiles.d4, BK: tiles.forwardTile },
    });
    return {
      label,
      pipeline,
      bindGroup: ctx.bindGroup(pipeline, [qkv, mask, out, lse, params(ctx, shape, 1, hpw)]),
      workgroups: [ceilDiv(T, FLASH_ROWS / hpw), queryHeadWorkgroups(shape, hpw), 1],
    };
  }
  check(ctx, shape);
  const c = constants(shape);
  const pipeline = await ctx.pipeline('attention', { entryPoint: 'forward', constants: c });
  return {
    label,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [qkv, mask, out, lse, params(ctx, shape)]),
    workgroups: [ceilDiv(T, ATTENTION_TILE), queryHeadWorkgroups(shape, c.HPW), 1],
  };
}

/**
 * Backward: writes every element of dqkv [T, qkvWidth] (no clearing needed, no accumulation) from
 * dOut [T, n_head·hd], with the forward's qkv, out and lse. Returns the dispatches to encode in order
 * in one pass: dQ and dK/dV (independent), then with headGroups > 1 the reduce of the partials.
 */
export async function attentionBackward(
  ctx: GpuContext,
  qkv: GPUBuffer | Binding,
  mask: GPUBuffer | Binding,
  out: GPUBuffer | Binding,
  dOut: GPUBuffer | Binding,
  lse: GPUBuffer | Binding,
  dqkv: GPUBuffer | Binding,
  shape: AttentionKernelShape,
  options: AttentionBackwardOptions = {},
): Promise<Dispatch[]> {
  const variant = attentionVariant(ctx, shape, options.kernels);
  const { tiles } = variant;
  const hpw = tiles?.headsPerWorkgroup ?? 1;
  // Rows per query tile (dQ) and per key tile (dK/dV).
  const queryRows = tiles ? FLASH_ROWS / hpw : ATTENTION_TILE;
  const keyRows = tiles ? FLASH_ROWS : ATTENTION_TILE;
  check(ctx, shape, queryRows);
  const { T, nHead, headDim } = shape;
  const kv = attentionKvHeads(shape);
  const groupSize = attentionGroupSize(shape);
  const groups = kv > 0 ? (options.headGroups ?? 1) : 1;
  if (!Number.isInteger(groups) || groups < 1 || groups > groupSize) {
    throw new ShapeError(
      `attention: headGroups must be an integer in [1, query heads per K/V head = ${groupSize}], got ${groups}`,
    );
  }
  // Where backward_dkv writes: dqkv itself, or the [groups, T, 2·kvHeads·hd] partials reduced afterwards.
  let dkvTarget = dqkv;
  if (groups > 1) {
    const need = attentionPartialsBytes(shape, groups);
    const p = options.partials;
    const have = !p ? 0 : 'buffer' in p ? (p.size ?? p.buffer.size - (p.offset ?? 0)) : p.size;
    if (!p || have < need) {
      throw new ShapeError(`attention: headGroups = ${groups} needs a partials workspace of ${need} bytes`);
    }
    dkvTarget = p;
  }
  let dq: GPUComputePipeline;
  let dkv: GPUComputePipeline;
  let dqHeads: number; // query heads per dQ workgroup
  if (tiles) {
    const constants = { D4: tiles.d4, BK: tiles.backwardTile };
    [dq, dkv] = await Promise.all([
      ctx.pipeline('attention_flash_backward', { entryPoint: 'backward_dq', constants }),
      ctx.pipeline('attention_flash_backward', { entryPoint: 'backward_dkv', constants }),
    ]);
    dqHeads = hpw;
  } else {
    const c = constants(shape);
    [dq, dkv] = await Promise.all([
      ctx.pipeline('attention_backward', { entryPoint: 'backward_dq', constants: c }),
      ctx.pipeline('attention_backward', { entryPoint: 'backward_dkv' }),
    ]);
    dqHeads = c.HPW;
  }
  const uniform = params(ctx, shape, groups, hpw);
  const tag = `T=${T} h=${nHead}x${headDim}${layoutTag(shape)}${kv > 0 ? `/${groups}` : ''}${variantTag(variant)}`;
  const dispatches: Dispatch[] = [
    {
      label: `attention.backward_dq ${tag}`,
      pipeline: dq,
      bindGroup: ctx.bindGroup(dq, [qkv, mask, out, dOut, lse, dqkv, uniform]),
      workgroups: [ceilDiv(T, queryRows), queryHeadWorkgroups(shape, dqHeads), 1],
    },
    {
      label: `attention.backward_dkv ${tag}`,
      pipeline: dkv,
      bindGroup: ctx.bindGroup(dkv, [qkv, mask, out, dOut, lse, dkvTarget, uniform]),
      workgroups: [ceilDiv(T, keyRows), (kv || nHead) * groups, 1],
    },
  ];
  if (groups > 1) {
    const reduce = await ctx.pipeline('attention_reduce');
    const count = ceilDiv(T * 2 * kv * headDim, 256);
    const x = Math.min(count, ctx.adapter.limits.maxComputeWorkgroupsPerDimension);
    const reduceParams = ctx.uniform(
      'attention.reduce.params',
      new Uint32Array([T, nHead, headDim, groups, x, kv]),
    );
    dispatches.push({
      label: `attention.backward_reduce ${tag}`,
      pipeline: reduce,
      bindGroup: ctx.bindGroup(reduce, [dkvTarget, dqkv, reduceParams]),
      workgroups: [x, ceilDiv(count, x), 1],
    });
  }
  return dispatches;
}
