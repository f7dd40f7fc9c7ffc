/**
 * RMSNorm (Hugging Face `LlamaRMSNorm`: Llama, Qwen2) over the rows of X [T, C], computed in f32:
 *   forward:  Y = x̂·weight, x̂ = X·rstd, rstd = 1/sqrt(mean(X²) + eps)   (no mean subtraction, no bias)
 *   backward: dX = rstd·(g − x̂·mean(g·x̂)), g = dY·weight;  dweight = Σ_t dY·x̂
 * The forward saves rstd [T] so the backward need not recompute the row sums of squares.
 * Float64 reference: src/engine/reference/rmsnorm.ts.
 */
import { ShapeError } from '../errors.ts';
import type { KernelSet } from '../gpu/context.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

/**
 * The shader of each kernel set, its rows per workgroup (forward, backward) and columns per workgroup
 * (dweight), as layernorm's: 'cpu' one thread per row (per column for dweight) in workgroups of 64,
 * barrier-free (shaders/rmsnorm.wgsl); 'gpu' one 128-thread workgroup per row and one workgroup per 32
 * columns, the sums done by workgroup-memory tree reductions (shaders/rmsnorm_rows.wgsl). Both compute
 * the same function (same bindings and entry points) against the same float64 reference.
 */
const VARIANTS: Record<KernelSet, { shader: string; rows: number; cols: number; label: string }> = {
  cpu: { shader: 'rmsnorm', rows: 64, cols: 64, label: '' },
  gpu: { shader: 'rmsnorm_rows', rows: 1, cols: 32, label: ' rows' },
};

export interface RmsNormShape {
  /** Rows (tokens). */
  T: number;
  /** Features per row (normalized dimension); the weight has C elements. */
  C: number;
  /** Added to mean(X²): Llama `rms_norm_eps` (1e-5 or 1e-6 by model; Qwen2 1e-6). Default 1e-6. */
  eps?: number;
  /** The kernel variant; default `ctx.kernels` (chosen per adapter). */
  kernels?: KernelSet;
}

type Buf = GPUBuffer | Binding;

function params(ctx: GpuContext, { T, C, eps = 1e-6 }: RmsNormShape, accumulate: boolean): GPUBuffer {
  if (!(Number.isInteger(T) && Number.isInteger(C) && T >= 0 && C >= 1 && T * C < 2 ** 32)) {
    throw new ShapeError(`rmsnorm: bad shape ${T}x${C}`);
  }
  // eps must be representable and non-negative: a negative eps can make mean(X²) + eps ≤ 0 (NaN rstd).
  if (!(Number.isFinite(eps) && eps >= 0)) throw new ShapeError(`rmsnorm: bad eps ${eps}`);
  const data = new ArrayBuffer(16);
  new Uint32Array(data, 0, 2).set([T, C]);
  new Float32Array(data, 8, 1)[0] = eps;
  new Uint32Array(data, 12, 1)[0] = Number(accumulate);
  return ctx.uniform('rmsnorm.params', new Uint8Array(data));
}

/** Y = RMSNorm(X)·weight over rows of X [T, C]; also writes rstd [T] for the backward. */
export async function rmsNormForward(
  ctx: GpuContext,
  buffers: { x: Buf; weight: Buf; y: Buf; rstd: Buf },
  shape: RmsNormShape,
): Promise<Dispatch> {
  const variant = VARIANTS[shape.kernels ?? ctx.kernels];
  const pipeline = await ctx.pipeline(variant.shader, { entryPoint: 'forward' });
  const { x, weight, y, rstd } = buffers;
  return {
    label: `rmsnorm ${shape.T}x${shape.C}${variant.label}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, false), x, weight, y, rstd]),
    workgroups: foldWorkgroups(Math.ceil(shape.T / variant.rows)),
  };
}

/**
 * dX from dY, X and the forward's rstd. `accumulate` adds to dX instead of overwriting it (the
 * residual stream's gradient already sitting there).
 */
export async function rmsNormBackward(
  ctx: GpuContext,
  buffers: { x: Buf; weight: Buf; rstd: Buf; dy: Buf; dx: Buf },
  shape: RmsNormShape,
  { accumulate = false } = {},
): Promise<Dispatch> {
  const variant = VARIANTS[shape.kernels ?? ctx.kernels];
  const pipeline = await ctx.pipeline(variant.shader, { entryPoint: 'backward' });
  const { x, weight, rstd, dy, dx } = buffers;
  return {
    label: `rmsnorm backward ${shape.T}x${shape.C}${accumulate ? ' +=' : ''}${variant.label}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, accumulate), x, weight, rstd, dy, dx]),
    workgroups: foldWorkgroups(Math.ceil(shape.T / variant.rows)),
  };
}

/**
 * dweight = Σ_t dY·x̂ (column sums over the T rows), added to the existing values when `accumulate`
 * (micro-batches). Deterministic: fixed summation order, no atomics.
 */
export async function rmsNormBackwardParams(
  ctx: GpuContext,
  buffers: { x: Buf; rstd: Buf; dy: Buf; dweight: Buf },
  shape: RmsNormShape,
  { accumulate = false } = {},
): Promise<Dispatch> {
  const variant = VARIANTS[shape.kernels ?? ctx.kernels];
  const pipeline = await ctx.pipeline(variant.shader, { entryPoint: 'backward_params' });
  const { x, rstd, dy, dweight } = buffers;
  return {
    label: `rmsnorm dweight ${shape.T}x${shape.C}${accumulate ? ' +=' : ''}${variant.label}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, accumulate), x, rstd, dy, dweight]),
    workgroups: foldWorkgroups(Math.ceil(shape.C / variant.cols)),
  };
}
