/**
 * SwiGLU activation (the elementwise part of the Llama / Qwen2 MLP
 * down_proj(silu(gate_proj(x)) * up_proj(x))) over gate [T, I] and up [T, I]:
 *   forward:  h = silu(gate)·up,  silu(z) = z·σ(z)
 *   backward: dgate = dh·up·silu'(gate),  dup = dh·silu(gate),  silu'(z) = σ(z)·(1 + z·(1 − σ(z)))
 * Numerically safe for any finite input (shaders/swiglu.wgsl forms σ from e^−|z|). The backward
 * recomputes σ from gate, so the forward needs to save nothing but its inputs.
 * Float64 reference: src/engine/reference/swiglu.ts.
 */
import { ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

const WG = 256; // shaders/swiglu.wgsl

export interface SwiGluShape {
  /** Rows (tokens). */
  T: number;
  /** Intermediate size (Llama `intermediate_size`): the width of gate, up and h. */
  I: number;
}

type Buf = GPUBuffer | Binding;

/** Bytes a binding exposes: a Binding's size, else what its buffer holds past its offset. */
function bytes(b: Buf): number {
  if ('buffer' in b) return b.size ?? b.buffer.size - (b.offset ?? 0);
  return b.size;
}

function prepareParams(ctx: GpuContext, { T, I }: SwiGluShape, buffers: Record<string, Buf>): GPUBuffer {
  if (!(Number.isInteger(T) && Number.isInteger(I) && T >= 0 && I >= 1 && T * I < 2 ** 32)) {
    throw new ShapeError(`swiglu: bad shape ${T}x${I}`);
  }
  // A short buffer would not fail validation (out-of-bounds reads are clamped): catch it here.
  for (const [name, b] of Object.entries(buffers)) {
    if (bytes(b) < T * I * 4)
      throw new ShapeError(`swiglu: ${name} holds ${bytes(b)} bytes, ${T}x${I} needs ${T * I * 4}`);
  }
  return ctx.uniform('swiglu.params', new Uint32Array([T * I, 0, 0, 0]));
}

/** h = silu(gate)·up (h a separate buffer: the backward needs gate and up). */
export async function swigluForward(
  ctx: GpuContext,
  buffers: { gate: Buf; up: Buf; h: Buf },
  shape: SwiGluShape,
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('swiglu', { entryPoint: 'forward' });
  const { gate, up, h } = buffers;
  return {
    label: `swiglu ${shape.T}x${shape.I}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [prepareParams(ctx, shape, buffers), gate, up, h]),
    workgroups: foldWorkgroups(Math.ceil((shape.T * shape.I) / WG)),
  };
}

/** dgate = dh·up·silu'(gate), dup = dh·silu(gate) (both overwritten; separate from every input). */
export async function swigluBackward(
  ctx: GpuContext,
  buffers: { gate: Buf; up: Buf; dh: Buf; dgate: Buf; dup: Buf },
  shape: SwiGluShape,
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('swiglu', { entryPoint: 'backward' });
  const { gate, up, dh, dgate, dup } = buffers;
  return {
    label: `swiglu backward ${shape.T}x${shape.I}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [prepareParams(ctx, shape, buffers), gate, up, dh, dgate, dup]),
    workgroups: foldWorkgroups(Math.ceil((shape.T * shape.I) / WG)),
  };
}
