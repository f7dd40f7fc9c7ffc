import {
  DeviceLostError,
  GpuValidationError,
  OutOfMemoryError,
  VulnLabError,
  WebGPUUnavailableError,
} from '../errors.ts';
import { BufferPool } from './pool.ts';
import type { ShaderLibrary } from './shaders.ts';

/** What the lab shows about the adapter and what kernels consult to pick their variant. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: { shaderF16: boolean; subgroups: boolean; timestampQuery: boolean };
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
}

/**
 * Which variant of the kernels that have two: 'cpu' the barrier-free shaders that caches serve well on
 * CPU adapters (llvmpipe/lavapipe, SwiftShader: register-blocked matmul/linear, one thread per
 * attention or norm row), 'gpu' the workgroup-memory ones meant for discrete GPUs (tiled matmul/linear
 * `*_tiled.wgsl`, FlashAttention-2 `attention_flash*.wgsl`, one workgroup per norm row `*_rows.wgsl`).
 * The other kernels have one variant that serves both sets, because it already has the GPU-class
 * shape: the elementwise ops (GELU, SwiGLU, add, bias forward, embedding gather, RoPE, column copy,
 * AdamW) run one invocation per element with coalesced reads, and the reductions (next-token loss,
 * bias and embedding backward, grad norm, score head) one workgroup per row or column block with
 * workgroup-memory trees.
 */
export type KernelSet = 'cpu' | 'gpu';
export const KERNEL_SETS: readonly KernelSet[] = ['cpu', 'gpu'];

/** CPU-backed adapters: the fallback adapter, or one whose info names a software rasterizer. */
export function isCpuAdapter(
  adapter: Pick<AdapterSummary, 'vendor' | 'architecture' | 'device' | 'description' | 'isFallbackAdapter'>,
): boolean {
  const text = [adapter.vendor, adapter.architecture, adapter.device, adapter.description].join(' ');
  return adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(text);
}

/** The kernel set an adapter gets unless overridden: 'cpu' on CPU-backed adapters, else 'gpu'. */
export function defaultKernels(adapter: Parameters<typeof isCpuAdapter>[0]): KernelSet {
  return isCpuAdapter(adapter) ? 'cpu' : 'gpu';
}

let kernelOverride: KernelSet | undefined;

/**
 * Forces the kernel set of contexts created from now on (`--kernels cpu|gpu` in the CLI and bench);
 * undefined goes back to the per-adapter default.
 */
export function setKernelOverride(kernels: KernelSet | undefined): void {
  kernelOverride = kernels;
}

export function parseKernelSet(raw: string): KernelSet | undefined {
  return (KERNEL_SETS as readonly string[]).includes(raw) ? (raw as KernelSet) : undefined;
}

const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
const NEGOTIATED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface Binding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/** One compute dispatch, prepared once (pipeline, bind group, uniforms) and encoded every step. */
export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: readonly [number, number, number];
}

export interface PipelineOptions {
  entryPoint?: string;
  constants?: Record<string, number>;
}

/** Where the engine runs: decides which advice an unavailable-WebGPU error gives. */
export type GpuHost = 'browser' | 'node';

const NO_WEBGPU_HINT: Record<GpuHost, { api: string; adapter: string }> = {
  browser: {
    api: 'Use a recent Chrome or Edge (113 or later). On Linux start it with --enable-unsafe-webgpu --enable-features=Vulkan.',
    adapter:
      'Enable hardware acceleration in the browser settings and check chrome://gpu; on Linux or in a VM start Chrome with --enable-unsafe-webgpu (software adapter, slow).',
  },
  node: {
    api: 'Install the npm package `webgpu` (Dawn) and a Vulkan driver.',
    adapter:
      'Dawn found no Vulkan device. On Debian 12 install mesa-vulkan-drivers from bookworm-backports (the stock 22.3 driver is rejected): sudo bash .ci/install-system.sh',
  },
};

export async function requestAdapter(gpu: GPU | undefined, host: GpuHost): Promise<GPUAdapter> {
  if (!gpu) {
    throw new WebGPUUnavailableError(
      'WebGPU is not available here (no navigator.gpu).',
      NO_WEBGPU_HINT[host].api,
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new WebGPUUnavailableError(
      'WebGPU is present but no GPU adapter was found.',
      NO_WEBGPU_HINT[host].adapter,
    );
  }
  return adapter;
}

export function summarizeAdapter(adapter: GPUAdapter, device?: GPUDevice): AdapterSummary {
  const info = adapter.info;
  const limits = device?.limits ?? adapter.limits;
  const features = device?.features ?? adapter.features;
  return {
    vendor: info.vendor || 'unknown vendor',
    architecture: info.architecture || '',
    device: info.device || '',
    description: info.description || '',
    isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    features: {
      shaderF16: features.has('shader-f16'),
      subgroups: features.has('subgroups'),
      timestampQuery: features.has('timestamp-query'),
    },
    limits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  };
}

/**
 * The device layer shared by the browser and Node: limits negotiated to the adapter's maxima,
 * optional features enabled when present, allocations checked for out-of-memory, device loss
 * turned into a typed error, pipelines and bind groups cached.
 */
export class GpuContext {
  readonly pool: BufferPool;
  private lostError: DeviceLostError | undefined;
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private readonly live = { count: 0, bytes: 0 };
  /**
   * The kernel variant matmul and linear use on this context (per adapter, `setKernelOverride` or
   * assigned directly); a call may still name its own (`MatmulShape.kernels`, `LinearOptions.kernels`).
   */
  kernels: KernelSet;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterSummary,
    readonly shaders: ShaderLibrary,
    /** Resolves (never rejects) when the device is lost; `destroy()` resolves it with reason "destroyed". */
    readonly lost: Promise<DeviceLostError>,
  ) {
    this.pool = new BufferPool((size, usage, label) => this.device.createBuffer({ size, usage, label }));
    void lost.then((error) => (this.lostError = error));
    this.kernels = kernelOverride ?? defaultKernels(adapter);
  }

  /** `setKernelOverride` and `parseKernelSet`, for the layers that import only the engine's surface. */
  static readonly setKernelOverride = setKernelOverride;
  static readonly parseKernelSet = parseKernelSet;

  /** Whether the adapter is CPU-backed (which decides the default kernel set). */
  get cpuAdapter(): boolean {
    return isCpuAdapter(this.adapter);
  }

  static async create(gpu: GPU | undefined, shaders: ShaderLibrary, host: GpuHost): Promise<GpuContext> {
    const adapter = await requestAdapter(gpu, host);
    const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
    const requiredLimits: Record<string, number> = {};
    for (const name of NEGOTIATED_LIMITS) requiredLimits[name] = adapter.limits[name];
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'vulnlab' });
    } catch (first) {
      // Some implementations refuse their own advertised maxima; defaults always work.
      try {
        device = await adapter.requestDevice({ requiredFeatures, label: 'vulnlab' });
      } catch {
        throw new WebGPUUnavailableError(
          `The adapter refused to create a device: ${String(first)}`,
          'Restart the browser; if it persists, check chrome://gpu for a blocklisted driver.',
          { cause: first },
        );
      }
    }
    const lost = device.lost.then((info) => new DeviceLostError(info.reason ?? 'unknown', info.message));
    return new GpuContext(device, summarizeAdapter(adapter, device), shaders, lost);
  }

  get isLost(): boolean {
    return this.lostError !== undefined;
  }

  /** Throws the typed device-lost error if the device is gone; call before GPU work. */
  assertAlive(): void {
    if (this.lostError) throw this.lostError;
  }

  /** Allocates a buffer and reports out-of-memory as a typed error instead of a silent invalid buffer. */
  async createBuffer(label: string, size: number, usage: GPUBufferUsageFlags): Promise<GPUBuffer> {
    this.assertAlive();
    const aligned = Math.max(4, Math.ceil(size / 4) * 4);
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const buffer = this.device.createBuffer({ label, size: aligned, usage });
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (oom) {
      buffer.destroy();
      throw new OutOfMemoryError(label, aligned, oom);
    }
    if (validation) {
      buffer.destroy();
      // Sizes beyond maxBufferSize surface as validation errors; to the user that is memory too.
      if (aligned > this.adapter.limits.maxBufferSize) throw new OutOfMemoryError(label, aligned, validation);
      throw new GpuValidationError(`createBuffer(${label})`, validation.message);
    }
    this.track(buffer);
    return buffer;
  }

  /**
   * Buffers made by `createBuffer` (every storage buffer of models, steps and kernels) and not yet
   * destroyed, with their bytes: what leak checks compare before and after an operation.
   */
  get liveBuffers(): { count: number; bytes: number } {
    return { ...this.live };
  }

  /** Counts a buffer until its destroy() (WebGPU has no destroy event, so destroy is wrapped). */
  private track(buffer: GPUBuffer): void {
    const { size } = buffer;
    const destroy = buffer.destroy.bind(buffer);
    let destroyed = false;
    this.live.count++;
    this.live.bytes += size;
    buffer.destroy = () => {
      if (!destroyed) {
        destroyed = true;
        this.live.count--;
        this.live.bytes -= size;
      }
      destroy();
    };
  }

  /** A storage buffer holding `data` (copied now). */
  async storageFrom(
    label: string,
    data: ArrayBufferView,
    extraUsage: GPUBufferUsageFlags = 0,
  ): Promise<GPUBuffer> {
    const buffer = await this.createBuffer(
      label,
      data.byteLength,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage,
    );
    this.write(buffer, data);
    return buffer;
  }

  /** A zero-filled storage buffer. */
  storage(label: string, byteLength: number): Promise<GPUBuffer> {
    return this.createBuffer(
      label,
      byteLength,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    );
  }

  /** A small uniform buffer with fixed contents, e.g. a kernel's shape parameters. */
  uniform(label: string, data: ArrayBufferView): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    const buffer = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.write(buffer, data);
    return buffer;
  }

  write(buffer: GPUBuffer, data: ArrayBufferView, bufferOffset = 0): void {
    this.device.queue.writeBuffer(
      buffer,
      bufferOffset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Copies `byteLength` bytes of a GPU buffer back to the CPU (one round trip). */
  async readback(buffer: GPUBuffer, byteLength = buffer.size, offset = 0): Promise<ArrayBuffer> {
    this.assertAlive();
    const size = Math.ceil(byteLength / 4) * 4;
    const staging = this.device.createBuffer({
      label: `readback(${buffer.label})`,
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    try {
      const encoder = this.device.createCommandEncoder({ label: 'readback' });
      encoder.copyBufferToBuffer(buffer, offset, staging, 0, size);
      this.device.queue.submit([encoder.finish()]);
      await this.guard(staging.mapAsync(GPUMapMode.READ));
      return staging.getMappedRange().slice(0, byteLength);
    } finally {
      staging.destroy();
    }
  }

  async readF32(buffer: GPUBuffer, count?: number, offsetElements = 0): Promise<Float32Array> {
    const bytes = (count ?? buffer.size / 4 - offsetElements) * 4;
    return new Float32Array(await this.readback(buffer, bytes, offsetElements * 4));
  }

  /** Single f32 elements at the given element offsets, gathered by copies into one readback. */
  async readF32At(buffer: GPUBuffer, offsetsElements: readonly number[]): Promise<Float32Array> {
    this.assertAlive();
    if (offsetsElements.length === 0) return new Float32Array(0);
    const staging = this.device.createBuffer({
      label: `readF32At(${buffer.label})`,
      size: offsetsElements.length * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    try {
      const encoder = this.device.createCommandEncoder({ label: 'readF32At' });
      offsetsElements.forEach((offset, i) =>
        encoder.copyBufferToBuffer(buffer, offset * 4, staging, i * 4, 4),
      );
      this.device.queue.submit([encoder.finish()]);
      await this.guard(staging.mapAsync(GPUMapMode.READ));
      return new Float32Array(staging.getMappedRange().slice(0));
    } finally {
      staging.destroy();
    }
  }

  /** A compiled compute pipeline for `shaders/<name>.wgsl`, cached per name, entry point and constants. */
  pipeline(name: string, options: PipelineOptions = {}): Promise<GPUComputePipeline> {
    const entryPoint = options.entryPoint ?? 'main';
    const constants = options.constants ?? {};
    const key = `${name}|${entryPoint}|${JSON.stringify(Object.entries(constants).sort())}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      pipeline = this.compile(name, entryPoint, constants);
      this.pipelines.set(key, pipeline);
      pipeline.catch(() => this.pipelines.delete(key));
    }
    return pipeline;
  }

  private async compile(
    name: string,
    entryPoint: string,
    constants: Record<string, number>,
  ): Promise<GPUComputePipeline> {
    this.assertAlive();
    const module = this.device.createShaderModule({ label: name, code: this.shaders.get(name) });
    try {
      return await this.device.createComputePipelineAsync({
        label: `${name}:${entryPoint}`,
        layout: 'auto',
        compute: { module, entryPoint, constants },
      });
    } catch (error) {
      const info = await module.getCompilationInfo();
      const details = info.messages
        .filter((m) => m.type === 'error')
        .map((m) => `${name}.wgsl:${m.lineNum}:${m.linePos} ${m.message}`)
        .join('\n');
      throw new GpuValidationError(`shader ${name}`, details || String(error));
    }
  }

  /** Bind group for a pipeline's group 0 with buffers bound in order to @binding(0..n-1). */
  bindGroup(
    pipeline: GPUComputePipeline,
    bindings: readonly (GPUBuffer | Binding)[],
    label = pipeline.label,
  ): GPUBindGroup {
    return this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((b, binding) => ({
        binding,
        resource: 'buffer' in b ? { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } : { buffer: b },
      })),
    });
  }

  /** Stable small integer per buffer, for cache keys. */
  bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(buffer, id);
    }
    return id;
  }

  /** Encodes dispatches into one compute pass (dispatches see each other's writes in order). */
  encode(encoder: GPUCommandEncoder, dispatches: readonly Dispatch[]): void {
    const pass = encoder.beginComputePass({
      label: dispatches
        .map((d) => d.label)
        .join(',')
        .slice(0, 200),
    });
    for (const d of dispatches) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }
    pass.end();
  }

  /** Submits dispatches in one command buffer and waits until the GPU has finished them. */
  async run(dispatches: readonly Dispatch[]): Promise<void> {
    this.assertAlive();
    const encoder = this.device.createCommandEncoder();
    this.encode(encoder, dispatches);
    this.device.queue.submit([encoder.finish()]);
    await this.guard(this.device.queue.onSubmittedWorkDone());
  }

  /** Waits for `work`, but reports device loss (typed) if it happens first. */
  async guard<T>(work: Promise<T>): Promise<T> {
    const lost = this.lost.then((error): never => {
      throw error;
    });
    lost.catch(() => undefined);
    try {
      return await Promise.race([work, lost]);
    } catch (error) {
      if (error instanceof VulnLabError) throw error;
      if (this.lostError) throw this.lostError;
      throw error;
    }
  }

  destroy(): void {
    this.pool.trim();
    this.device.destroy();
  }
}
