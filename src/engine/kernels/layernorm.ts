import { ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

/** Invocations per workgroup in shaders/layernorm.wgsl (one per row, or per column for dgamma/dbeta). */
const WG = 64;

export interface LayerNormShape {
  /** Rows (tokens). */
  T: number;
  /** Features per row (normalized dimension). */
  C: number;
  /** Added to the variance (GPT-BigCode layer_norm_epsilon, 1e-5). */
  eps?: number;
}

type Buf = GPUBuffer | Binding;

function params(ctx: GpuContext, { T, C, eps = 1e-5 }: LayerNormShape, accumulate: boolean): GPUBuffer {
  if (!(Number.isInteger(T) && Number.isInteger(C) && T >= 0 && C >= 1 && T * C < 2 ** 32)) {
    throw new ShapeError(`layernorm: bad shape ${T}x${C}`);
  }
  const data = new ArrayBuffer(16);
  new Uint32Array(data, 0, 2).set([T, C]);
  new Float32Array(data, 8, 1)[0] = eps;
  new Uint32Array(data, 12, 1)[0] = Number(accumulate);
  return ctx.uniform('layernorm.params', new Uint8Array(data));
}

/** Y = LayerNorm(X)·gamma + beta over rows of X [T, C]; also writes mean [T] and rstd [T] for backward. */
export async function layerNormForward(
  ctx: GpuContext,
  buffers: { x: Buf; gamma: Buf; beta: Buf; y: Buf; mean: Buf; rstd: Buf },
  shape: LayerNormShape,
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('layernorm', { entryPoint: 'forward' });
  const { x, gamma, beta, y, mean, rstd } = buffers;
  return {
    label: `layernorm ${shape.T}x${shape.C}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, false), x, gamma, beta, y, mean, rstd]),
    workgroups: foldWorkgroups(Math.ceil(shape.T / WG)),
  };
}

/**
 * dX from dY, X and the forward's mean/rstd. `accumulate` adds to dX instead of overwriting it
 * (the residual stream's gradient already sitting there).
 */
export async function layerNormBackward(
  ctx: GpuContext,
  buffers: { x: Buf; gamma: Buf; mean: Buf; rstd: Buf; dy: Buf; dx: Buf },
  shape: LayerNormShape,
  { accumulate = false } = {},
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('layernorm', { entryPoint: 'backward' });
  const { x, gamma, mean, rstd, dy, dx } = buffers;
  return {
    label: `layernorm backward ${shape.T}x${shape.C}${accumulate ? ' +=' : ''}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, accumulate), x, gamma, mean, rstd, dy, dx]),
    workgroups: foldWorkgroups(Math.ceil(shape.T / WG)),
  };
}

/**
 * dgamma = Σ_t dY·x̂, dbeta = Σ_t dY (column sums over the T rows), added to the existing values
 * when `accumulate` (micro-batches). Deterministic: fixed summation order, no atomics.
 */
export async function layerNormBackwardParams(
  ctx: GpuContext,
  buffers: { x: Buf; mean: Buf; rstd: Buf; dy: Buf; dgamma: Buf; dbeta: Buf },
  shape: LayerNormShape,
  { accumulate = false } = {},
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('layernorm', { entryPoint: 'backward_params' });
  const { x, mean, rstd, dy, dgamma, dbeta } = buffers;
  return {
    label: `layernorm dgamma/dbeta ${shape.T}x${shape.C}${accumulate ? ' +=' : ''}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, accumulate), x, mean, rstd, dy, dgamma, dbeta]),
    workgroups: foldWorkgroups(Math.ceil(shape.C / WG)),
  };
}
