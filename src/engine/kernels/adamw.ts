import { InternalError, ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

type Buf = GPUBuffer | Binding;

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

/**
 * The step-dependent part of AdamW, one small uniform shared by every parameter buffer's dispatch.
 * `setStep(t, lr)` rewrites it in place (ctx.write), so prepared dispatches stay valid while the
 * learning-rate schedule moves.
 */
export class AdamWHyper {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  private lrValue: number;
  private stepValue = 1;

  private constructor(
    private readonly ctx: GpuContext,
    readonly uniform: GPUBuffer,
    config: AdamWConfig,
  ) {
    this.lrValue = config.lr;
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.eps = config.eps ?? 1e-8;
  }

  static create(ctx: GpuContext, config: AdamWConfig): AdamWHyper {
    const uniform = ctx.uniform('adamw.hyper', new Float32Array(8));
    const hyper = new AdamWHyper(ctx, uniform, config);
    hyper.setStep(1, config.lr);
    return hyper;
  }

  get step(): number {
    return this.stepValue;
  }

  get lr(): number {
    return this.lrValue;
  }

  /** Sets the 1-based step t (as torch's state['step'] after its increment) and optionally the lr. */
  setStep(step: number, lr = this.lrValue): void {
    if (!Number.isInteger(step) || step < 1)
      throw new InternalError(`adamw: step must be an integer ≥ 1, got ${step}`);
    this.stepValue = step;
    this.lrValue = lr;
    const bc1 = 1 - this.beta1 ** step;
    const bc2 = 1 - this.beta2 ** step;
    this.ctx.write(
      this.uniform,
      new Float32Array([lr, this.beta1, this.beta2, this.eps, lr / bc1, Math.sqrt(bc2), 0, 0]),
    );
  }

  destroy(): void {
    this.uniform.destroy();
  }
}

export interface AdamWOptions {
  /** Decoupled weight decay (torch default 0.01). */
  weightDecay?: number;
  /** Leave p, m, v untouched when the clip buffer flags a non-finite gradient (default true). */
  skipNonFinite?: boolean;
  /** This tensor's learning rate as a multiple of the shared one (a parameter group's own lr; default 1). */
  lrScale?: number;
}

/** A clip buffer for updates without gradient clipping: [sumsq 0, norm 0, scale 1, nonFinite 0]. */
export function noClip(ctx: GpuContext): Promise<GPUBuffer> {
  return ctx.storageFrom('adamw.noClip', new Float32Array([0, 0, 1, 0]));
}

/**
 * One AdamW update of `n` parameters in place. `clip` is gradnorm's output buffer (or `noClip`):
 * the gradient is multiplied by its scale, and the update is skipped when it flags non-finite grads.
 */
export async function adamw(
  ctx: GpuContext,
  hyper: AdamWHyper,
  buffers: { param: Buf; grad: Buf; m: Buf; v: Buf; clip: Buf },
  n: number,
  { weightDecay = 0.01, skipNonFinite = true, lrScale = 1 }: AdamWOptions = {},
): Promise<Dispatch> {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new ShapeError(`adamw: bad element count ${n}`);
  if (!(lrScale > 0) || !Number.isFinite(lrScale)) throw new ShapeError(`adamw: bad lrScale ${lrScale}`);
  const pipeline = await ctx.pipeline('adamw');
  const data = new ArrayBuffer(16);
  new Uint32Array(data, 0, 1)[0] = n;
  new Float32Array(data, 4, 1)[0] = weightDecay;
  new Uint32Array(data, 8, 1)[0] = Number(skipNonFinite);
  new Float32Array(data, 12, 1)[0] = lrScale;
  const params = ctx.uniform('adamw.params', new Uint8Array(data));
  const { param, grad, m, v, clip } = buffers;
  const clipBinding: Binding = 'buffer' in clip ? { ...clip, size: 16 } : { buffer: clip, size: 16 };
  return {
    label: `adamw ${n}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [hyper.uniform, params, param, grad, m, v, clipBinding]),
    workgroups: foldWorkgroups(Math.ceil(n / 256)),
  };
}
