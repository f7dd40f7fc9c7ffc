/**
 * The optimizer of a GPU model: global-norm clipping (kernels/gradnorm.ts) and AdamW (kernels/adamw.ts)
 * over every trainable tensor, as dispatches appended to a TrainStep's command buffer. The clip factor
 * stays on the GPU; the norm is read back only when asked.
 *
 * Gradient accumulation (`accumulate: N`): the backward overwrites the gradient buffers every
 * micro-batch, so each trainable tensor gets an f32 accumulator. After micro-batch k's backward:
 * k = 0 copies the gradient into it, 0 < k < N−1 adds, and k = N−1 writes the mean (grad + acc)/N back
 * into the gradient buffers, which the global norm, clip and AdamW then read as in a single step: the
 * optimizer sees the mean of the micro-batches' gradients (PyTorch's `(loss / N).backward()` loop).
 * A step may have fewer micro-batches (an epoch's remainder): the mean is then over those.
 * A NaN/Inf in any micro-batch propagates through the sum and trips the non-finite check. The
 * accumulators hold nothing between optimizer steps, so checkpoints (taken between them) skip them.
 */
import { InternalError } from '../errors.ts';
import type { Dispatch } from '../gpu/index.ts';
import { add } from '../kernels/add.ts';
import { AdamWHyper, adamw } from '../kernels/adamw.ts';
import { gradNorm, type GradNorm } from '../kernels/gradnorm.ts';
import { ConfigError } from './config.ts';
import type { DecoderGpu } from './decoder-gpu.ts';

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
  /** Micro-batches per optimizer step (gradient accumulation); 1 (default) is a plain step. */
  accumulate?: number;
  /** Learning rates of some trainable tensors as multiples of `lr` (parameter groups); others get 1. */
  lrScales?: ReadonlyMap<string, number>;
}

export class ModelOptimizer {
  /** Grad norm + clip factor, then one AdamW dispatch per trainable tensor. */
  readonly dispatches: Dispatch[];
  private step = 0;

  private constructor(
    private readonly model: DecoderGpu,
    private readonly hyper: AdamWHyper,
    private readonly norm: GradNorm,
    /** Adam's first and second moments per trainable tensor, in `model.trainableNames` order. */
    private readonly moments: { name: string; m: GPUBuffer; v: GPUBuffer; size: number }[],
    dispatches: Dispatch[],
    /** Gradient accumulators (none when accumulate = 1). */
    private readonly accumulators: GPUBuffer[],
    /** After the first micro-batch, a middle one, and the last of `count` (finals[count − 1]). */
    private readonly micro: { first: Dispatch[]; middle: Dispatch[]; finals: Dispatch[][] },
  ) {
    this.dispatches = dispatches;
  }

  static async create(model: DecoderGpu, options: OptimizerOptions): Promise<ModelOptimizer> {
    const { ctx } = model;
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    const N = options.accumulate ?? 1;
    if (!Number.isInteger(N) || N < 1) {
      throw new ConfigError(`accumulate must be a whole number of micro-batches ≥ 1 (got ${N}).`);
    }
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
          lrScale: options.lrScales?.get(t.name) ?? 1,
        }),
      );
    }
    const accumulators: GPUBuffer[] = [];
    const micro = { first: [] as Dispatch[], middle: [] as Dispatch[], finals: [dispatches] };
    if (N > 1) {
      for (const t of tensors) {
        const acc = await ctx.storage(`grad.acc:${t.name}`, t.size * 4);
        accumulators.push(acc);
        micro.first.push(await add(ctx, acc, t.grad, t.size, { scaleA: 0 })); // acc = g (acc never read)
        micro.middle.push(await add(ctx, acc, t.grad, t.size)); // acc += g
      }
      for (let c = 2; c <= N; c++) {
        // g = (g + acc) / c: the mean gradient of a step of c micro-batches, then norm, clip, AdamW.
        const mean = await Promise.all(
          tensors.map((t, i) => add(ctx, t.grad, accumulators[i], t.size, { scaleA: 1 / c, scaleB: 1 / c })),
        );
        micro.finals.push([...mean, ...dispatches]);
      }
    }
    return new ModelOptimizer(model, hyper, norm, moments, dispatches, accumulators, micro);
  }

  /** Micro-batches per optimizer step. */
  get accumulate(): number {
    return this.micro.finals.length;
  }

  /**
   * The dispatches to run after micro-batch k's backward, e.g. `step.run(optimizer.microDispatches(k))`
   * for k = 0..count−1: accumulation, and after the last the mean, clip and AdamW. `count` is the
   * step's number of micro-batches: `accumulate`, or fewer for an epoch's remainder. With one
   * micro-batch this is `dispatches`.
   */
  microDispatches(k: number, count = this.accumulate): readonly Dispatch[] {
    if (!Number.isInteger(k) || k < 0 || k >= count || count > this.accumulate) {
      throw new InternalError(`optimizer: micro-batch ${k} of ${count} (accumulate ${this.accumulate})`);
    }
    if (k === count - 1) return this.micro.finals[k];
    return k === 0 ? this.micro.first : this.micro.middle;
  }

  /**
   * Call once per optimizer step, before its last micro-batch's submission (e.g. before the first):
   * advances the bias corrections (and sets the lr).
   */
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

  /** Bytes of the gradient accumulators (0 without accumulation). */
  get accumulatorBytes(): number {
    return this.accumulators.reduce((a, b) => a + b.size, 0);
  }

  /**
   * The optimizer's state for a checkpoint: steps taken and both moments of every tensor. Take it
   * between optimizer steps: the gradient accumulators are then empty and not part of it.
   */
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
    for (const acc of this.accumulators) acc.destroy();
  }
}
