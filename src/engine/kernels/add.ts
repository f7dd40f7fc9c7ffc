import { ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

const WG = 256;

export interface ScaleAdd {
  /** Factor on A (default 1); 0 never reads A. */
  scaleA?: number;
  /** Factor on B (default 1); 0 never reads B. */
  scaleB?: number;
}

function params(ctx: GpuContext, n: number, scaleA: number, scaleB: number, value: number): GPUBuffer {
  const data = new ArrayBuffer(16);
  new Uint32Array(data, 0, 1)[0] = n;
  new Float32Array(data, 4, 3).set([scaleA, scaleB, value]);
  return ctx.uniform('add.params', new Uint8Array(data));
}

function checkLength(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new ShapeError(`add: bad element count ${n}`);
}

/** In place A = scaleA·A + scaleB·B over `n` f32 elements (residual add: a += b). */
export async function add(
  ctx: GpuContext,
  a: GPUBuffer | Binding,
  b: GPUBuffer | Binding,
  n: number,
  { scaleA = 1, scaleB = 1 }: ScaleAdd = {},
): Promise<Dispatch> {
  checkLength(n);
  const pipeline = await ctx.pipeline('add', { entryPoint: 'main' });
  return {
    label: `add ${n}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, n, scaleA, scaleB, 0), a, b]),
    workgroups: foldWorkgroups(Math.ceil(n / WG)),
  };
}

/** Out of place C = scaleA·A + scaleB·B over `n` f32 elements (C must be a different buffer range). */
export async function addInto(
  ctx: GpuContext,
  a: GPUBuffer | Binding,
  b: GPUBuffer | Binding,
  c: GPUBuffer | Binding,
  n: number,
  { scaleA = 1, scaleB = 1 }: ScaleAdd = {},
): Promise<Dispatch> {
  checkLength(n);
  const pipeline = await ctx.pipeline('add', { entryPoint: 'add_out' });
  return {
    label: `addInto ${n}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, n, scaleA, scaleB, 0), a, b, c]),
    workgroups: foldWorkgroups(Math.ceil(n / WG)),
  };
}

/** A[i] = value for the first `n` f32 elements (zeroing gradient buffers before a step). */
export async function fill(ctx: GpuContext, a: GPUBuffer | Binding, n: number, value = 0): Promise<Dispatch> {
  checkLength(n);
  const pipeline = await ctx.pipeline('add', { entryPoint: 'fill' });
  return {
    label: `fill ${n}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params(ctx, n, 0, 0, value), a]),
    workgroups: foldWorkgroups(Math.ceil(n / WG)),
  };
}
