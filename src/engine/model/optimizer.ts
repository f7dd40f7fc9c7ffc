/**
 * The optimizer of a GPU model: global-norm clipping (kernels/gradnorm.ts) and AdamW (kernels/adamw.ts)
 * over every trainable tensor, as dispatches appended to a TrainStep's command buffer. The clip factor
 * stays on the GPU; the norm is read back only when asked.
 */
import type { Dispatch } from '../gpu/index.ts';
import { AdamWHyper, adamw } from '../kernels/adamw.ts';
import { gradNorm, type GradNorm } from '../kernels/gradnorm.ts';
import { ConfigError } from './config.ts';
import type { GptBigCodeGpu } from './gpt-bigcode.ts';

export interface OptimizerState {
  /** Optimizer steps taken. */
  step: number;
  moments: Map<string, { m: Float32Array; v: Float32Array }>;
}

export interface OptimizerOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weight_decay?: number;
  /** ≤ 0 disables clipping. */
  max_grad_norm?: number;
}

export class ModelOptimizer {
  /** Grad norm + clip factor, then one AdamW dispatch per trainable tensor. */
  readonly dispatches: Dispatch[];
  private step = 0;

  private constructor(
    private readonly model: GptBigCodeGpu,
    private readonly hyper: AdamWHyper,
    private readonly norm: GradNorm,
    /** Adam's first and second moments per trainable tensor, in `model.trainableNames` order. */
    private readonly moments: { name: string; m: GPUBuffer; v: GPUBuffer; size: number }[],
    dispatches: Dispatch[],
  ) {
    this.dispatches = dispatches;
  }

  static async create(model: GptBigCodeGpu, options: OptimizerOptions): Promise<ModelOptimizer> {
    const { ctx } = model;
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    const hyper = AdamWHyper.create(ctx, { lr: options.lr, beta1, beta2, eps: options.eps ?? 1e-8 });
    const tensors = model.trainables();
    const norm = await gradNorm(
      ctx,
      tensors.map((t) => ({ buffer: t.grad, n: t.size })),
      { maxNorm: options.max_grad_norm ?? 0 },
    );
    const moments: { name: string; m: GPUBuffer; v: GPUBuffer; size: number }[] = [];
    const dispatches = [...norm.dispatches];
    for (const t of tensors) {
      const m = await ctx.storage(`adam.m:${t.name}`, t.size * 4);
      const v = await ctx.storage(`adam.v:${t.name}`, t.size * 4);
      moments.push({ name: t.name, m, v, size: t.size });
      dispatches.push(
        await adamw(ctx, hyper, { param: t.param, grad: t.grad, m, v, clip: norm.out }, t.size, {
          weightDecay: options.weight_decay ?? 0,
        }),
      );
    }
    return new ModelOptimizer(model, hyper, norm, moments, dispatches);
  }

  /** Call once before each step's submission: advances the bias corrections (and sets the lr). */
  nextStep(lr?: number): void {
    this.step++;
    this.hyper.setStep(this.step, lr);
  }

  get steps(): number {
    return this.step;
  }

  setMaxGradNorm(maxNorm: number): void {
    this.norm.setMaxNorm(maxNorm);
  }

  /** The last step's gradient norm before clipping, its clip scale and the non-finite flag. */
  async readGradNorm(): Promise<{ norm: number; scale: number; nonFinite: boolean }> {
    const [, norm, scale, nonFinite] = await this.model.ctx.readF32(this.norm.out, 4);
    return { norm, scale, nonFinite: nonFinite !== 0 };
  }

  /** Bytes of the Adam moment buffers. */
  get momentBytes(): number {
    return this.moments.reduce((a, b) => a + b.m.size + b.v.size, 0);
  }

  /** The optimizer's state for a checkpoint: steps taken and both moments of every tensor. */
  async readState(): Promise<OptimizerState> {
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    for (const { name, m, v, size } of this.moments) {
      moments.set(name, {
        m: await this.model.ctx.readF32(m, size),
        v: await this.model.ctx.readF32(v, size),
      });
    }
    return { step: this.step, moments };
  }

  /** Restores a checkpoint's state so the next step continues bit for bit. */
  restoreState(state: OptimizerState): void {
    for (const { name, m, v, size } of this.moments) {
      const saved = state.moments.get(name);
      if (!saved || saved.m.length !== size || saved.v.length !== size) {
        throw new ConfigError(
          `The checkpoint's optimizer state has no moments of size ${size} for ${name}.`,
          'Resume with the model, LoRA settings and trainable choice the checkpoint was made with.',
        );
      }
      this.model.ctx.write(m, saved.m);
      this.model.ctx.write(v, saved.v);
    }
    this.step = state.step;
    if (state.step > 0) this.hyper.setStep(state.step);
  }

  destroy(): void {
    this.norm.destroy();
    this.hyper.destroy();
    for (const { m, v } of this.moments) {
      m.destroy();
      v.destroy();
    }
  }
}
