import { ShapeError } from '../errors.ts';
import type { KernelSet } from '../gpu/context.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

/**
 * The shader of each kernel set, its rows per workgroup (forward, backward) and columns per workgroup
 * (dgamma/dbeta): 'cpu' one thread per row (per column for dgamma/dbeta) in workgroups of 64,
 * barrier-free (shaders/layernorm.wgsl); 'gpu' one 128-thread workgroup per row and one workgroup per
 * 32 columns, the sums done by workgroup-memory tree reductions (shaders/layernorm_rows.wgsl). Both
 * compute the same function (same bindings and entry points) against the same float64 reference.
 */
const VARIANTS: Record<KernelSet, { shader: string; rows: number; cols: number; label: string }> = {
  cpu: { shader: 'layernorm', rows: 64, cols: 64, label: '' },
  gpu: { shader: 'layernorm_rows', rows: 1, cols: 32, label: ' rows' },
};

export interface LayerNormShape {
  /** Rows (tokens). */
  T: number;
  /** Features per row (normalized dimension). */
  C: number;
  /** Added to the variance (GPT-BigCode layer_norm_epsilon, 1e-5). */
  eps?: number;
  /** The kernel variant; default `ctx.kernels` (chosen per adapter). */
  kernels?: KernelSet;
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
  const variant = VARIANTS[shape.kernels ?? ctx.kernels];
  const pipeline = await ctx.pipeline(variant.shader, { entryPoint: 'forward' });
  const { x, gamma, beta, y, mean, rstd } = buffers;
  return {
    label: `layernorm ${shape.T}x${shape.C}${variant.label}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, false), x, gamma, beta, y, mean, rstd]),
    workgroups: foldWorkgroups(Math.ceil(shape.T / variant.rows)),
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
  const variant = VARIANTS[shape.kernels ?? ctx.kernels];
  const pipeline = await ctx.pipeline(variant.shader, { entryPoint: 'backward' });
  const { x, gamma, mean, rstd, dy, dx } = buffers;
  return {
    label: `layernorm backward ${shape.T}x${shape.C}${accumulate ? ' +=' : ''}${variant.label}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, accumulate), x, gamma, mean, rstd, dy, dx]),
    workgroups: foldWorkgroups(Math.ceil(shape.T / variant.rows)),
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
  const variant = VARIANTS[shape.kernels ?? ctx.kernels];
  const pipeline = await ctx.pipeline(variant.shader, { entryPoint: 'backward_params' });
  const { x, mean, rstd, dy, dgamma, dbeta } = buffers;
  return {
    label: `layernorm dgamma/dbeta ${shape.T}x${shape.C}${accumulate ? ' +=' : ''}${variant.label}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, accumulate), x, mean, rstd, dy, dgamma, dbeta]),
    workgroups: foldWorkgroups(Math.ceil(shape.C / variant.cols)),
  };
}
