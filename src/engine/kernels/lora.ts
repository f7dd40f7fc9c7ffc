import { LimitExceededError } from '../errors.ts';
import { ceilDiv, type Binding, type Dispatch, type GpuContext } from '../gpu/index.ts';
import { matmul } from './matmul.ts';

/*
 * LoRA on a linear layer y = x·Wᵀ (W frozen, see linear.ts), with A [r, in], B [out, r] (f32,
 * trainable), s = alpha / r and dropout p on the LoRA branch only (as PEFT):
 *   xd = drop(x)                 mask from (seed, site, step), kept values scaled by 1/(1−p)
 *   h  = xd·Aᵀ                   [T, r]   (saved for backward)
 *   y += s·h·Bᵀ                  [T, out]
 * backward, given dy [T, out]:
 *   dB  (+)= s·dyᵀ·h             [out, r]
 *   dh   = s·dy·B                [T, r]
 *   dA  (+)= dhᵀ·xd              [r, in]
 *   dx  += drop'(dh·A)           [T, in]  (same mask and 1/(1−p) scale as the forward)
 * Everything is the shared f32 matmul (r is small) plus the dropout kernel.
 */

export interface LoraShape {
  /** Tokens of the step. */
  T: number;
  inFeatures: number;
  outFeatures: number;
  rank: number;
  /** LoRA alpha; the branch is scaled by alpha / rank. */
  alpha: number;
  /** Dropout probability on the branch input, 0 ≤ p < 1. */
  dropout: number;
}

export interface LoraForwardBuffers {
  /** [T, in] input of the linear. */
  x: GPUBuffer | Binding;
  /** [r, in] and [out, r], f32. */
  a: GPUBuffer | Binding;
  b: GPUBuffer | Binding;
  /** [T, out], already holding the base output x·Wᵀ; the branch is added to it. */
  y: GPUBuffer | Binding;
  /** [T, r] scratch written by the forward and read by the backward. */
  h: GPUBuffer | Binding;
  /** [T, in] scratch for drop(x), written by the forward and read by the backward; only if dropout > 0. */
  xDrop?: GPUBuffer | Binding;
}

export interface LoraBackwardBuffers extends LoraForwardBuffers {
  /** [T, out] gradient of y. */
  dy: GPUBuffer | Binding;
  /** [T, in] gradient of x; the branch's part is added (the base dy·W is usually written first). */
  dx: GPUBuffer | Binding;
  /** [r, in] and [out, r] gradients of A and B. */
  gradA: GPUBuffer | Binding;
  gradB: GPUBuffer | Binding;
  /** [T, r] scratch. */
  dh: GPUBuffer | Binding;
  /** [T, in] scratch for d(drop(x)); only if dropout > 0. */
  dxDrop?: GPUBuffer | Binding;
}

export interface LoraOptions {
  /** Run seed; with `site` and the step it keys the dropout mask. */
  seed: number;
  /** Distinguishes LoRA sites (layer × projection) so each gets its own mask; any u32. */
  site: number;
  /** gradA/gradB += (gradient accumulation) instead of =. Default false. */
  accumulate?: boolean;
  /** dx += branch (default true, dx already holds dy·W) or dx = branch (false). */
  accumulateDx?: boolean;
}

export interface PreparedLora {
  /** Adds the branch to y (after the base linear's forward). */
  forward: Dispatch[];
  /** Gradients of A and B, and the branch's part of dx (after the base linear's dx). */
  backward: Dispatch[];
  /**
   * Keys the dropout mask for a step (write before submitting that step's forward and backward;
   * the same step gives the same mask, so resuming at a step is bit-exact). Use a counter that
   * differs per micro-batch. No-op without dropout.
   */
  setStep(step: number): void;
}

// ---------------------------------------------------------------------------------------------
// Dropout mask keys (the per-element hash is in shaders/dropout.wgsl)

/** lowbias32: a bijection of u32 with strong avalanche (same as mix32 in dropout.wgsl). */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The u32 key of the mask for (seed, site, step). */
export function dropoutKey(seed: number, site: number, step: number): number {
  const k = mix32((step + 0x9e3779b9) >>> 0);
  const j = mix32(((site ^ k) + 0x85ebca6b) >>> 0);
  return mix32(((seed ^ j) + 0xc2b2ae35) >>> 0);
}

/** Elements whose hash is below this are dropped: round(p · 2^32). */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout must be in [0, 1), got ${p}`);
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/**
 * The dropout kernel's parameters in a uniform buffer that `setStep` rewrites each step:
 * dst = (mask ⊙ src)/(1−p) + beta·dst over n elements.
 */
export class DropoutParams {
  readonly buffer: GPUBuffer;
  private readonly data = new ArrayBuffer(20);
  private readonly ctx: GpuContext;
  readonly n: number;
  readonly p: number;
  readonly seed: number;
  readonly site: number;

  constructor(ctx: GpuContext, n: number, p: number, seed: number, site: number, beta: number) {
    this.ctx = ctx;
    this.n = n;
    this.p = p;
    this.seed = seed;
    this.site = site;
    new Uint32Array(this.data, 0, 3).set([n, dropoutKey(seed, site, 0), dropoutThreshold(p)]);
    new Float32Array(this.data, 12, 2).set([1 / (1 - p), beta]);
    this.buffer = ctx.uniform('dropout.params', new Uint8Array(this.data));
  }

  setStep(step: number): void {
    new Uint32Array(this.data, 4, 1)[0] = dropoutKey(this.seed, this.site, step);
    this.ctx.write(this.buffer, new Uint8Array(this.data));
  }
}

/** Prepares the dropout kernel over `params.n` elements from src into dst. */
export async function dropout(
  ctx: GpuContext,
  src: GPUBuffer | Binding,
  dst: GPUBuffer | Binding,
  params: DropoutParams,
): Promise<Dispatch> {
  const pipeline = await ctx.pipeline('dropout');
  const groups = ceilDiv(params.n, 256);
  const maxGroups = ctx.adapter.limits.maxComputeWorkgroupsPerDimension;
  const x = Math.max(1, Math.min(groups, maxGroups));
  const y = ceilDiv(groups, x);
  if (y > maxGroups)
    throw new LimitExceededError('Dropout', y, maxGroups, 'maxComputeWorkgroupsPerDimension');
  return {
    label: `dropout ${params.n} p=${params.p}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [src, dst, params.buffer]),
    workgroups: [x, Math.max(1, y), 1],
  };
}

// ---------------------------------------------------------------------------------------------

function checkShape(shape: LoraShape): void {
  const { T, inFeatures, outFeatures, rank } = shape;
  for (const [name, v] of Object.entries({ T, inFeatures, outFeatures, rank })) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`LoRA ${name} must be a positive integer, got ${v}`);
  }
  dropoutThreshold(shape.dropout);
}

/** Prepares the LoRA branch of one linear: forward, backward and the per-step dropout key. */
export async function prepareLora(
  ctx: GpuContext,
  buffers: LoraForwardBuffers & Partial<LoraBackwardBuffers>,
  shape: LoraShape,
  options: LoraOptions,
): Promise<PreparedLora> {
  checkShape(shape);
  const { T, inFeatures: inF, outFeatures: out, rank: r, dropout: p } = shape;
  const s = shape.alpha / r;
  const { accumulate = false, accumulateDx = true } = options;
  const { x, a, b, y, h } = buffers;

  let xd: GPUBuffer | Binding = x;
  const forward: Dispatch[] = [];
  let forwardDrop: DropoutParams | undefined;
  if (p > 0) {
    if (!buffers.xDrop) throw new RangeError('LoRA dropout > 0 needs an xDrop scratch buffer [T, in]');
    xd = buffers.xDrop;
    forwardDrop = new DropoutParams(ctx, T * inF, p, options.seed, options.site, 0);
    forward.push(await dropout(ctx, x, xd, forwardDrop));
  }
  forward.push(await matmul(ctx, xd, a, h, { M: T, N: r, K: inF, transB: true }));
  forward.push(await matmul(ctx, h, b, y, { M: T, N: out, K: r, transB: true, alpha: s, beta: 1 }));

  const backward: Dispatch[] = [];
  let backwardDrop: DropoutParams | undefined;
  const { dy, dx, gradA, gradB, dh } = buffers;
  if (dy && dx && gradA && gradB && dh) {
    const beta = accumulate ? 1 : 0;
    const dxBeta = accumulateDx ? 1 : 0;
    backward.push(
      await matmul(ctx, dy, h, gradB, { M: out, N: r, K: T, transA: true, transB: false, alpha: s, beta }),
      await matmul(ctx, dy, b, dh, { M: T, N: r, K: out, transB: false, alpha: s }),
      await matmul(ctx, dh, xd, gradA, { M: r, N: inF, K: T, transA: true, transB: false, beta }),
    );
    if (p > 0) {
      if (!buffers.dxDrop) throw new RangeError('LoRA dropout > 0 needs a dxDrop scratch buffer [T, in]');
      backward.push(await matmul(ctx, dh, a, buffers.dxDrop, { M: T, N: inF, K: r, transB: false }));
      backwardDrop = new DropoutParams(ctx, T * inF, p, options.seed, options.site, dxBeta);
      backward.push(await dropout(ctx, buffers.dxDrop, dx, backwardDrop));
    } else {
      backward.push(await matmul(ctx, dh, a, dx, { M: T, N: inF, K: r, transB: false, beta: dxBeta }));
    }
  }

  return {
    forward,
    backward,
    setStep(step: number) {
      forwardDrop?.setStep(step);
      backwardDrop?.setStep(step);
    },
  };
}
