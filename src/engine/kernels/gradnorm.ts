import { ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

type Buf = GPUBuffer | Binding;

const CHUNK = 4096;

/** Layout of the 16-byte output buffer (f32 each), also adamw's `clip` input. */
export const GRAD_NORM_OUT = { sumsq: 0, norm: 1, scale: 2, nonFinite: 3 } as const;

export interface GradNorm {
  /** Partial sums per buffer, then the final reduction: run in this order, after the backward. */
  dispatches: Dispatch[];
  /** [sumsq, norm, clip scale, nonFinite (0; 1 = NaN/Inf in a gradient; 2 = sumsq overflowed)]. */
  out: GPUBuffer;
  /** Changes max_norm without rebuilding the dispatches (≤ 0 disables clipping). */
  setMaxNorm(maxNorm: number): void;
  destroy(): void;
}

function params(ctx: GpuContext, n: number, offset: number, maxNorm: number): GPUBuffer {
  const data = new ArrayBuffer(16);
  new Uint32Array(data, 0, 2).set([n, offset]);
  new Float32Array(data, 8, 1)[0] = maxNorm;
  return ctx.uniform('gradnorm.params', new Uint8Array(data));
}

/**
 * Global L2 norm over `grads` (each a buffer and its element count) and the clip factor of
 * torch.nn.utils.clip_grad_norm_(max_norm): scale = min(1, max_norm / (norm + 1e-6)).
 */
export async function gradNorm(
  ctx: GpuContext,
  grads: readonly { buffer: Buf; n: number }[],
  { maxNorm = 1.0 }: { maxNorm?: number } = {},
): Promise<GradNorm> {
  const [partialPipeline, finalPipeline] = await Promise.all([
    ctx.pipeline('gradnorm', { entryPoint: 'partial' }),
    ctx.pipeline('gradnorm', { entryPoint: 'finalize' }),
  ]);
  let total = 0;
  const layout = grads.map(({ n }) => {
    if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32)
      throw new ShapeError(`gradNorm: bad element count ${n}`);
    const offset = total;
    total += Math.ceil(n / CHUNK);
    return offset;
  });
  const [partials, out] = await Promise.all([
    ctx.storage('gradnorm.partials', Math.max(total, 1) * 8),
    ctx.storage('gradnorm.out', 16),
  ]);
  const dispatches: Dispatch[] = grads.map(({ buffer, n }, k) => ({
    label: `gradnorm partial ${n}`,
    pipeline: partialPipeline,
    bindGroup: ctx.bindGroup(partialPipeline, [params(ctx, n, layout[k], 0), partials, buffer]),
    workgroups: foldWorkgroups(Math.ceil(n / CHUNK)),
  }));
  const finalParams = params(ctx, total, 0, maxNorm);
  dispatches.push({
    label: `gradnorm finalize ${grads.length} buffers`,
    pipeline: finalPipeline,
    bindGroup: ctx.bindGroup(finalPipeline, [finalParams, partials, out]),
    workgroups: [1, 1, 1],
  });
  return {
    dispatches,
    out,
    setMaxNorm(value: number) {
      ctx.write(finalParams, new Float32Array([value]), 8);
    },
    destroy() {
      partials.destroy();
      out.destroy();
    },
  };
}
