import { ShapeError, UnsupportedError } from '../errors.ts';
import { ceilDiv, type Binding, type Dispatch, type GpuContext } from '../gpu/index.ts';
import {
  maskBufferData,
  validateAttentionMask,
  type AttentionMask,
  type AttentionShape,
} from '../reference/attention.ts';
import { attentionPartialsBytes, type AttentionKernelShape } from '../model/sizes.ts';

// The size arithmetic lives in model/sizes.ts (no GPU there, so the page can plan memory).
export { attentionPartialsBytes, suggestHeadGroups, type AttentionKernelShape } from '../model/sizes.ts';
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

/** Rows per query tile and per key tile (TQ in shaders/attention*.wgsl): the rows of one workgroup. */
export const ATTENTION_TILE = 8;
/** Largest head dimension the kernels accept (MAXD4 vec4s: the rows an invocation keeps privately). */
export const ATTENTION_MAX_HEAD_DIM = 256;
/**
 * Multi-query: query heads per workgroup of the forward and dQ passes (HPW; they share the K/V rows).
 * Fixed, so that every shape uses the same two pipelines (compiling one costs seconds on CPU drivers).
 */
const HEADS_PER_WORKGROUP = 4;

/** Floats per c_attn row: (n_head + 2)·hd for multi-query, 3·n_head·hd otherwise. */
export function qkvWidth(shape: AttentionShape): number {
  return shape.multiQuery ? (shape.nHead + 2) * shape.headDim : 3 * shape.nHead * shape.headDim;
}

function check(ctx: GpuContext, shape: AttentionKernelShape): void {
  const { T, nHead, headDim } = shape;
  for (const [name, v] of Object.entries({ T, nHead, headDim })) {
    if (!Number.isInteger(v) || v < 1)
      throw new ShapeError(`attention: ${name} must be a positive integer, got ${v}`);
  }
  if (headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new UnsupportedError(
      `attention: head_dim ${headDim} > ${ATTENTION_MAX_HEAD_DIM} is not supported`,
      `Pick a model whose attention heads have at most ${ATTENTION_MAX_HEAD_DIM} dimensions.`,
    );
  }
  const maxWg = ctx.adapter.limits.maxComputeWorkgroupsPerDimension;
  if (ceilDiv(T, ATTENTION_TILE) > maxWg || nHead > maxWg) {
    throw new UnsupportedError(
      `attention: T=${T} or n_head=${nHead} exceeds the dispatch limit (${maxWg} workgroups)`,
      'Choose a smaller model or pack length, or a GPU with larger limits.',
    );
  }
}

/** Pipeline constants: the query heads per workgroup (1 for multi-head). */
function constants(shape: AttentionShape): { HPW: number } {
  return { HPW: shape.multiQuery ? HEADS_PER_WORKGROUP : 1 };
}

function params(ctx: GpuContext, shape: AttentionKernelShape, headGroups = 1): GPUBuffer {
  const data = new ArrayBuffer(24);
  new Uint32Array(data, 0, 4).set([shape.T, shape.nHead, shape.headDim, Number(shape.multiQuery)]);
  new Float32Array(data, 16, 1)[0] = 1 / Math.sqrt(shape.headDim);
  new Uint32Array(data, 20, 1)[0] = headGroups;
  return ctx.uniform('attention.params', new Uint8Array(data));
}

export interface AttentionBackwardOptions {
  /**
   * Multi-query only: the dK/dV pass gives each key tile `headGroups` workgroups, each summing a
   * contiguous group of query heads, then a reduce pass adds the groups in order (deterministic).
   * 1 (default): one workgroup per key tile sums every head, no workspace. See suggestHeadGroups.
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

/** Forward: out [T, n_head·hd] and lse [T, n_head] from qkv [T, qkvWidth] (see shaders/attention.wgsl). */
export async function attentionForward(
  ctx: GpuContext,
  qkv: GPUBuffer | Binding,
  mask: GPUBuffer | Binding,
  out: GPUBuffer | Binding,
  lse: GPUBuffer | Binding,
  shape: AttentionKernelShape,
): Promise<Dispatch> {
  check(ctx, shape);
  const c = constants(shape);
  const pipeline = await ctx.pipeline('attention', { entryPoint: 'forward', constants: c });
  const { T, nHead, headDim, multiQuery } = shape;
  return {
    label: `attention.forward T=${T} h=${nHead}x${headDim}${multiQuery ? ' mqa' : ''}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [qkv, mask, out, lse, params(ctx, shape)]),
    workgroups: [ceilDiv(T, ATTENTION_TILE), ceilDiv(nHead, c.HPW), 1],
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
  check(ctx, shape);
  const { T, nHead, headDim, multiQuery } = shape;
  const groups = multiQuery ? (options.headGroups ?? 1) : 1;
  if (!Number.isInteger(groups) || groups < 1 || groups > nHead) {
    throw new ShapeError(`attention: headGroups must be an integer in [1, n_head = ${nHead}], got ${groups}`);
  }
  // Where backward_dkv writes: dqkv itself, or the [groups, T, 2·hd] partials reduced afterwards.
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
  const c = constants(shape);
  const [dq, dkv] = await Promise.all([
    ctx.pipeline('attention_backward', { entryPoint: 'backward_dq', constants: c }),
    ctx.pipeline('attention_backward', { entryPoint: 'backward_dkv' }),
  ]);
  const uniform = params(ctx, shape, groups);
  const tag = `T=${T} h=${nHead}x${headDim}${multiQuery ? ` mqa/${groups}` : ''}`;
  const dispatches: Dispatch[] = [
    {
      label: `attention.backward_dq ${tag}`,
      pipeline: dq,
      bindGroup: ctx.bindGroup(dq, [qkv, mask, out, dOut, lse, dqkv, uniform]),
      workgroups: [ceilDiv(T, ATTENTION_TILE), ceilDiv(nHead, c.HPW), 1],
    },
    {
      label: `attention.backward_dkv ${tag}`,
      pipeline: dkv,
      bindGroup: ctx.bindGroup(dkv, [qkv, mask, out, dOut, lse, dkvTarget, uniform]),
      workgroups: [ceilDiv(T, ATTENTION_TILE), multiQuery ? groups : nHead, 1],
    },
  ];
  if (groups > 1) {
    const reduce = await ctx.pipeline('attention_reduce');
    const count = ceilDiv(T * 2 * headDim, 256);
    const x = Math.min(count, ctx.adapter.limits.maxComputeWorkgroupsPerDimension);
    const reduceParams = ctx.uniform(
      'attention.reduce.params',
      new Uint32Array([T, nHead, headDim, groups, x]),
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
