/**
 * One training step of a decoder (decoder.ts) for a fixed batch shape: every dispatch prepared once
 * (bind groups cached), wired from the model's description alone:
 *
 *   embeddings (+ LoRA) → N × {norm, attention, residual, norm, MLP, residual} → final norm → head
 *
 * `setBatch` writes the step's tokens, masks and labels; `run` encodes forward, loss and backward (and
 * the optimizer when given) into one command buffer. Loss, logits and gradients are read back only when
 * asked. Every sublayer is built by one method that returns its forward in training mode, its forward in
 * evaluation mode (LoRA without dropout) and its backward, side by side.
 */
import type { Dispatch, GpuContext } from '../gpu/index.ts';
import { add, fill } from '../kernels/add.ts';
import {
  attentionBackward,
  attentionForward,
  buildAttentionMask,
  validateAttentionMask,
} from '../kernels/attention.ts';
import { biasBackward, biasForward } from '../kernels/bias.ts';
import { placeColumns, takeColumns } from '../kernels/columns.ts';
import {
  embeddingBackward,
  embeddingForward,
  validateIds,
  type EmbeddingBackward,
} from '../kernels/embedding.ts';
import { prepareEmbeddingLora, type PreparedEmbeddingLora } from '../kernels/embedding-lora.ts';
import { geluBackwardInPlace, geluForward } from '../kernels/gelu.ts';
import { layerNormBackward, layerNormBackwardParams, layerNormForward } from '../kernels/layernorm.ts';
import { linearBackwardInput, linearForward } from '../kernels/linear.ts';
import { prepareLora, type PreparedLora } from '../kernels/lora.ts';
import { ClsHead, NtpHead } from '../kernels/loss.ts';
import { matmul } from '../kernels/matmul.ts';
import { rmsNormBackward, rmsNormBackwardParams, rmsNormForward } from '../kernels/rmsnorm.ts';
import { prepareRope, ropeQkvLayout, type Rope } from '../kernels/rope.ts';
import { swigluBackward, swigluForward } from '../kernels/swiglu.ts';
import { maskBufferData } from '../reference/attention.ts';
import type { PackedBatch } from '../../shared/batch.ts';
import { ntpTargets, type FocalOptions } from '../reference/loss.ts';
import { GpuValidationError, InternalError, LimitExceededError } from '../errors.ts';
import { ConfigError } from './config.ts';
import {
  attentionKernelShape,
  blockLinears,
  qkvWidth,
  type AttentionDesc,
  type BlockDesc,
  type LinearDesc,
  type MlpDesc,
  type NormDesc,
} from './decoder.ts';
import type { DecoderGpu } from './decoder-gpu.ts';
import { attentionPartialsBytes, resolveHeadGroups } from './sizes.ts';

export interface StepShape {
  packs: number;
  packLength: number;
  /**
   * Gradient checkpointing: keep only each block's input; the backward re-runs a block's forward
   * (into one shared set of activation buffers) right before its backward. Same results, less memory.
   */
  recompute?: boolean;
  /**
   * Multi-query attention backward: query-head groups per key tile for dK/dV (kernels/attention.ts),
   * with a [groups, T, 2·head_dim] workspace. 'auto' (default) uses suggestHeadGroups.
   */
  attentionHeadGroups?: number | 'auto';
  /** Most functions per step (cls). */
  maxFunctions?: number;
}

/** A sublayer's dispatches: the forward in training and in evaluation mode (no dropout), its backward. */
interface Wired {
  train: Dispatch[];
  eval: Dispatch[];
  backward: Dispatch[];
}

const same = (forward: Dispatch[], backward: Dispatch[] = []): Wired => ({
  train: forward,
  eval: forward,
  backward,
});

/** Sublayers run in order; their backwards in `backwardOrder` (default: reverse). */
function chain(sublayers: Wired[], backwardOrder: 'reverse' | 'same' = 'reverse'): Wired {
  const back = backwardOrder === 'reverse' ? [...sublayers].reverse() : sublayers;
  return {
    train: sublayers.flatMap((s) => s.train),
    eval: sublayers.flatMap((s) => s.eval),
    backward: back.flatMap((s) => s.backward),
  };
}

/** Output and saved statistics of a norm (LayerNorm: mean and rstd per row; RMSNorm: rstd). */
interface NormBuffers {
  y: GPUBuffer;
  mean: GPUBuffer | null;
  rstd: GPUBuffer;
}

/** The MLP's activations [T, inner]: GELU keeps its input and output, SwiGLU gate, up and their product. */
type MlpActivations = { pre: GPUBuffer; act: GPUBuffer } | { gate: GPUBuffer; up: GPUBuffer; act: GPUBuffer };

/** One block's activations, kept for its backward (one shared set with recompute). */
interface BlockActivations {
  norm1: NormBuffers;
  /** Each token's q/k/v row (after rotary positions). */
  qkv: GPUBuffer;
  attn: GPUBuffer;
  lse: GPUBuffer;
  /** The residual stream after attention. */
  mid: GPUBuffer;
  norm2: NormBuffers;
  mlp: MlpActivations;
}

/** A linear's input and output, and the gradients its backward reads and writes. */
interface LinearIo {
  x: GPUBuffer;
  y: GPUBuffer;
  dy: GPUBuffer;
  dx: GPUBuffer;
  /** The backward adds into dx instead of overwriting it (a second consumer of the same input). */
  accumulate?: boolean;
}

/** Scratch the backward of every block shares. */
interface Scratch {
  /** d(residual stream) [T, D]: d(next) on a block's entry, d(x) on its exit. */
  dX: GPUBuffer;
  /** d(norm output) [T, D]. */
  dNorm: GPUBuffer;
  dQkv: GPUBuffer;
  dAttn: GPUBuffer;
  /** d(MLP activation) [T, inner] (GELU: then d(pre-activation) in place). */
  dAct: GPUBuffer;
  /** SwiGLU: d(gate), d(up) [T, inner]. */
  dGate: GPUBuffer | null;
  dUp: GPUBuffer | null;
  /** Separate q/k/v projections: one projection's output, and its slice of dQkv [T, widest]. */
  projection: GPUBuffer | null;
  dProjection: GPUBuffer | null;
  /** LoRA's [T, r] gradient scratch. */
  dh: GPUBuffer;
  /** LoRA dropout's d(drop(x)) scratch [T, max in]; null without dropout. */
  dxDrop: GPUBuffer | null;
  attentionPartials: GPUBuffer | null;
  attentionHeadGroups: number;
}

/**
 * One training step for a fixed batch shape: every dispatch prepared once; `setBatch` writes the
 * step's tokens, masks and labels; `run` encodes forward, loss and backward (and the optimizer when
 * given) into one command buffer.
 */
export class TrainStep {
  readonly T: number;
  readonly forwardDispatches: Dispatch[] = [];
  /** The forward in evaluation mode: LoRA without dropout (the same dispatches without dropout). */
  readonly evalForwardDispatches: Dispatch[] = [];
  readonly lossDispatches: Dispatch[] = [];
  readonly backwardDispatches: Dispatch[] = [];
  /** The backward in evaluation mode (attributions): recomputed forwards without dropout. */
  private readonly evalBackwardDispatches: Dispatch[] = [];
  /** Final hidden states [T, D]. */
  hidden!: GPUBuffer;
  private cls: ClsHead | null = null;
  private ntp: NtpHead | null = null;
  private ids!: GPUBuffer;
  private pos!: GPUBuffer;
  private mask!: GPUBuffer;
  private embBackward: EmbeddingBackward | null = null;
  /** LoRA on the token embedding (target `wte`). */
  private embeddingLora: PreparedEmbeddingLora | null = null;
  private loras: PreparedLora[] = [];
  private ropes: Rope[] = [];
  /** LoRA scratch per site (one set per block linear, shared across blocks with recompute). */
  private readonly loraScratch = new Map<string, { h: GPUBuffer; xDrop: GPUBuffer | undefined }>();
  private readonly owned: GPUBuffer[] = [];
  private stepCounter = 0;
  /** Attributions: the embedding dispatches (with its LoRA), their output x0 (block 0's input), dX (holds d/dx0 after a backward). */
  private embeddingDispatches: Dispatch[] = [];
  private x0!: GPUBuffer;
  private dX!: GPUBuffer;
  private batchIds: Int32Array | null = null;
  private zeroNtpLogits: Dispatch | null = null;

  private constructor(
    readonly model: DecoderGpu,
    readonly shape: Required<StepShape>,
  ) {
    this.T = shape.packs * shape.packLength;
  }

  static async create(model: DecoderGpu, shape: StepShape): Promise<TrainStep> {
    const { packs, packLength } = shape;
    if (!Number.isInteger(packs) || packs < 1 || !Number.isInteger(packLength) || packLength < 1) {
      throw new ConfigError(`Batch shape must be whole packs (got ${packs} × ${packLength}).`);
    }
    const { decoder } = model;
    if (packLength > decoder.maxPositions) {
      throw new ConfigError(
        `Pack length ${packLength} exceeds the model's n_positions ${decoder.maxPositions}.`,
        'Choose a pack length no longer than the model context.',
      );
    }
    // Buffers that kernels bind whole (linear weights are split by the linear kernels themselves).
    const T = packs * packLength;
    const limit = model.ctx.adapter.limits.maxStorageBufferBindingSize;
    const widest = (pick: (b: BlockDesc) => number) => Math.max(0, ...decoder.blocks.map(pick));
    const whole: [string, number][] = [
      ['The token embedding table (f32)', decoder.vocab * decoder.width * 4],
      [`The MLP activations of ${T} tokens`, T * widest((b) => b.mlp.inner) * 4],
      [`The qkv activations of ${T} tokens`, T * widest((b) => qkvWidth(b.attention)) * 4],
    ];
    if (model.options.objective === 'ntp')
      whole.push([`The next-token logits of ${T} tokens`, T * decoder.vocab * 4]);
    for (const [what, bytes] of whole) {
      if (bytes > limit) throw new LimitExceededError(what, bytes, limit, 'maxStorageBufferBindingSize');
    }
    const step = new TrainStep(model, {
      packs,
      packLength,
      maxFunctions: shape.maxFunctions ?? packs * 8,
      recompute: shape.recompute ?? false,
      attentionHeadGroups: shape.attentionHeadGroups ?? 'auto',
    });
    const { device } = model.ctx;
    device.pushErrorScope('validation');
    let failure: unknown;
    try {
      await step.prepare();
    } catch (error) {
      failure = error;
    }
    const validation = await device.popErrorScope();
    if (failure || validation) {
      step.destroy();
      if (failure) throw failure;
      throw new GpuValidationError('TrainStep.create', validation!.message);
    }
    return step;
  }

  private get ctx(): GpuContext {
    return this.model.ctx;
  }

  /** Full finetuning: every base weight gets a gradient. */
  private get trainsAll(): boolean {
    return this.model.options.trainable === 'all';
  }

  private async buf(label: string, floats: number): Promise<GPUBuffer> {
    const b = await this.ctx.storage(label, Math.max(1, floats) * 4);
    this.owned.push(b);
    return b;
  }

  /** Bytes of the storage buffers of this step: activations, scratch, batch inputs and the head. */
  get activationBytes(): number {
    const head = this.cls?.bytes ?? this.ntp?.bytes ?? 0;
    return this.owned.reduce((a, b) => a + b.size, head);
  }

  private param(name: string): GPUBuffer {
    return this.model.buffer(name);
  }

  private grad(name: string): GPUBuffer {
    return this.model.grad(name);
  }

  private async prepare(): Promise<void> {
    const { decoder } = this.model;
    const T = this.T;
    const D = decoder.width;
    const { blocks } = decoder;
    const recompute = this.shape.recompute;

    this.ids = await this.buf('ids', T);
    this.pos = await this.buf('pos', T);
    this.mask = await this.buf('mask', 4 * T);

    // Each block's input, and its activations (with recompute, one set every block writes into and
    // the backward rebuilds right before it is needed).
    const inputs: GPUBuffer[] = [];
    const activations: BlockActivations[] = [];
    for (let l = 0; l < blocks.length; l++) {
      const shared = recompute && l > 0 ? activations[0] : null;
      activations.push(shared ?? (await this.blockActivations(blocks[l], recompute ? 'block' : `h${l}`)));
      inputs.push(await this.buf(`h${l}.x`, T * D));
    }
    const xOut = await this.buf('x.final', T * D);
    this.hidden = await this.buf('hidden', T * D);
    const finalNorm = await this.normBuffers(decoder.finalNorm, 'ln_f', this.hidden);
    const scratch = await this.scratch(blocks);
    const dHidden = await this.buf('dHidden', T * D);

    // Embeddings.
    this.x0 = inputs[0] ?? xOut;
    this.dX = scratch.dX;
    const embeddings = await this.embeddings(scratch);
    this.embeddingDispatches = [...embeddings.train];
    this.addForward(embeddings);

    // Blocks: forward now, backward later in reverse order.
    const blockWiring: Wired[] = [];
    for (let l = 0; l < blocks.length; l++) {
      const wired = await this.block(blocks[l], inputs[l], inputs[l + 1] ?? xOut, activations[l], scratch);
      this.addForward(wired);
      blockWiring.push(wired);
    }

    // Final norm, head and loss.
    const norm = decoder.finalNorm;
    this.addForward(same([await this.normForward(norm, xOut, finalNorm)]));
    const backward: Dispatch[] = [];
    if (this.trainsAll) {
      // The head (tied) and the embedding backward add into the tables' gradients: clear them first.
      backward.push(await fill(this.ctx, this.grad(decoder.tokenEmbedding), decoder.vocab * D));
      const wpe = decoder.positionEmbedding;
      if (wpe) backward.push(await fill(this.ctx, this.grad(wpe.weight), decoder.maxPositions * D));
    }
    const head = await this.head(dHidden);
    this.addForward(same(head.forward));
    backward.push(...head.backward);
    backward.push(...(await this.normBackward(norm, xOut, finalNorm, dHidden, scratch.dX, false)));
    this.addBackward(same([], backward));
    for (let l = blocks.length - 1; l >= 0; l--) {
      const wired = blockWiring[l];
      // Recompute: the block's forward into the shared activations, then its backward.
      this.addBackward({
        train: recompute ? wired.train : [],
        eval: recompute ? wired.eval : [],
        backward: wired.backward,
      });
    }
    // dX now holds d/dx0: the embedding's adapter, then (full finetuning) the tables.
    this.addBackward(same([], embeddings.backward));
  }

  private addForward(wired: Wired): void {
    this.forwardDispatches.push(...wired.train);
    this.evalForwardDispatches.push(...wired.eval);
  }

  /** Appends `train`/`eval` (recomputed forwards) and then `backward` to both backward lists. */
  private addBackward(wired: Wired): void {
    this.backwardDispatches.push(...wired.train, ...wired.backward);
    this.evalBackwardDispatches.push(...wired.eval, ...wired.backward);
  }

  private async normBuffers(norm: NormDesc, tag: string, y?: GPUBuffer): Promise<NormBuffers> {
    const T = this.T;
    return {
      y: y ?? (await this.buf(tag, T * this.model.decoder.width)),
      mean: norm.kind === 'layernorm' ? await this.buf(`${tag}.mean`, T) : null,
      rstd: await this.buf(`${tag}.rstd`, T),
    };
  }

  private async blockActivations(block: BlockDesc, tag: string): Promise<BlockActivations> {
    const T = this.T;
    const D = this.model.decoder.width;
    const { attention, mlp } = block;
    const inner = T * mlp.inner;
    return {
      norm1: await this.normBuffers(block.norm1, `${tag}.ln1`),
      qkv: await this.buf(`${tag}.qkv`, T * qkvWidth(attention)),
      attn: await this.buf(`${tag}.attn`, T * attention.nHead * attention.headDim),
      lse: await this.buf(`${tag}.lse`, T * attention.nHead),
      mid: await this.buf(`${tag}.mid`, T * D),
      norm2: await this.normBuffers(block.norm2, `${tag}.ln2`),
      mlp:
        mlp.kind === 'gelu'
          ? { pre: await this.buf(`${tag}.pre`, inner), act: await this.buf(`${tag}.act`, inner) }
          : {
              gate: await this.buf(`${tag}.gate`, inner),
              up: await this.buf(`${tag}.up`, inner),
              act: await this.buf(`${tag}.act`, inner),
            },
    };
  }

  private async scratch(blocks: BlockDesc[]): Promise<Scratch> {
    const T = this.T;
    const D = this.model.decoder.width;
    const lora = this.model.options.lora;
    const widest = (pick: (b: BlockDesc) => number) => Math.max(1, ...blocks.map(pick));
    const inner = widest((b) => b.mlp.inner);
    const swiglu = blocks.some((b) => b.mlp.kind === 'swiglu');
    const separate = blocks.some((b) => b.attention.projections.length > 1);
    const projectionWidth = widest((b) => Math.max(...b.attention.projections.map((p) => p.out)));
    const dX = await this.buf('dX', T * D);
    const dAct = await this.buf('dAct', T * inner);
    const dGate = swiglu ? await this.buf('dGate', T * inner) : null;
    const dUp = swiglu ? await this.buf('dUp', T * inner) : null;
    const dQkv = await this.buf('dQkv', T * widest((b) => qkvWidth(b.attention)));
    const projection = separate ? await this.buf('projection', T * projectionWidth) : null;
    const dProjection = separate ? await this.buf('dProjection', T * projectionWidth) : null;
    const dAttn = await this.buf('dAttn', T * widest((b) => b.attention.nHead * b.attention.headDim));
    const dNorm = await this.buf('dLn', T * D);
    const dh = await this.buf('lora.dh', T * (lora?.r ?? 1));
    const attention = blocks[0]?.attention;
    const shape = attention ? attentionKernelShape(T, attention) : null;
    const attentionHeadGroups = shape ? resolveHeadGroups(this.shape.attentionHeadGroups, shape) : 1;
    const partialsBytes = shape ? attentionPartialsBytes(shape, attentionHeadGroups) : 0;
    const attentionPartials =
      partialsBytes > 0 ? await this.buf('attention.partials', partialsBytes / 4) : null;
    const widestInput = widest((b) => Math.max(...blockLinears(b).map((l) => l.in)));
    const dxDrop = (lora?.dropout ?? 0) > 0 ? await this.buf('lora.dxDrop', T * widestInput) : null;
    return {
      dX,
      dNorm,
      dQkv,
      dAttn,
      dAct,
      dGate,
      dUp,
      projection,
      dProjection,
      dh,
      dxDrop,
      attentionPartials,
      attentionHeadGroups,
    };
  }

  /** Token (+ position) embeddings and the token embedding's LoRA, into x0. */
  private async embeddings(scratch: Scratch): Promise<Wired> {
    const { decoder, options } = this.model;
    const { ctx, T } = this;
    const lora = options.lora;
    const wpe = decoder.positionEmbedding;
    const tokens = { T, C: decoder.width, V: decoder.vocab, P: wpe ? decoder.maxPositions : 0 };
    const tokenTable = decoder.tokenEmbedding;
    const forward = [
      await embeddingForward(
        ctx,
        wpe
          ? {
              ids: this.ids,
              wte: this.param(tokenTable),
              x: this.x0,
              pos: this.pos,
              wpe: this.param(wpe.weight),
            }
          : { ids: this.ids, wte: this.param(tokenTable), x: this.x0 },
        tokens,
      ),
    ];
    const backward: Dispatch[] = [];
    if (lora?.targets.includes('wte')) {
      const { a, b } = decoder.embeddingLora;
      this.embeddingLora = await prepareEmbeddingLora(
        ctx,
        {
          ids: this.ids,
          a: this.param(a),
          b: this.param(b),
          x: this.x0,
          h: await this.buf('wte.lora.h', T * lora.r),
          dx: scratch.dX,
          gradA: this.grad(a),
          gradB: this.grad(b),
          dh: scratch.dh,
        },
        { T, D: decoder.width, V: decoder.vocab, rank: lora.r, alpha: lora.alpha },
      );
      forward.push(...this.embeddingLora.forward);
      backward.push(...this.embeddingLora.backward);
    }
    if (this.trainsAll) {
      this.embBackward = await embeddingBackward(
        ctx,
        wpe
          ? { dx: scratch.dX, dwte: this.grad(tokenTable), dwpe: this.grad(wpe.weight) }
          : { dx: scratch.dX, dwte: this.grad(tokenTable) },
        tokens,
      );
      backward.push(...this.embBackward.dispatches);
    }
    return same(forward, backward);
  }

  /**
   * One block, x → next: mid = x + attention(norm1(x)); next = mid + mlp(norm2(mid)). The backward
   * finds d(next) in scratch.dX and leaves d(x) there.
   */
  private async block(
    block: BlockDesc,
    x: GPUBuffer,
    next: GPUBuffer,
    a: BlockActivations,
    scratch: Scratch,
  ): Promise<Wired> {
    const { ctx, T } = this;
    const D = this.model.decoder.width;
    const { dX, dNorm, dAttn } = scratch;
    const { attention } = block;
    const norm1 = same(
      [await this.normForward(block.norm1, x, a.norm1)],
      await this.normBackward(block.norm1, x, a.norm1, dNorm, dX, true),
    );
    const output = await this.linear(attention.output, { x: a.attn, y: a.mid, dy: dX, dx: dAttn }, scratch);
    const norm2 = same(
      [await this.normForward(block.norm2, a.mid, a.norm2)],
      await this.normBackward(block.norm2, a.mid, a.norm2, dNorm, dX, true),
    );
    const residual1 = same([await add(ctx, a.mid, x, T * D)]);
    const residual2 = same([await add(ctx, next, a.mid, T * D)]);
    // Forward in order; backward in reverse (the residual adds need none: dX carries through).
    return chain([
      norm1,
      ...(await this.attention(attention, a, scratch)),
      output,
      residual1,
      norm2,
      await this.mlp(block.mlp, a.norm2.y, a.mlp, next, scratch),
      residual2,
    ]);
  }

  /**
   * q/k/v from norm1's output into the qkv row (one fused linear, or q, k and v placed side by side),
   * rotary positions on q and k, then attention into `attn`. Listed as sublayers in forward order.
   */
  private async attention(attention: AttentionDesc, a: BlockActivations, scratch: Scratch): Promise<Wired[]> {
    const { ctx, T } = this;
    const { dQkv, dNorm, dAttn } = scratch;
    const { projections } = attention;
    const rowStride = qkvWidth(attention);
    let qkv: Wired;
    if (projections.length === 1) {
      qkv = await this.linear(projections[0], { x: a.norm1.y, y: a.qkv, dy: dQkv, dx: dNorm }, scratch);
    } else {
      // Each projection into scratch, then placed in the row; its gradient taken back out of dQkv.
      // The first overwrites d(norm1 output), the others add to it.
      const { projection, dProjection } = scratch;
      const parts: Wired[] = [];
      let offset = 0;
      for (const [i, p] of projections.entries()) {
        const columns = { T, width: p.out, rowStride, offset };
        const io = { x: a.norm1.y, y: projection!, dy: dProjection!, dx: dNorm, accumulate: i > 0 };
        const linear = await this.linear(p, io, scratch);
        parts.push({
          train: [...linear.train, await placeColumns(ctx, { src: projection!, dst: a.qkv }, columns)],
          eval: [...linear.eval, await placeColumns(ctx, { src: projection!, dst: a.qkv }, columns)],
          backward: [await takeColumns(ctx, { src: dQkv, dst: dProjection! }, columns), ...linear.backward],
        });
        offset += p.out;
      }
      qkv = chain(parts, 'same');
    }
    const sublayers = [qkv];
    if (attention.rope) {
      const { nHead, kvHeads, headDim } = attention;
      const rope = await prepareRope(
        ctx,
        { pos: this.pos, qkv: a.qkv, dQkv },
        {
          T,
          nHead,
          nKvHead: kvHeads,
          headDim,
          layout: ropeQkvLayout(attention.layout, nHead, kvHeads, headDim),
        },
        attention.rope,
      );
      this.ropes.push(rope);
      sublayers.push(same(rope.forward, rope.backward));
    }
    const shape = attentionKernelShape(T, attention);
    sublayers.push(
      same(
        [await attentionForward(ctx, a.qkv, this.mask, a.attn, a.lse, shape)],
        await attentionBackward(ctx, a.qkv, this.mask, a.attn, dAttn, a.lse, dQkv, shape, {
          headGroups: scratch.attentionHeadGroups,
          partials: scratch.attentionPartials ?? undefined,
        }),
      ),
    );
    return sublayers;
  }

  /** The MLP from x (norm2's output) into `next`; its backward finds d(next) in dX, leaves d(x) in dNorm. */
  private async mlp(
    mlp: MlpDesc,
    x: GPUBuffer,
    a: MlpActivations,
    next: GPUBuffer,
    scratch: Scratch,
  ): Promise<Wired> {
    const { ctx, T } = this;
    const { dX, dNorm, dAct } = scratch;
    const n = T * mlp.inner;
    if (mlp.kind === 'gelu' && 'pre' in a) {
      return chain([
        await this.linear(mlp.up, { x, y: a.pre, dy: dAct, dx: dNorm }, scratch),
        same(
          [await geluForward(ctx, a.pre, a.act, n, mlp.activation)],
          [await geluBackwardInPlace(ctx, a.pre, dAct, n, mlp.activation)], // dAct → d(pre)
        ),
        await this.linear(mlp.down, { x: a.act, y: next, dy: dX, dx: dAct }, scratch),
      ]);
    }
    if (mlp.kind === 'swiglu' && 'gate' in a) {
      const dGate = scratch.dGate!;
      const dUp = scratch.dUp!;
      const shape = { T, I: mlp.inner };
      // Backward in reverse: down, swiglu, up (overwrites dNorm), gate (adds to it).
      return chain([
        await this.linear(mlp.gate, { x, y: a.gate, dy: dGate, dx: dNorm, accumulate: true }, scratch),
        await this.linear(mlp.up, { x, y: a.up, dy: dUp, dx: dNorm }, scratch),
        same(
          [await swigluForward(ctx, { gate: a.gate, up: a.up, h: a.act }, shape)],
          [await swigluBackward(ctx, { gate: a.gate, up: a.up, dh: dAct, dgate: dGate, dup: dUp }, shape)],
        ),
        await this.linear(mlp.down, { x: a.act, y: next, dy: dX, dx: dAct }, scratch),
      ]);
    }
    throw new InternalError(`train step: ${mlp.kind} MLP without its activations`);
  }

  private async normForward(norm: NormDesc, x: GPUBuffer, out: NormBuffers): Promise<Dispatch> {
    const shape = { T: this.T, C: this.model.decoder.width, eps: norm.eps };
    const { y, mean, rstd } = out;
    const weight = this.param(norm.weight);
    if (norm.kind === 'rmsnorm') return rmsNormForward(this.ctx, { x, weight, y, rstd }, shape);
    const beta = this.param(norm.bias!);
    return layerNormForward(this.ctx, { x, gamma: weight, beta, y, mean: mean!, rstd }, shape);
  }

  /** dx (+)= d(input) from dy, and the norm's own gradients in full finetuning. */
  private async normBackward(
    norm: NormDesc,
    x: GPUBuffer,
    saved: NormBuffers,
    dy: GPUBuffer,
    dx: GPUBuffer,
    accumulate: boolean,
  ): Promise<Dispatch[]> {
    const { ctx, trainsAll } = this;
    const shape = { T: this.T, C: this.model.decoder.width, eps: norm.eps };
    const { mean, rstd } = saved;
    const weight = this.param(norm.weight);
    if (norm.kind === 'rmsnorm') {
      const out = [await rmsNormBackward(ctx, { x, weight, rstd, dy, dx }, shape, { accumulate })];
      if (trainsAll) {
        out.push(await rmsNormBackwardParams(ctx, { x, rstd, dy, dweight: this.grad(norm.weight) }, shape));
      }
      return out;
    }
    const out = [
      await layerNormBackward(ctx, { x, gamma: weight, mean: mean!, rstd, dy, dx }, shape, { accumulate }),
    ];
    if (trainsAll) {
      const grads = { dgamma: this.grad(norm.weight), dbeta: this.grad(norm.bias!) };
      out.push(await layerNormBackwardParams(ctx, { x, mean: mean!, rstd, dy, ...grads }, shape));
    }
    return out;
  }

  /** y = x·Wᵀ (+ b) (+ LoRA); the backward writes (or adds to) dx from dy, and the weights' gradients. */
  private async linear(desc: LinearDesc, io: LinearIo, scratch: Scratch): Promise<Wired> {
    const { ctx, T } = this;
    const { x, y, dy, dx } = io;
    const { options } = this.model;
    const weight = this.model.linearWeight(desc.module);
    const biasShape = { T, C: desc.out };
    const train = [...(await linearForward(ctx, x, weight, y, T))];
    if (desc.bias) train.push(await biasForward(ctx, y, this.param(`${desc.module}.bias`), biasShape));
    const evalForward = [...train];
    const backward = [
      ...(await linearBackwardInput(ctx, dy, weight, dx, T, { beta: io.accumulate ? 1 : 0 })),
    ];
    const lora = options.lora;
    if (lora?.targets.includes(desc.target)) {
      const branch = await this.loraBranch(desc, io, scratch);
      train.push(...branch.train);
      evalForward.push(...branch.eval);
      backward.push(...branch.backward);
    }
    if (this.trainsAll) {
      backward.push(
        await matmul(ctx, dy, x, this.grad(`${desc.module}.weight`), {
          M: desc.out,
          N: desc.in,
          K: T,
          transA: true,
          transB: false,
        }),
      );
      if (desc.bias) backward.push(await biasBackward(ctx, dy, this.grad(`${desc.module}.bias`), biasShape));
    }
    return { train, eval: evalForward, backward };
  }

  /** The LoRA branch y += s·B(A(drop(x))) of one linear; evaluation runs it without dropout. */
  private async loraBranch(desc: LinearDesc, io: LinearIo, scratch: Scratch): Promise<Wired> {
    const { ctx, T } = this;
    const { x, y, dy, dx } = io;
    const { options } = this.model;
    const lora = options.lora!;
    const { dropout } = lora;
    const site = this.shape.recompute ? `block.${desc.target}` : desc.module;
    let own = this.loraScratch.get(site);
    if (!own) {
      own = {
        h: await this.buf(`${site}.lora.h`, T * lora.r),
        xDrop: dropout > 0 ? await this.buf(`${site}.lora.xDrop`, T * desc.in) : undefined,
      };
      this.loraScratch.set(site, own);
    }
    const a = `${desc.module}.lora_A.weight`;
    const b = `${desc.module}.lora_B.weight`;
    const shape = { T, inFeatures: desc.in, outFeatures: desc.out, rank: lora.r, alpha: lora.alpha };
    const seed = options.seed ?? 0;
    const prepared = await prepareLora(
      ctx,
      {
        x,
        a: this.param(a),
        b: this.param(b),
        y,
        h: own.h,
        xDrop: own.xDrop,
        dy,
        dx,
        gradA: this.grad(a),
        gradB: this.grad(b),
        dh: scratch.dh,
        dxDrop: scratch.dxDrop ?? undefined,
      },
      { ...shape, dropout },
      { seed, site: desc.site },
    );
    this.loras.push(prepared);
    // Evaluation: the same matmuls on x instead of drop(x).
    const evalForward =
      dropout > 0
        ? (
            await prepareLora(
              ctx,
              { x, a: this.param(a), b: this.param(b), y, h: own.h },
              { ...shape, dropout: 0 },
              { seed, site: 0 },
            )
          ).forward
        : prepared.forward;
    return { train: prepared.forward, eval: evalForward, backward: prepared.backward };
  }

  /** The objective's head on the final hidden states: score + focal loss (cls) or the tied LM head (ntp). */
  private async head(dHidden: GPUBuffer): Promise<{ forward: Dispatch[]; backward: Dispatch[] }> {
    const { decoder, options, trainableNames } = this.model;
    const { ctx, T } = this;
    const D = decoder.width;
    if (options.objective === 'cls') {
      const trainScore = trainableNames.includes(decoder.score);
      this.cls = await ClsHead.create(
        ctx,
        { T, D, F: this.shape.maxFunctions },
        {
          hidden: this.hidden,
          score: this.param(decoder.score),
          dhidden: dHidden,
          dscore: trainScore ? this.grad(decoder.score) : undefined,
        },
      );
      this.lossDispatches.push(...this.cls.lossDispatches);
      return { forward: this.cls.forward, backward: this.cls.backward };
    }
    this.ntp = await NtpHead.create(
      ctx,
      { T, D, V: decoder.vocab },
      {
        hidden: this.hidden,
        wte: this.param(decoder.lmHead),
        dhidden: dHidden,
        dwte: this.trainsAll ? this.grad(decoder.lmHead) : undefined,
        // Tied: the head's gradient adds to the table's, which the embedding backward adds to too.
        accumulateWte: decoder.lmHead === decoder.tokenEmbedding,
      },
    );
    this.lossDispatches.push(...this.ntp.lossDispatches);
    return { forward: this.ntp.forward, backward: this.ntp.backward };
  }

  /** Writes the step's batch: tokens, positions, the attention mask and the loss targets. */
  setBatch(batch: PackedBatch): void {
    const { packs, packLength } = this.shape;
    const { decoder, ctx, options } = this.model;
    if (batch.inputIds.length !== packs || batch.inputIds.some((row) => row.length !== packLength)) {
      throw new ConfigError(`This step was prepared for ${packs} packs of ${packLength} tokens.`);
    }
    const ids = Int32Array.from(batch.inputIds.flat());
    const pos = Int32Array.from(batch.positionIds.flat());
    const seg = Int32Array.from(batch.segmentIds.flat());
    if (pos.length !== this.T || seg.length !== this.T) {
      throw new ConfigError('position_ids and segment_ids must have the shape of input_ids.');
    }
    validateIds(ids, decoder.vocab, 'token id');
    validateIds(pos, decoder.maxPositions, 'position id');
    const window = decoder.blocks[0]?.attention.slidingWindow ?? undefined;
    const mask = buildAttentionMask(seg, packLength, options.mode, window);
    validateAttentionMask(mask);
    ctx.write(this.ids, ids);
    this.batchIds = ids;
    ctx.write(this.pos, pos);
    ctx.write(this.mask, maskBufferData(mask));
    this.embBackward?.setTokens(ids, decoder.positionEmbedding ? pos : undefined);
    this.embeddingLora?.setTokens(ids);
    if (this.cls) {
      this.cls.setFunctions(
        batch.functions.map((f) => {
          if (f.pack < 0 || f.pack >= packs || f.last < 0 || f.last >= packLength) {
            throw new ConfigError(`Function at pack ${f.pack}, token ${f.last} is outside the batch.`);
          }
          if (seg[f.pack * packLength + f.last] === -1) {
            throw new ConfigError(`Function at pack ${f.pack} ends on token ${f.last}, which is padding.`);
          }
          return { row: f.pack * packLength + f.last, label: f.label, weight: f.weight };
        }),
      );
    }
    this.ntp?.setTargets(ntpTargets(ids, seg, packLength, options.mode));
  }

  /** Focal loss γ and α (cls); changes the next step without rebuilding anything. */
  setFocal(focal: FocalOptions): void {
    if (!this.cls) throw new InternalError('setFocal: the next-token objective has no focal loss');
    this.cls.setFocal(focal);
  }

  /** Forward and loss only, in evaluation mode (no dropout); read the loss or logits afterwards. */
  async evaluate(): Promise<void> {
    await this.model.ctx.run([...this.evalForwardDispatches, ...this.lossDispatches]);
  }

  /**
   * One step: forward, loss, backward and then `after` (e.g. the optimizer's dispatches), encoded in
   * one command buffer and submitted; resolves when the GPU has finished.
   */
  /** Training steps run so far: keys the LoRA dropout masks, so a resumed run restores it. */
  get dropoutStep(): number {
    return this.stepCounter;
  }

  set dropoutStep(step: number) {
    this.stepCounter = step;
  }

  async run(after: readonly Dispatch[] = []): Promise<void> {
    for (const l of this.loras) l.setStep(this.stepCounter);
    this.stepCounter++;
    await this.model.ctx.run([
      ...this.forwardDispatches,
      ...this.lossDispatches,
      ...this.backwardDispatches,
      ...after,
    ]);
  }

  /**
   * Attributions: the embedding output x0 = wte[ids] + wpe[pos] [T, D] of the batch or, given `ids`
   * ([T]), of those tokens at the batch's positions (all pad ids: the integrated-gradients baseline).
   * The batch's own ids are put back afterwards.
   */
  async embed(ids?: Int32Array): Promise<Float32Array> {
    const { ctx, decoder } = this.model;
    if (!this.batchIds) throw new InternalError('embed: no batch set');
    if (ids) {
      if (ids.length !== this.T) throw new ConfigError(`embed: ${ids.length} ids for ${this.T} tokens.`);
      validateIds(ids, decoder.vocab, 'token id');
      ctx.write(this.ids, ids);
    }
    try {
      await ctx.run(this.embeddingDispatches);
    } finally {
      if (ids) ctx.write(this.ids, this.batchIds);
    }
    return ctx.readF32(this.x0, this.T * decoder.width);
  }

  /**
   * Attributions: the gradient of a score with respect to the embedding output x0, with the existing
   * backward. Runs the evaluation forward from `x0` ([T, D]; default: the batch's own embeddings),
   * seeds the head with d(score)/d(logits) instead of the loss and runs the backward. Weights are not
   * updated; the trainable parameters' gradient buffers are overwritten (do not call this between the
   * micro-steps of an accumulated update).
   *
   * score = Σ weight · margin over `terms`, margin = logit(vulnerable) − logit(not): cls, the head's
   * logit 1 − logit 0 of function `at` (the batch's function index); ntp, the `answers.yes` − `answers.no`
   * logit at token row `at`. Returns each term's margin and d(score)/d(x0) [T, D].
   */
  async scoreInputGradient(
    terms: readonly { at: number; weight: number }[],
    options: { x0?: Float32Array; answers?: { yes: number; no: number } } = {},
  ): Promise<{ margins: Float32Array; grad: Float32Array }> {
    const { ctx, decoder } = this.model;
    const lora = this.model.options.lora;
    if (lora && lora.dropout > 0) {
      throw new ConfigError('Attributions need a model without LoRA dropout (as a detector loads it).');
    }
    if (!this.batchIds) throw new InternalError('scoreInputGradient: no batch set');
    const T = this.T;
    const D = decoder.width;
    let forward = this.evalForwardDispatches;
    if (options.x0) {
      if (options.x0.length !== T * D) throw new ConfigError(`x0 needs ${T * D} values.`);
      ctx.write(this.x0, options.x0);
      forward = forward.filter((d) => !this.embeddingDispatches.includes(d));
    }
    const backward = this.evalBackwardDispatches;
    const margins = new Float32Array(terms.length);
    if (this.cls) {
      const F = this.cls.functionCount;
      const dlogits = new Float32Array(this.shape.maxFunctions * 2);
      for (const { at, weight } of terms) {
        if (!Number.isInteger(at) || at < 0 || at >= F)
          throw new ConfigError(`No function ${at} in the batch.`);
        dlogits[2 * at] -= weight;
        dlogits[2 * at + 1] += weight;
      }
      ctx.write(this.cls.dlogits, dlogits);
      await ctx.run([...forward, ...backward]);
      const logits = await this.readClsLogits();
      terms.forEach(({ at }, i) => (margins[i] = logits[2 * at + 1] - logits[2 * at]));
    } else {
      const { answers } = options;
      if (!answers) throw new ConfigError('The next-token score needs the answer tokens.');
      const V = decoder.vocab;
      validateIds(Int32Array.of(answers.yes, answers.no), V, 'answer token');
      const seeds = new Map<number, number>();
      for (const { at, weight } of terms) {
        if (!Number.isInteger(at) || at < 0 || at >= T)
          throw new ConfigError(`No token row ${at} in the batch.`);
        seeds.set(at * V + answers.yes, (seeds.get(at * V + answers.yes) ?? 0) + weight);
        seeds.set(at * V + answers.no, (seeds.get(at * V + answers.no) ?? 0) - weight);
      }
      await ctx.run(forward);
      const cells = await ctx.readF32At(
        this.ntp!.logits,
        terms.flatMap(({ at }) => [at * V + answers.yes, at * V + answers.no]),
      );
      terms.forEach((_, i) => (margins[i] = cells[2 * i] - cells[2 * i + 1]));
      // The backward reads d(score)/d(logits) from the logits buffer (where the loss would put it).
      this.zeroNtpLogits ??= await fill(ctx, this.ntp!.logits, T * V);
      await ctx.run([this.zeroNtpLogits]);
      for (const [offset, value] of seeds) ctx.write(this.ntp!.logits, Float32Array.of(value), offset * 4);
      await ctx.run(backward);
    }
    return { margins, grad: await ctx.readF32(this.dX, T * D) };
  }

  get lossBuffer(): GPUBuffer {
    return (this.cls?.loss ?? this.ntp?.loss)!;
  }

  async readLoss(): Promise<number> {
    return (await this.model.ctx.readF32(this.lossBuffer, 1))[0];
  }

  /** cls: logits [F, 2] of the batch's functions (valid after a forward). */
  async readClsLogits(): Promise<Float32Array> {
    if (!this.cls) throw new InternalError('readClsLogits: objective is ntp');
    return this.model.ctx.readF32(this.cls.logits, this.cls.functionCount * 2);
  }

  /**
   * The evaluation forward alone and its logits: ntp [T, V] (run without the loss, which overwrites
   * them with their gradient), cls [F, 2] of the batch's functions.
   */
  async forwardLogits(): Promise<Float32Array> {
    await this.model.ctx.run(this.evalForwardDispatches);
    if (this.cls) return this.readClsLogits();
    return this.model.ctx.readF32(this.ntp!.logits, this.T * this.model.decoder.vocab);
  }

  /**
   * ntp: the evaluation forward, then only the logits asked for — `cells` are (token row, vocabulary
   * column) pairs, e.g. the " YES" and " NO" columns at each prompt's last token — not all T·V of them.
   */
  async forwardNtpLogitsAt(
    cells: readonly (readonly [row: number, column: number])[],
  ): Promise<Float32Array> {
    if (!this.ntp) throw new InternalError('forwardNtpLogitsAt: objective is cls');
    await this.model.ctx.run(this.evalForwardDispatches);
    const V = this.model.decoder.vocab;
    return this.model.ctx.readF32At(
      this.ntp.logits,
      cells.map(([row, column]) => row * V + column),
    );
  }

  /** ntp: the [T, V] logits buffer (holds dlogits after the loss has run). */
  get ntpLogits(): GPUBuffer {
    if (!this.ntp) throw new InternalError('ntpLogits: objective is cls');
    return this.ntp.logits;
  }

  async readHidden(): Promise<Float32Array> {
    return this.model.ctx.readF32(this.hidden, this.T * this.model.decoder.width);
  }

  destroy(): void {
    this.cls?.destroy();
    this.ntp?.destroy();
    this.embBackward?.destroy();
    this.embeddingLora?.destroy();
    for (const rope of this.ropes) rope.destroy();
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
  }
}
