/**
 * A decoder's parameters on the GPU (any family: GPT-BigCode or the Llama family), uploaded tensor by
 * tensor under their Hugging Face names (block linears in the chosen weight format), with gradient
 * buffers for the trainable ones and the model's decoder description (decoder.ts), from which
 * train-step.ts wires the forward and backward.
 */
import type { GpuContext } from '../gpu/index.ts';
import { uploadWeight, type LinearWeight } from '../kernels/linear.ts';
import { decodeWeight, encodeWeight, weightBytes, type WeightFormat } from '../quant.ts';
import type { AttentionMode } from '../reference/loss.ts';
import { InternalError, ShapeError } from '../errors.ts';
import {
  ConfigError,
  checkParams,
  numel,
  type LoraConfig,
  type ParamSpec,
  type Trainable,
} from './config.ts';
import { baseParamSpecs, loraParamSpecs, trainableSpecs } from './decoder.ts';
import { describeDecoder, type DecoderDesc, type ModelConfig } from './decoder.ts';

export type Objective = 'cls' | 'ntp';

export interface GpuModelOptions {
  /** GPT-BigCode's config, or a Llama family's (llama, qwen2, starcoder2) with its model_type. */
  config: ModelConfig;
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
export class DecoderGpu {
  /** What the training step wires: ops and parameter names per block. */
  readonly decoder: DecoderDesc;
  readonly weightFormat: WeightFormat;
  /** Names of the parameters that get gradients, in a fixed order (LoRA, score; or everything). */
  readonly trainableNames: string[];
  private readonly params = new Map<string, Param>();
  private readonly linears = new Map<string, LinearWeight>();

  private constructor(
    readonly ctx: GpuContext,
    readonly options: GpuModelOptions,
  ) {
    this.decoder = describeDecoder(options.config);
    this.weightFormat = options.weightFormat ?? 'f32';
    const withScore = options.objective === 'cls';
    this.trainableNames = trainableSpecs(options.config, options.lora, options.trainable, withScore).map(
      (s) => s.name,
    );
  }

  /**
   * Starts building the model one tensor at a time (see `DecoderUploader`): the streaming path of
   * model loading, where the CPU never holds more than the tensor being uploaded.
   */
  static begin(ctx: GpuContext, options: GpuModelOptions): DecoderUploader {
    const weightFormat = options.weightFormat ?? 'f32';
    if (options.trainable === 'all' && weightFormat !== 'f32') {
      throw new ConfigError(
        `Full finetuning needs f32 weights (got ${weightFormat}).`,
        'Train LoRA adapters on quantized weights, or load f32 weights for full finetuning.',
      );
    }
    const model = new DecoderGpu(ctx, options);
    return new DecoderUploader(model, (spec, buffer, linear) => {
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
  ): Promise<DecoderGpu> {
    const uploader = DecoderGpu.begin(ctx, options);
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

  /** The uploaded weight of a linear module (decoder.ts `LinearDesc.module`). */
  linearWeight(module: string): LinearWeight {
    const weight = this.linears.get(`${module}.weight`);
    if (!weight) throw new ShapeError(`model: no linear ${module}`);
    return weight;
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
 * Builds a `DecoderGpu` tensor by tensor (from `DecoderGpu.begin`). `put` takes one tensor in
 * any weight format, stores it in its format on the GPU — the block linears in the model's
 * `weightFormat` (f32/f16/q8_0/q4_0, as `uploadWeight` lays them out), everything else in f32 —
 * converting only when the formats differ, and keeps no reference to it. `finish` uploads what the
 * checkpoint does not hold (LoRA A/B, the score head) and checks that every parameter arrived.
 * Any failure (a bad tensor, an allocation, a missing parameter) or `abort()` destroys every buffer
 * uploaded so far: nothing half-loaded stays on the GPU.
 */
export class DecoderUploader {
  readonly stats: UploadStats = { tensors: 0, gpuBytes: 0, peakHeldBytes: 0 };
  private readonly pending = new Map<string, ParamSpec>();
  private readonly trainable: Set<string>;
  private state: 'open' | 'finished' | 'aborted' = 'open';
  private unflushed = 0;
  /** CPU bytes handed to uploads that have not returned yet. */
  private held = 0;

  constructor(
    readonly model: DecoderGpu,
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
  finish(rest: ReadonlyMap<string, ArrayLike<number>> = new Map()): Promise<DecoderGpu> {
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
          : `${name} is not a parameter of this model (${this.model.decoder.blocks.length} layers).`,
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
