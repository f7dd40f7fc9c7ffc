/**
 * Training heads and losses on the GPU (shaders/head_cls.wgsl, loss_focal.wgsl, loss_ntp.wgsl):
 * - `ClsHead`: the bias-free score head on each function's last token, focal loss with sample
 *   weights, and the backward into the final hidden states and score.weight. Functions, labels and
 *   weights are written per batch (up to a fixed capacity) and γ/α per step, without rebuilding.
 * - `NtpHead`: logits over the vocabulary through the tied wte (shared matmul), softmax cross-entropy
 *   over tokens with a next token in their segment, in place into dlogits, and the backward into the
 *   hidden states and (accumulated into) the wte gradient.
 */
import { BadInputError, ShapeError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import type { FocalOptions } from '../reference/loss.ts';
import { foldWorkgroups } from './layer-grid.ts';
import { matmul } from './matmul.ts';

type Buf = GPUBuffer | Binding;

export interface ClsFunction {
  /** Flat token index (pack·L + last) of the function's last code token. */
  row: number;
  label: number;
  weight: number;
}

export interface ClsHeadShape {
  /** Tokens in the flattened batch. */
  T: number;
  D: number;
  /** Capacity: most functions per step. */
  F: number;
}

export interface ClsHeadIo {
  /** Final hidden states [T, D] (after ln_f). */
  hidden: Buf;
  /** score.weight [2, D]. */
  score: Buf;
  /** Receives dLoss/dhidden [T, D] (every element written). */
  dhidden: Buf;
  /** Receives dLoss/dscore [2, D]; omit when the head is frozen. */
  dscore?: Buf;
  /** Add into dscore instead of overwriting it. */
  accumulateScore?: boolean;
}

/** Score head + focal loss with buffers it owns for the batch's functions, logits and loss. */
export class ClsHead {
  /** Logits [F, 2] (unused slots 0). */
  readonly logits: GPUBuffer;
  readonly dlogits: GPUBuffer;
  /** Mean weighted focal loss, one f32. */
  readonly loss: GPUBuffer;
  readonly forward: Dispatch[];
  readonly lossDispatches: Dispatch[];
  readonly backward: Dispatch[];
  private count = 0;
  private focal: FocalOptions = { gamma: 0, alpha: null };

  private constructor(
    private readonly ctx: GpuContext,
    readonly shape: ClsHeadShape,
    private readonly bufs: {
      rows: GPUBuffer;
      rowFunction: GPUBuffer;
      labels: GPUBuffer;
      weights: GPUBuffer;
      headParams: GPUBuffer;
      focalParams: GPUBuffer;
    },
    parts: {
      logits: GPUBuffer;
      dlogits: GPUBuffer;
      loss: GPUBuffer;
      forward: Dispatch[];
      loss_: Dispatch[];
      backward: Dispatch[];
    },
  ) {
    this.logits = parts.logits;
    this.dlogits = parts.dlogits;
    this.loss = parts.loss;
    this.forward = parts.forward;
    this.lossDispatches = parts.loss_;
    this.backward = parts.backward;
  }

  static async create(ctx: GpuContext, shape: ClsHeadShape, io: ClsHeadIo): Promise<ClsHead> {
    const { T, D, F } = shape;
    for (const [k, v] of Object.entries(shape)) {
      if (!Number.isInteger(v) || v < 1)
        throw new ShapeError(`cls head: ${k} must be a positive integer, got ${v}`);
    }
    const rows = await ctx.storage('cls.rows', F * 4);
    const rowFunction = await ctx.storageFrom('cls.rowFunction', new Int32Array(T).fill(-1));
    const labels = await ctx.storage('cls.labels', F * 4);
    const weights = await ctx.storage('cls.weights', F * 4);
    const logits = await ctx.storage('cls.logits', F * 8);
    const dlogits = await ctx.storage('cls.dlogits', F * 8);
    const loss = await ctx.storage('cls.loss', 4);
    const headParams = ctx.uniform('cls.params', new Uint32Array([T, D, F, 0, io.accumulateScore ? 1 : 0]));
    const focalParams = ctx.uniform('focal.params', new Uint32Array(5));
    const fwd = await ctx.pipeline('head_cls', { entryPoint: 'forward' });
    const bwdHidden = await ctx.pipeline('head_cls', { entryPoint: 'backward_hidden' });
    const bwdScore = await ctx.pipeline('head_cls', { entryPoint: 'backward_score' });
    const focal = await ctx.pipeline('loss_focal', { entryPoint: 'main' });
    const forward: Dispatch[] = [
      {
        label: `cls head ${F}x${D}`,
        pipeline: fwd,
        bindGroup: ctx.bindGroup(fwd, [headParams, io.hidden, io.score, rows, logits]),
        workgroups: foldWorkgroups(F),
      },
    ];
    const lossDispatches: Dispatch[] = [
      {
        label: `focal loss ${F}`,
        pipeline: focal,
        bindGroup: ctx.bindGroup(focal, [focalParams, logits, labels, weights, dlogits, loss]),
        workgroups: [1, 1, 1],
      },
    ];
    const backward: Dispatch[] = [
      {
        label: `cls head dhidden ${T}x${D}`,
        pipeline: bwdHidden,
        bindGroup: ctx.bindGroup(bwdHidden, [headParams, io.score, rowFunction, dlogits, io.dhidden]),
        workgroups: foldWorkgroups(Math.ceil((T * D) / 256)),
      },
    ];
    if (io.dscore) {
      backward.push({
        label: `cls head dscore 2x${D}`,
        pipeline: bwdScore,
        bindGroup: ctx.bindGroup(bwdScore, [headParams, io.hidden, rows, dlogits, io.dscore]),
        workgroups: foldWorkgroups(Math.ceil((2 * D) / 256)),
      });
    }
    return new ClsHead(
      ctx,
      shape,
      { rows, rowFunction, labels, weights, headParams, focalParams },
      { logits, dlogits, loss, forward, loss_: lossDispatches, backward },
    );
  }

  /** Writes the step's functions (at most F; each row once). Takes effect for the next submitted work. */
  setFunctions(functions: readonly ClsFunction[]): void {
    const { T, D, F } = this.shape;
    if (functions.length > F)
      throw new ShapeError(`cls head: ${functions.length} functions exceed the capacity ${F}`);
    const rows = new Uint32Array(F);
    const labels = new Uint32Array(F);
    const weights = new Float32Array(F);
    const rowFunction = new Int32Array(T).fill(-1);
    functions.forEach((fn, f) => {
      if (!Number.isInteger(fn.row) || fn.row < 0 || fn.row >= T)
        throw new ShapeError(`cls head: row ${fn.row} outside [0, ${T})`);
      if (fn.label !== 0 && fn.label !== 1)
        throw new BadInputError(`cls head: label ${fn.label} is not 0 or 1`);
      if (rowFunction[fn.row] !== -1) throw new ShapeError(`cls head: two functions end at token ${fn.row}`);
      rows[f] = fn.row;
      labels[f] = fn.label;
      weights[f] = fn.weight;
      rowFunction[fn.row] = f;
    });
    this.count = functions.length;
    this.ctx.write(this.bufs.rows, rows);
    this.ctx.write(this.bufs.labels, labels);
    this.ctx.write(this.bufs.weights, weights);
    this.ctx.write(this.bufs.rowFunction, rowFunction);
    this.ctx.write(this.bufs.headParams, new Uint32Array([T, D, F, this.count]));
    this.writeFocal();
  }

  /** γ and α of the focal loss (γ = 0, α = null: weighted cross-entropy); cheap, any time. */
  setFocal(focal: FocalOptions): void {
    if (!(focal.gamma >= 0))
      throw new BadInputError(
        `focal loss: gamma must be ≥ 0 (got ${focal.gamma})`,
        'Set loss.gamma to 0 or more.',
      );
    if (focal.alpha !== null && !(focal.alpha >= 0 && focal.alpha <= 1)) {
      throw new BadInputError(
        `focal loss: alpha must be in [0, 1] or null (got ${focal.alpha})`,
        'Set loss.alpha to a number in [0, 1], or leave it unset.',
      );
    }
    this.focal = { ...focal };
    this.writeFocal();
  }

  get functionCount(): number {
    return this.count;
  }

  /** Bytes of the storage buffers this head owns. */
  get bytes(): number {
    const { rows, rowFunction, labels, weights } = this.bufs;
    return [rows, rowFunction, labels, weights, this.logits, this.dlogits, this.loss].reduce(
      (a, b) => a + b.size,
      0,
    );
  }

  private writeFocal(): void {
    const data = new ArrayBuffer(20);
    new Uint32Array(data, 0, 2).set([this.shape.F, this.count]);
    new Float32Array(data, 8, 2).set([this.focal.gamma, this.focal.alpha ?? 0]);
    new Uint32Array(data, 16, 1)[0] = this.focal.alpha === null ? 0 : 1;
    this.ctx.write(this.bufs.focalParams, new Uint8Array(data));
  }

  destroy(): void {
    for (const b of [...Object.values(this.bufs), this.logits, this.dlogits, this.loss]) b.destroy();
  }
}

export interface NtpHeadShape {
  T: number;
  D: number;
  V: number;
}

export interface NtpHeadIo {
  hidden: Buf;
  /** transformer.wte.weight [V, D] (f32), the tied lm_head. */
  wte: Buf;
  /** Receives dLoss/dhidden [T, D] (overwritten). */
  dhidden: Buf;
  /** Receives the lm_head part of dLoss/dwte [V, D]; omit when wte is frozen. */
  dwte?: Buf;
  /** Add into dwte (the embedding's gradient lands there too). */
  accumulateWte?: boolean;
}

/** Tied lm_head + next-token cross-entropy; `logits` holds dlogits after the loss dispatches. */
export class NtpHead {
  readonly logits: GPUBuffer;
  readonly rowLoss: GPUBuffer;
  readonly loss: GPUBuffer;
  readonly forward: Dispatch[];
  readonly lossDispatches: Dispatch[];
  readonly backward: Dispatch[];

  private constructor(
    private readonly ctx: GpuContext,
    readonly shape: NtpHeadShape,
    private readonly targets: GPUBuffer,
    private readonly params: GPUBuffer,
    parts: {
      logits: GPUBuffer;
      rowLoss: GPUBuffer;
      loss: GPUBuffer;
      forward: Dispatch[];
      loss_: Dispatch[];
      backward: Dispatch[];
    },
  ) {
    this.logits = parts.logits;
    this.rowLoss = parts.rowLoss;
    this.loss = parts.loss;
    this.forward = parts.forward;
    this.lossDispatches = parts.loss_;
    this.backward = parts.backward;
  }

  static async create(ctx: GpuContext, shape: NtpHeadShape, io: NtpHeadIo): Promise<NtpHead> {
    const { T, D, V } = shape;
    for (const [k, v] of Object.entries(shape)) {
      if (!Number.isInteger(v) || v < 1)
        throw new ShapeError(`ntp head: ${k} must be a positive integer, got ${v}`);
    }
    const logits = await ctx.storage('ntp.logits', T * V * 4);
    const rowLoss = await ctx.storage('ntp.rowLoss', T * 4);
    const loss = await ctx.storage('ntp.loss', 4);
    const targets = await ctx.storageFrom('ntp.targets', new Int32Array(T).fill(-1));
    const params = ctx.uniform('ntp.params', new Uint32Array([T, V, 0]));
    const rows = await ctx.pipeline('loss_ntp', { entryPoint: 'rows' });
    const reduce = await ctx.pipeline('loss_ntp', { entryPoint: 'reduce' });
    const forward = [await matmul(ctx, io.hidden, io.wte, logits, { M: T, N: V, K: D, transB: true })];
    const lossDispatches: Dispatch[] = [
      {
        label: `ntp cross-entropy ${T}x${V}`,
        pipeline: rows,
        bindGroup: ctx.bindGroup(rows, [params, targets, logits, rowLoss]),
        workgroups: foldWorkgroups(T),
      },
      {
        label: `ntp loss reduce ${T}`,
        pipeline: reduce,
        bindGroup: ctx.bindGroup(reduce, [params, rowLoss, loss]),
        workgroups: [1, 1, 1],
      },
    ];
    // dhidden = dlogits·wte ([T,V]·[V,D]); dwte (+)= dlogitsᵀ·hidden ([V,T]·[T,D]).
    const backward = [await matmul(ctx, logits, io.wte, io.dhidden, { M: T, N: D, K: V, transB: false })];
    if (io.dwte) {
      backward.push(
        await matmul(ctx, logits, io.hidden, io.dwte, {
          M: V,
          N: D,
          K: T,
          transA: true,
          transB: false,
          beta: io.accumulateWte ? 1 : 0,
        }),
      );
    }
    return new NtpHead(ctx, shape, targets, params, {
      logits,
      rowLoss,
      loss,
      forward,
      loss_: lossDispatches,
      backward,
    });
  }

  /** Targets per token (−1: no loss at this token); see reference `ntpTargets`. Returns the count. */
  setTargets(targets: Int32Array): number {
    const { T, V } = this.shape;
    if (targets.length !== T) throw new ShapeError(`ntp head: ${targets.length} targets for ${T} tokens`);
    let count = 0;
    for (const y of targets) {
      if (y >= V) throw new BadInputError(`ntp head: target ${y} outside the vocabulary (${V})`);
      if (y >= 0) count++;
    }
    this.ctx.write(this.targets, targets);
    const data = new ArrayBuffer(12);
    new Uint32Array(data, 0, 2).set([T, V]);
    new Float32Array(data, 8, 1)[0] = count > 0 ? 1 / count : 0;
    this.ctx.write(this.params, new Uint8Array(data));
    return count;
  }

  /** Bytes of the storage buffers this head owns. */
  get bytes(): number {
    return [this.logits, this.rowLoss, this.loss, this.targets].reduce((a, b) => a + b.size, 0);
  }

  destroy(): void {
    for (const b of [this.logits, this.rowLoss, this.loss, this.targets, this.params]) b.destroy();
  }
}
