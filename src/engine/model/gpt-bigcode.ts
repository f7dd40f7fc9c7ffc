/**
 * GPT-BigCode on the GPU: parameters uploaded from a name → array map (Hugging Face names), and a
 * `TrainStep` that prepares every dispatch of a step once for a batch shape (bind groups cached) and
 * encodes forward, loss and backward into one command encoder per step. Loss, logits and gradients are
 * read back only when asked.
 *
 * Layers come from the kernel modules: embedding, layernorm, linear (f32/f16/q8_0/q4_0 weights), bias,
 * LoRA (+ dropout), packed attention, gelu, add, the losses of kernels/loss.ts, and the optimizer of
 * model/optimizer.ts. All activations of the forward are kept (one set per block) for the backward.
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
import {
  embeddingBackward,
  embeddingForward,
  validateIds,
  type EmbeddingBackward,
} from '../kernels/embedding.ts';
import { geluBackwardInPlace, geluForward, geluKind } from '../kernels/gelu.ts';
import { layerNormBackward, layerNormBackwardParams, layerNormForward } from '../kernels/layernorm.ts';
import { linearBackwardInput, linearForward, uploadWeight, type LinearWeight } from '../kernels/linear.ts';
import { prepareLora, type PreparedLora } from '../kernels/lora.ts';
import { prepareEmbeddingLora, type PreparedEmbeddingLora } from '../kernels/embedding-lora.ts';
import { ClsHead, NtpHead } from '../kernels/loss.ts';
import { matmul } from '../kernels/matmul.ts';
import { decodeWeight, encodeWeight, weightBytes, type WeightFormat } from '../quant.ts';
import { maskBufferData } from '../reference/attention.ts';
import type { PackedBatch } from '../reference/gptbigcode.ts';
import { ntpTargets, type AttentionMode, type FocalOptions } from '../reference/loss.ts';
import { GpuValidationError, InternalError, LimitExceededError, ShapeError } from '../errors.ts';
import {
  ConfigError,
  EMBEDDING_LORA_A,
  EMBEDDING_LORA_B,
  LINEAR_TARGETS,
  baseParamSpecs,
  blockPrefix,
  checkParams,
  linearShape,
  loraParamSpecs,
  numel,
  resolveConfig,
  trainableSpecs,
  type GptBigCodeConfig,
  type LoraConfig,
  type LinearTarget,
  type ParamSpec,
  type ResolvedConfig,
  type Trainable,
} from './config.ts';
import { attentionPartialsBytes, resolveHeadGroups } from './sizes.ts';

export type Objective = 'cls' | 'ntp';

export interface GpuModelOptions {
  config: GptBigCodeConfig;
  lora: LoraConfig | null;
  mode: AttentionMode;
  objective: Objective;
  trainable: Trainable;
  /** Storage format of the four block linears (frozen base weights); f32 for full finetuning. */
  weightFormat?: WeightFormat;
  /** Seed of the LoRA dropout masks. */
  seed?: number;
}

interface Param {
  spec: ParamSpec;
  buffer: GPUBuffer;
  grad: GPUBuffer | null;
}

/** The model's parameters on the GPU: base weights, LoRA adapters and the score head. */
export class GptBigCodeGpu {
  readonly c: ResolvedConfig;
  readonly weightFormat: WeightFormat;
  /** Names of the parameters that get gradients, in a fixed order (LoRA, score; or everything). */
  readonly trainableNames: string[];
  private readonly params = new Map<string, Param>();
  private readonly linears = new Map<string, LinearWeight>();

  private constructor(
    readonly ctx: GpuContext,
    readonly options: GpuModelOptions,
  ) {
    this.c = resolveConfig(options.config);
    this.weightFormat = options.weightFormat ?? 'f32';
    const withScore = options.objective === 'cls';
    this.trainableNames = trainableSpecs(options.config, options.lora, options.trainable, withScore).map(
      (s) => s.name,
    );
  }

  /**
   * Starts building the model one tensor at a time (see `GptBigCodeUploader`): the streaming path of
   * model loading, where the CPU never holds more than the tensor being uploaded.
   */
  static begin(ctx: GpuContext, options: GpuModelOptions): GptBigCodeUploader {
    const weightFormat = options.weightFormat ?? 'f32';
    if (options.trainable === 'all' && weightFormat !== 'f32') {
      throw new ConfigError(
        `Full finetuning needs f32 weights (got ${weightFormat}).`,
        'Train LoRA adapters on quantized weights, or load f32 weights for full finetuning.',
      );
    }
    const model = new GptBigCodeGpu(ctx, options);
    return new GptBigCodeUploader(model, (spec, buffer, linear) => {
      model.params.set(spec.name, { spec, buffer, grad: null });
      if (linear) model.linears.set(spec.name, linear);
      return (grad) => void (model.params.get(spec.name)!.grad = grad);
    });
  }

  /**
   * Uploads `values` (every base parameter, LoRA tensors when `lora`, score.weight for 'cls').
   * `encoded` may supply block linears already in `weightFormat` (e.g. q8_0 bytes straight from a
   * GGUF file, layout of quant.ts); those names may then be absent from `values`. The same path as
   * `begin`: each tensor is converted, uploaded and dropped in turn.
   */
  static async create(
    ctx: GpuContext,
    options: GpuModelOptions,
    values: ReadonlyMap<string, ArrayLike<number>>,
    encoded: ReadonlyMap<string, Uint8Array> = new Map(),
  ): Promise<GptBigCodeGpu> {
    const uploader = GptBigCodeGpu.begin(ctx, options);
    try {
      for (const [name, bytes] of encoded) {
        const spec = uploader.spec(name);
        if (spec?.kind !== 'linear-weight') {
          throw new ConfigError(`Encoded weight ${name} is not a block linear weight of this model.`);
        }
        await uploader.put(name, spec.shape, uploader.model.weightFormat, bytes);
      }
      return await uploader.finish(values);
    } catch (error) {
      uploader.abort();
      throw error;
    }
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  buffer(name: string): GPUBuffer {
    const p = this.params.get(name);
    if (!p) throw new ShapeError(`model: no parameter ${name}`);
    return p.buffer;
  }

  grad(name: string): GPUBuffer {
    const g = this.params.get(name)?.grad;
    if (!g) throw new InternalError(`model: ${name} is not trainable`);
    return g;
  }

  shape(name: string): number[] {
    const p = this.params.get(name);
    if (!p) throw new ShapeError(`model: no parameter ${name}`);
    return p.spec.shape;
  }

  linear(layer: number, target: LinearTarget): LinearWeight {
    return this.linears.get(`${blockPrefix(layer)}.${target}.weight`)!;
  }

  /** A parameter's current values (f32 parameters only; quantized linears are not read back). */
  async readParam(name: string): Promise<Float32Array> {
    const p = this.params.get(name);
    if (!p) throw new ShapeError(`model: no parameter ${name}`);
    if (p.spec.kind === 'linear-weight' && this.weightFormat !== 'f32') {
      throw new InternalError(`model: ${name} is stored as ${this.weightFormat}`);
    }
    return this.ctx.readF32(p.buffer, count(p.spec));
  }

  async readGrad(name: string): Promise<Float32Array> {
    const p = this.params.get(name);
    if (!p?.grad) throw new InternalError(`model: ${name} is not trainable`);
    return this.ctx.readF32(p.grad, count(p.spec));
  }

  /** Overwrites a parameter (f32 parameters only). */
  writeParam(name: string, data: ArrayLike<number>): void {
    const p = this.params.get(name);
    if (!p || (p.spec.kind === 'linear-weight' && this.weightFormat !== 'f32')) {
      throw new ShapeError(`model: cannot write ${name}`);
    }
    if (data.length !== count(p.spec)) throw new ShapeError(`model: ${name} needs ${count(p.spec)} values`);
    this.ctx.write(p.buffer, Float32Array.from(data));
  }

  /** Bytes of the parameter buffers (base weights in their format, LoRA, head). */
  get paramBytes(): number {
    let bytes = 0;
    for (const p of this.params.values()) bytes += p.buffer.size;
    return bytes;
  }

  /** Bytes of the gradient buffers. */
  get gradBytes(): number {
    let bytes = 0;
    for (const p of this.params.values()) bytes += p.grad?.size ?? 0;
    return bytes;
  }

  /** Trainable parameters with their gradient buffers, in `trainableNames` order. */
  trainables(): { name: string; param: GPUBuffer; grad: GPUBuffer; size: number }[] {
    return this.trainableNames.map((name) => {
      const p = this.params.get(name)!;
      return { name, param: p.buffer, grad: p.grad!, size: count(p.spec) };
    });
  }

  destroy(): void {
    for (const p of this.params.values()) {
      p.buffer.destroy();
      p.grad?.destroy();
    }
    this.params.clear();
  }
}

const count = (spec: ParamSpec): number => spec.shape.reduce((a, b) => a * b, 1);

/** What an upload cost on each side. */
export interface UploadStats {
  /** Tensors uploaded (checkpoint tensors and the ones `finish` supplied). */
  tensors: number;
  /** Bytes of the parameter and gradient buffers created. */
  gpuBytes: number;
  /**
   * Most CPU bytes the uploader referenced at once: the tensor handed to it plus any converted copy
   * (none when it arrives in its storage format). Streaming keeps this at about the largest tensor.
   */
  peakHeldBytes: number;
}

/** Bytes written between waits for the queue, so the driver's staging copies are recycled. */
const FLUSH_BYTES = 32 << 20;

type Register = (
  spec: ParamSpec,
  buffer: GPUBuffer,
  linear: LinearWeight | undefined,
) => (grad: GPUBuffer) => void;

/**
 * Builds a `GptBigCodeGpu` tensor by tensor (from `GptBigCodeGpu.begin`). `put` takes one tensor in
 * any weight format, stores it in its format on the GPU — the block linears in the model's
 * `weightFormat` (f32/f16/q8_0/q4_0, as `uploadWeight` lays them out), everything else in f32 —
 * converting only when the formats differ, and keeps no reference to it. `finish` uploads what the
 * checkpoint does not hold (LoRA A/B, the score head) and checks that every parameter arrived.
 * Any failure (a bad tensor, an allocation, a missing parameter) or `abort()` destroys every buffer
 * uploaded so far: nothing half-loaded stays on the GPU.
 */
export class GptBigCodeUploader {
  readonly stats: UploadStats = { tensors: 0, gpuBytes: 0, peakHeldBytes: 0 };
  private readonly pending = new Map<string, ParamSpec>();
  private readonly trainable: Set<string>;
  private state: 'open' | 'finished' | 'aborted' = 'open';
  private unflushed = 0;
  /** CPU bytes handed to uploads that have not returned yet. */
  private held = 0;

  constructor(
    readonly model: GptBigCodeGpu,
    private readonly register: Register,
  ) {
    const { config, lora, objective } = model.options;
    for (const spec of [
      ...baseParamSpecs(config, objective === 'cls'),
      ...(lora ? loraParamSpecs(config, lora) : []),
    ]) {
      this.pending.set(spec.name, spec);
    }
    this.trainable = new Set(model.trainableNames);
  }

  /** The spec of a parameter not yet uploaded. */
  spec(name: string): ParamSpec | undefined {
    return this.pending.get(name);
  }

  /** Parameters not yet uploaded. */
  get missing(): ParamSpec[] {
    return [...this.pending.values()];
  }

  /** Uploads one tensor given as bytes in `format` (layouts of quant.ts). */
  put(name: string, shape: readonly number[], format: WeightFormat, bytes: Uint8Array): Promise<void> {
    return this.guard(async () => {
      const spec = this.take(name);
      if (shape.join() !== spec.shape.join()) {
        throw new ConfigError(
          `${name} is [${shape.join(', ')}] but this model's config implies [${spec.shape.join(', ')}].`,
          'Check that the checkpoint belongs to this config (n_embd, n_layer, multi_query).',
        );
      }
      const target = this.formatOf(spec);
      const [rows, cols] = rowsCols(spec.shape);
      const need = weightBytes(format, rows, cols);
      if (bytes.byteLength < need) {
        throw new ConfigError(
          `${name}: ${bytes.byteLength} bytes, ${format} [${shape.join(', ')}] needs ${need}.`,
        );
      }
      if (format === target) return this.upload(spec, target, bytes.subarray(0, need), need);
      const values = decodeWeight(format, rows, cols, bytes);
      const data =
        target === 'f32' ? new Uint8Array(values.buffer) : encodeWeight(target, rows, cols, values);
      const held = bytes.byteLength + values.byteLength + (target === 'f32' ? 0 : data.byteLength);
      return this.upload(spec, target, data, held);
    });
  }

  /** Uploads one tensor given as f32 values. */
  putValues(name: string, values: ArrayLike<number>): Promise<void> {
    return this.guard(async () => {
      const spec = this.take(name);
      if (values.length !== count(spec)) {
        throw new ConfigError(
          `${name} has ${values.length} values, expected [${spec.shape.join(', ')}] = ${count(spec)}.`,
        );
      }
      const target = this.formatOf(spec);
      const data =
        target === 'f32'
          ? new Uint8Array(Float32Array.from(values).buffer)
          : encodeWeight(target, ...rowsCols(spec.shape), values);
      return this.upload(spec, target, data, data.byteLength + values.length * 4);
    });
  }

  /**
   * Uploads the parameters still missing from `rest` (LoRA A/B, score head: f32 values), checks
   * that nothing is missing and returns the model. Names already uploaded are ignored in `rest`.
   */
  finish(rest: ReadonlyMap<string, ArrayLike<number>> = new Map()): Promise<GptBigCodeGpu> {
    return this.guard(async () => {
      const missing = this.missing;
      checkParams(missing, rest);
      for (const spec of missing) await this.putValues(spec.name, rest.get(spec.name)!);
      await this.flush();
      this.state = 'finished';
      return this.model;
    });
  }

  /** Destroys everything uploaded so far (idempotent; a finished model is the caller's to destroy). */
  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.model.destroy();
  }

  private formatOf(spec: ParamSpec): WeightFormat {
    return spec.kind === 'linear-weight' ? this.model.weightFormat : 'f32';
  }

  private take(name: string): ParamSpec {
    const spec = this.pending.get(name);
    if (!spec) {
      throw new ConfigError(
        this.model.has(name)
          ? `${name} was uploaded twice.`
          : `${name} is not a parameter of this model (n_layer ${this.model.c.n_layer}).`,
      );
    }
    this.pending.delete(name);
    return spec;
  }

  private async upload(spec: ParamSpec, format: WeightFormat, data: Uint8Array, held: number): Promise<void> {
    this.held += held;
    this.stats.peakHeldBytes = Math.max(this.stats.peakHeldBytes, this.held);
    try {
      await this.store(spec, format, data);
    } finally {
      this.held -= held;
    }
  }

  private async store(spec: ParamSpec, format: WeightFormat, data: Uint8Array): Promise<void> {
    const { ctx } = this.model;
    let linear: LinearWeight | undefined;
    let buffer: GPUBuffer;
    if (spec.kind === 'linear-weight') {
      linear = await uploadWeight(ctx, spec.name, format, spec.shape[0], spec.shape[1], data);
      buffer = linear.buffer as GPUBuffer;
    } else {
      buffer = await ctx.storageFrom(spec.name, data);
    }
    // Registered at once so that abort() frees it if anything later fails.
    const setGrad = this.register(spec, buffer, linear);
    this.stats.gpuBytes += buffer.size;
    if (this.trainable.has(spec.name)) {
      const grad = await ctx.storage(`grad:${spec.name}`, count(spec) * 4);
      setGrad(grad);
      this.stats.gpuBytes += grad.size;
    }
    this.stats.tensors++;
    this.unflushed += data.byteLength;
    if (this.unflushed >= FLUSH_BYTES) await this.flush();
  }

  /** Waits for the queue: the driver's staging copies of the written tensors are then released. */
  private async flush(): Promise<void> {
    this.unflushed = 0;
    await this.model.ctx.guard(this.model.ctx.device.queue.onSubmittedWorkDone());
  }

  /** Runs one call of the upload; any failure destroys what was uploaded. */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    if (this.state !== 'open') throw new InternalError(`model upload: already ${this.state}`);
    try {
      return await work();
    } catch (error) {
      this.abort();
      throw error;
    }
  }
}

/** [rows, cols] of a parameter: the last dimension is the row length. */
function rowsCols(shape: readonly number[]): [number, number] {
  const cols = shape[shape.length - 1];
  return [numel(shape) / cols, cols];
}

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

interface BlockBuffers {
  x: GPUBuffer; // block input [T, D]
  ln1: GPUBuffer;
  ln1Mean: GPUBuffer;
  ln1Rstd: GPUBuffer;
  qkv: GPUBuffer;
  attn: GPUBuffer;
  lse: GPUBuffer;
  mid: GPUBuffer;
  ln2: GPUBuffer;
  ln2Mean: GPUBuffer;
  ln2Rstd: GPUBuffer;
  pre: GPUBuffer;
  act: GPUBuffer;
}

/**
 * One training step for a fixed batch shape: every dispatch prepared once; `setBatch` writes the
 * step's tokens, masks and labels; `run` encodes forward, loss and backward (and the optimizer when
 * given) into one command buffer.
 */
export class TrainStep {
  readonly T: number;
  readonly forwardDispatches: Dispatch[] = [];
  readonly lossDispatches: Dispatch[] = [];
  readonly backwardDispatches: Dispatch[] = [];
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
  private readonly owned: GPUBuffer[] = [];
  /** Training-mode dispatches (LoRA dropout) and what replaces them in evaluation. */
  private readonly evalSubstitutes = new Map<Dispatch, Dispatch[]>();
  private evalForward: Dispatch[] | null = null;
  private stepCounter = 0;
  /** Attributions: the embedding dispatches (with its LoRA), their output x0 (block 0's input), dX (holds d/dx0 after a backward). */
  private embeddingDispatches: Dispatch[] = [];
  private x0!: GPUBuffer;
  private dX!: GPUBuffer;
  private batchIds: Int32Array | null = null;
  private zeroNtpLogits: Dispatch | null = null;

  private constructor(
    readonly model: GptBigCodeGpu,
    readonly shape: Required<StepShape>,
  ) {
    this.T = shape.packs * shape.packLength;
  }

  static async create(model: GptBigCodeGpu, shape: StepShape): Promise<TrainStep> {
    const { packs, packLength } = shape;
    if (!Number.isInteger(packs) || packs < 1 || !Number.isInteger(packLength) || packLength < 1) {
      throw new ConfigError(`Batch shape must be whole packs (got ${packs} × ${packLength}).`);
    }
    if (packLength > model.c.n_positions) {
      throw new ConfigError(
        `Pack length ${packLength} exceeds the model's n_positions ${model.c.n_positions}.`,
        'Choose a pack length no longer than the model context.',
      );
    }
    // Buffers that kernels bind whole (linear weights are split by the linear kernels themselves).
    const { c } = model;
    const T = packs * packLength;
    const limit = model.ctx.adapter.limits.maxStorageBufferBindingSize;
    const whole: [string, number][] = [
      ['The token embedding table (f32)', c.vocab_size * c.n_embd * 4],
      [`The MLP activations of ${T} tokens`, T * c.n_inner * 4],
      [`The qkv activations of ${T} tokens`, T * c.qkvDim * 4],
    ];
    if (model.options.objective === 'ntp')
      whole.push([`The next-token logits of ${T} tokens`, T * c.vocab_size * 4]);
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

  private async buf(label: string, floats: number): Promise<GPUBuffer> {
    const b = await this.model.ctx.storage(label, Math.max(1, floats) * 4);
    this.owned.push(b);
    return b;
  }

  /** Bytes of the storage buffers of this step: activations, scratch, batch inputs and the head. */
  get activationBytes(): number {
    const head = this.cls?.bytes ?? this.ntp?.bytes ?? 0;
    return this.owned.reduce((a, b) => a + b.size, head);
  }

  private async prepare(): Promise<void> {
    const { model } = this;
    const { ctx, c, options } = model;
    const T = this.T;
    const D = c.n_embd;
    const H = c.n_head;
    const Q = c.qkvDim;
    const I = c.n_inner;
    const eps = c.layer_norm_epsilon;
    const all = options.trainable === 'all';
    const lora = options.lora;
    const kind = geluKind(c.activation_function);
    const attnShape = { T, nHead: H, headDim: c.headDim, multiQuery: c.multi_query };
    const fwd = this.forwardDispatches;
    const bwd: Dispatch[] = [];

    this.ids = await this.buf('ids', T);
    this.pos = await this.buf('pos', T);
    this.mask = await this.buf('mask', 4 * T);

    const blocks: BlockBuffers[] = [];
    const recompute = this.shape.recompute;
    let shared: Omit<BlockBuffers, 'x'> | null = null;
    for (let l = 0; l < c.n_layer; l++) {
      // With recompute, every block writes its activations into the same buffers (rebuilt in backward).
      const tag = recompute ? 'block' : `h${l}`;
      const activations: Omit<BlockBuffers, 'x'> = shared ?? {
        ln1: await this.buf(`${tag}.ln1`, T * D),
        ln1Mean: await this.buf(`${tag}.ln1.mean`, T),
        ln1Rstd: await this.buf(`${tag}.ln1.rstd`, T),
        qkv: await this.buf(`${tag}.qkv`, T * Q),
        attn: await this.buf(`${tag}.attn`, T * D),
        lse: await this.buf(`${tag}.lse`, T * H),
        mid: await this.buf(`${tag}.mid`, T * D),
        ln2: await this.buf(`${tag}.ln2`, T * D),
        ln2Mean: await this.buf(`${tag}.ln2.mean`, T),
        ln2Rstd: await this.buf(`${tag}.ln2.rstd`, T),
        pre: await this.buf(`${tag}.pre`, T * I),
        act: await this.buf(`${tag}.act`, T * I),
      };
      if (recompute) shared = activations;
      blocks.push({ x: await this.buf(`h${l}.x`, T * D), ...activations });
    }
    const xOut = await this.buf('x.final', T * D);
    const lnfMean = await this.buf('ln_f.mean', T);
    const lnfRstd = await this.buf('ln_f.rstd', T);
    this.hidden = await this.buf('hidden', T * D);

    // Backward scratch, shared by the blocks.
    const dX = await this.buf('dX', T * D);
    const dHidden = await this.buf('dHidden', T * D);
    const dAct = await this.buf('dAct', T * I);
    const dQkv = await this.buf('dQkv', T * Q);
    const dAttn = await this.buf('dAttn', T * D);
    const dLn = await this.buf('dLn', T * D);
    const r = lora?.r ?? 1;
    const dh = await this.buf('lora.dh', T * r);
    const headGroups = resolveHeadGroups(this.shape.attentionHeadGroups, attnShape);
    const partialsBytes = attentionPartialsBytes(attnShape, headGroups);
    const partials = partialsBytes > 0 ? await this.buf('attention.partials', partialsBytes / 4) : null;
    const dropout = lora?.dropout ?? 0;
    const dxDrop = dropout > 0 ? await this.buf('lora.dxDrop', T * Math.max(D, I)) : null;

    const p = (name: string) => model.buffer(name);
    const g = (name: string) => model.grad(name);
    const tokens = { T, C: D, V: c.vocab_size, P: c.n_positions };
    const loraScratch = new Map<string, { h: GPUBuffer; xDrop: GPUBuffer | undefined }>();

    // Forward: embeddings.
    const x0 = blocks.length > 0 ? blocks[0].x : xOut;
    fwd.push(
      await embeddingForward(
        ctx,
        {
          ids: this.ids,
          pos: this.pos,
          wte: p('transformer.wte.weight'),
          wpe: p('transformer.wpe.weight'),
          x: x0,
        },
        tokens,
      ),
    );
    if (lora?.targets.includes('wte')) {
      this.embeddingLora = await prepareEmbeddingLora(
        ctx,
        {
          ids: this.ids,
          a: p(EMBEDDING_LORA_A),
          b: p(EMBEDDING_LORA_B),
          x: x0,
          h: await this.buf('wte.lora.h', T * r),
          dx: dX,
          gradA: g(EMBEDDING_LORA_A),
          gradB: g(EMBEDDING_LORA_B),
          dh,
        },
        { T, D, V: c.vocab_size, rank: lora.r, alpha: lora.alpha },
      );
      fwd.push(...this.embeddingLora.forward);
    }
    this.embeddingDispatches = [...fwd];
    this.x0 = x0;
    this.dX = dX;

    const lnShape = { T, C: D, eps };
    /** A block layernorm's backward: dX += d(input) from dLn, and its own gradients in full finetuning. */
    const blockLayerNormBackward = async (
      name: string,
      x: GPUBuffer,
      mean: GPUBuffer,
      rstd: GPUBuffer,
    ): Promise<Dispatch[]> => {
      const out = [
        await layerNormBackward(
          ctx,
          { x, gamma: p(`${name}.weight`), mean, rstd, dy: dLn, dx: dX },
          lnShape,
          { accumulate: true },
        ),
      ];
      if (all) {
        out.push(
          await layerNormBackwardParams(
            ctx,
            { x, mean, rstd, dy: dLn, dgamma: g(`${name}.weight`), dbeta: g(`${name}.bias`) },
            lnShape,
          ),
        );
      }
      return out;
    };

    /** y = x·Wᵀ + b (+ LoRA); backward dispatches returned separately (run in reverse block order). */
    const linearLayer = async (
      l: number,
      target: LinearTarget,
      x: GPUBuffer,
      y: GPUBuffer,
      dy: GPUBuffer,
      dx: GPUBuffer,
    ): Promise<{ forward: Dispatch[]; backward: Dispatch[] }> => {
      const [out, inp] = linearShape(c, target);
      const name = `${blockPrefix(l)}.${target}`;
      const weight = model.linear(l, target);
      const forward = [...(await linearForward(ctx, x, weight, y, T))];
      forward.push(await biasForward(ctx, y, p(`${name}.bias`), { T, C: out }));
      const backward = [...(await linearBackwardInput(ctx, dy, weight, dx, T))];
      if (lora && lora.targets.includes(target)) {
        const site = recompute ? `block.${target}` : name;
        let scratch = loraScratch.get(site);
        if (!scratch) {
          scratch = {
            h: await this.buf(`${site}.lora.h`, T * r),
            xDrop: dropout > 0 ? await this.buf(`${site}.lora.xDrop`, T * inp) : undefined,
          };
          loraScratch.set(site, scratch);
        }
        const { h, xDrop } = scratch;
        const prepared = await prepareLora(
          ctx,
          {
            x,
            a: p(`${name}.lora_A.weight`),
            b: p(`${name}.lora_B.weight`),
            y,
            h,
            xDrop,
            dy,
            dx,
            gradA: g(`${name}.lora_A.weight`),
            gradB: g(`${name}.lora_B.weight`),
            dh,
            dxDrop: dxDrop ?? undefined,
          },
          { T, inFeatures: inp, outFeatures: out, rank: lora.r, alpha: lora.alpha, dropout },
          { seed: options.seed ?? 0, site: l * LINEAR_TARGETS.length + LINEAR_TARGETS.indexOf(target) },
        );
        this.loras.push(prepared);
        forward.push(...prepared.forward);
        if (dropout > 0) {
          // Evaluation runs the branch without dropout: the same matmuls on x instead of drop(x).
          const evalBranch = await prepareLora(
            ctx,
            { x, a: p(`${name}.lora_A.weight`), b: p(`${name}.lora_B.weight`), y, h },
            { T, inFeatures: inp, outFeatures: out, rank: lora.r, alpha: lora.alpha, dropout: 0 },
            { seed: options.seed ?? 0, site: 0 },
          );
          prepared.forward.forEach((d, i) => this.evalSubstitutes.set(d, i === 0 ? evalBranch.forward : []));
        }
        backward.push(...prepared.backward);
      }
      if (all) {
        backward.push(
          await matmul(ctx, dy, x, g(`${name}.weight`), {
            M: out,
            N: inp,
            K: T,
            transA: true,
            transB: false,
          }),
          await biasBackward(ctx, dy, g(`${name}.bias`), { T, C: out }),
        );
      }
      return { forward, backward };
    };

    const blockForward: Dispatch[][] = [];
    const blockBackward: Dispatch[][] = [];
    for (let l = 0; l < c.n_layer; l++) {
      const b = blocks[l];
      const bf: Dispatch[] = [];
      const next = l + 1 < c.n_layer ? blocks[l + 1].x : xOut;
      const pre = blockPrefix(l);
      // Attention half: mid = x + c_proj(attn(c_attn(ln_1(x)))).
      bf.push(
        await layerNormForward(
          ctx,
          {
            x: b.x,
            gamma: p(`${pre}.ln_1.weight`),
            beta: p(`${pre}.ln_1.bias`),
            y: b.ln1,
            mean: b.ln1Mean,
            rstd: b.ln1Rstd,
          },
          lnShape,
        ),
      );
      const cAttn = await linearLayer(l, 'attn.c_attn', b.ln1, b.qkv, dQkv, dLn);
      bf.push(...cAttn.forward);
      bf.push(await attentionForward(ctx, b.qkv, this.mask, b.attn, b.lse, attnShape));
      const attnProj = await linearLayer(l, 'attn.c_proj', b.attn, b.mid, dX, dAttn);
      bf.push(...attnProj.forward);
      bf.push(await add(ctx, b.mid, b.x, T * D));
      // MLP half: next = mid + c_proj(gelu(c_fc(ln_2(mid)))).
      bf.push(
        await layerNormForward(
          ctx,
          {
            x: b.mid,
            gamma: p(`${pre}.ln_2.weight`),
            beta: p(`${pre}.ln_2.bias`),
            y: b.ln2,
            mean: b.ln2Mean,
            rstd: b.ln2Rstd,
          },
          lnShape,
        ),
      );
      const cFc = await linearLayer(l, 'mlp.c_fc', b.ln2, b.pre, dAct, dLn);
      bf.push(...cFc.forward);
      bf.push(await geluForward(ctx, b.pre, b.act, T * I, kind));
      const mlpProj = await linearLayer(l, 'mlp.c_proj', b.act, next, dX, dAct);
      bf.push(...mlpProj.forward);
      bf.push(await add(ctx, next, b.mid, T * D));
      fwd.push(...bf);
      blockForward.push(bf);

      // Backward of the block, dX holding d(next) on entry and d(x) on exit.
      const back: Dispatch[] = [];
      back.push(...mlpProj.backward); // dAct = dX·W (+ LoRA)
      back.push(await geluBackwardInPlace(ctx, b.pre, dAct, T * I, kind)); // dAct → d(pre)
      back.push(...cFc.backward); // dLn = d(pre)·W_fc
      back.push(...(await blockLayerNormBackward(`${pre}.ln_2`, b.mid, b.ln2Mean, b.ln2Rstd)));
      back.push(...attnProj.backward); // dAttn = dX·W_proj
      back.push(
        ...(await attentionBackward(ctx, b.qkv, this.mask, b.attn, dAttn, b.lse, dQkv, attnShape, {
          headGroups,
          partials: partials ?? undefined,
        })),
      );
      back.push(...cAttn.backward); // dLn = dQkv·W_attn
      back.push(...(await blockLayerNormBackward(`${pre}.ln_1`, b.x, b.ln1Mean, b.ln1Rstd)));
      blockBackward.push(back);
    }

    // Final norm and head.
    const lnfShape = { T, C: D, eps };
    fwd.push(
      await layerNormForward(
        ctx,
        {
          x: xOut,
          gamma: p('transformer.ln_f.weight'),
          beta: p('transformer.ln_f.bias'),
          y: this.hidden,
          mean: lnfMean,
          rstd: lnfRstd,
        },
        lnfShape,
      ),
    );
    if (all) {
      bwd.push(await fill(ctx, g('transformer.wte.weight'), c.vocab_size * D));
      bwd.push(await fill(ctx, g('transformer.wpe.weight'), c.n_positions * D));
    }
    if (options.objective === 'cls') {
      const trainScore = model.trainableNames.includes('score.weight');
      this.cls = await ClsHead.create(
        ctx,
        { T, D, F: this.shape.maxFunctions },
        {
          hidden: this.hidden,
          score: p('score.weight'),
          dhidden: dHidden,
          dscore: trainScore ? g('score.weight') : undefined,
        },
      );
      fwd.push(...this.cls.forward);
      this.lossDispatches.push(...this.cls.lossDispatches);
      bwd.push(...this.cls.backward);
    } else {
      this.ntp = await NtpHead.create(
        ctx,
        { T, D, V: c.vocab_size },
        {
          hidden: this.hidden,
          wte: p('transformer.wte.weight'),
          dhidden: dHidden,
          dwte: all ? g('transformer.wte.weight') : undefined,
          accumulateWte: true,
        },
      );
      fwd.push(...this.ntp.forward);
      this.lossDispatches.push(...this.ntp.lossDispatches);
      bwd.push(...this.ntp.backward);
    }
    bwd.push(
      await layerNormBackward(
        ctx,
        { x: xOut, gamma: p('transformer.ln_f.weight'), mean: lnfMean, rstd: lnfRstd, dy: dHidden, dx: dX },
        lnfShape,
      ),
    );
    if (all) {
      bwd.push(
        await layerNormBackwardParams(
          ctx,
          {
            x: xOut,
            mean: lnfMean,
            rstd: lnfRstd,
            dy: dHidden,
            dgamma: g('transformer.ln_f.weight'),
            dbeta: g('transformer.ln_f.bias'),
          },
          lnfShape,
        ),
      );
    }
    for (let l = c.n_layer - 1; l >= 0; l--) {
      if (recompute) bwd.push(...blockForward[l]);
      bwd.push(...blockBackward[l]);
    }
    // dX now holds d/dx0: the embedding's adapter, then (full finetuning) the tables.
    if (this.embeddingLora) bwd.push(...this.embeddingLora.backward);
    if (all) {
      this.embBackward = await embeddingBackward(
        ctx,
        { dx: dX, dwte: g('transformer.wte.weight'), dwpe: g('transformer.wpe.weight') },
        tokens,
      );
      bwd.push(...this.embBackward.dispatches);
    }
    this.backwardDispatches.push(...bwd);
  }

  /** Writes the step's batch: tokens, positions, the attention mask and the loss targets. */
  setBatch(batch: PackedBatch): void {
    const { packs, packLength } = this.shape;
    const { c, ctx, options } = this.model;
    if (batch.inputIds.length !== packs || batch.inputIds.some((row) => row.length !== packLength)) {
      throw new ConfigError(`This step was prepared for ${packs} packs of ${packLength} tokens.`);
    }
    const ids = Int32Array.from(batch.inputIds.flat());
    const pos = Int32Array.from(batch.positionIds.flat());
    const seg = Int32Array.from(batch.segmentIds.flat());
    if (pos.length !== this.T || seg.length !== this.T) {
      throw new ConfigError('position_ids and segment_ids must have the shape of input_ids.');
    }
    validateIds(ids, c.vocab_size, 'token id');
    validateIds(pos, c.n_positions, 'position id');
    const mask = buildAttentionMask(seg, packLength, options.mode);
    validateAttentionMask(mask);
    ctx.write(this.ids, ids);
    this.batchIds = ids;
    ctx.write(this.pos, pos);
    ctx.write(this.mask, maskBufferData(mask));
    this.embBackward?.setTokens(ids, pos);
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

  /** The forward in evaluation mode (no LoRA dropout); the same as `forwardDispatches` without dropout. */
  get evalForwardDispatches(): Dispatch[] {
    this.evalForward ??= this.forwardDispatches.flatMap((d) => this.evalSubstitutes.get(d) ?? [d]);
    return this.evalForward;
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
    const { ctx, c } = this.model;
    if (!this.batchIds) throw new InternalError('embed: no batch set');
    if (ids) {
      if (ids.length !== this.T) throw new ConfigError(`embed: ${ids.length} ids for ${this.T} tokens.`);
      validateIds(ids, c.vocab_size, 'token id');
      ctx.write(this.ids, ids);
    }
    try {
      await ctx.run(this.embeddingDispatches);
    } finally {
      if (ids) ctx.write(this.ids, this.batchIds);
    }
    return ctx.readF32(this.x0, this.T * c.n_embd);
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
    const { ctx, c } = this.model;
    const lora = this.model.options.lora;
    if (lora && lora.dropout > 0) {
      throw new ConfigError('Attributions need a model without LoRA dropout (as a detector loads it).');
    }
    if (!this.batchIds) throw new InternalError('scoreInputGradient: no batch set');
    const T = this.T;
    const D = c.n_embd;
    let forward = this.evalForwardDispatches;
    if (options.x0) {
      if (options.x0.length !== T * D) throw new ConfigError(`x0 needs ${T * D} values.`);
      ctx.write(this.x0, options.x0);
      forward = forward.filter((d) => !this.embeddingDispatches.includes(d));
    }
    const backward = this.backwardDispatches.flatMap((d) => this.evalSubstitutes.get(d) ?? [d]);
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
      const V = c.vocab_size;
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
    return this.model.ctx.readF32(this.ntp!.logits, this.T * this.model.c.vocab_size);
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
    const V = this.model.c.vocab_size;
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
    return this.model.ctx.readF32(this.hidden, this.T * this.model.c.n_embd);
  }

  destroy(): void {
    this.cls?.destroy();
    this.ntp?.destroy();
    this.embBackward?.destroy();
    this.embeddingLora?.destroy();
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
  }
}
