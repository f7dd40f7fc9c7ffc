import { ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

export interface BiasShape {
  /** Rows (tokens). */
  T: number;
  /** Columns (features); the bias has C elements. */
  C: number;
}

function params(ctx: GpuContext, { T, C }: BiasShape, accumulate: boolean): GPUBuffer {
  if (!(T >= 0 && C >= 1 && T * C < 2 ** 32)) throw new ShapeError(`bias: bad shape ${T}x${C}`);
  return ctx.uniform('bias.params', new Uint32Array([T, C, Number(accumulate), 0]));
}

/** Forward, in place: Y[t, c] += b[c] for Y [T, C]. */
export async function biasForward(
  ctx: GpuContext,
  y: GPUBuffer | Binding,
  b: GPUBuffer | Binding,
  shape: BiasShape,
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('bias', { entryPoint: 'forward' });
  return {
    label: `bias ${shape.T}x${shape.C}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, false), y, b]),
    workgroups: foldWorkgroups(Math.ceil((shape.T * shape.C) / 256)),
  };
}

/** Backward: db[c] = Σ_t dY[t, c], added to db when `accumulate` (micro-batches). Deterministic. */
export async function biasBackward(
  ctx: GpuContext,
  dy: GPUBuffer | Binding,
  db: GPUBuffer | Binding,
  shape: BiasShape,
  { accumulate = false } = {},
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('bias', { entryPoint: 'backward' });
  return {
    label: `bias backward ${shape.T}x${shape.C}${accumulate ? ' +=' : ''}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, shape, accumulate), dy, db]),
    workgroups: foldWorkgroups(Math.ceil(shape.C / 32)),
  };
}
