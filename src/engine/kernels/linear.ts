import { LimitExceededError } from '../errors.ts';
import type { KernelSet } from '../gpu/context.ts';
import { ceilDiv, type Binding, type Dispatch, type GpuContext } from '../gpu/index.ts';
import { bytesPerRow, weightBytes, type WeightFormat } from '../quant.ts';
import { matmul } from './matmul.ts';

/**
 * A frozen linear weight W [rows = out, cols = in] on the GPU in its storage format (layout in
 * `quant.ts`: rows of `bytesPerRow(format, cols)` bytes, block formats padded to whole 32-blocks).
 * `buffer` may be a Binding into a larger buffer; its `offset` is where row 0 starts (any multiple
 * of 4) and its `size` is ignored (the weight is `rows × bytesPerRow` bytes from there).
 */
export interface LinearWeight {
  format: WeightFormat;
  rows: number;
  cols: number;
  buffer: GPUBuffer | Binding;
}

export interface LinearOptions {
  /** out = alpha·(…) + beta·out; beta = 1 accumulates (dx from several branches). Default 1 and 0. */
  alpha?: number;
  beta?: number;
  /**
   * Largest byte size of one binding of W; defaults to (and is capped at) the adapter's
   * maxStorageBufferBindingSize. Weights larger than this are split by whole rows across bindings
   * (one dispatch per chunk). Tests pass a small value to exercise the split on tiny shapes.
   */
  maxBindingBytes?: number;
  /** Use the dequantizing kernel even for f32 weights (the shared f32 matmul is used otherwise). */
  forceWeightKernel?: boolean;
  /** The kernel variant; default `ctx.kernels` (chosen per adapter). */
  kernels?: KernelSet;
}

/** A row range of W and the binding that covers it. */
export interface WeightChunk {
  row0: number;
  rows: number;
  /** Binding offset (multiple of minStorageBufferOffsetAlignment) and size (multiple of 4). */
  bindOffset: number;
  bindSize: number;
  /** Byte offset of row `row0` inside the binding. */
  byteBase: number;
}

const FORMAT_CODE: Record<WeightFormat, number> = { f32: 0, f16: 1, q8_0: 2, q4_0: 3 };
/**
 * The shader of each kernel set and its outputs per workgroup side: 'cpu' 8×8 threads of 8×8 outputs
 * each (shaders/matmul_weight.wgsl), 'gpu' 16×16 threads of 4×4 outputs staged through workgroup
 * memory (shaders/matmul_weight_tiled.wgsl).
 */
const VARIANTS: Record<KernelSet, { shader: string; tile: number }> = {
  cpu: { shader: 'matmul_weight', tile: 64 },
  gpu: { shader: 'matmul_weight_tiled', tile: 64 },
};

function split(b: GPUBuffer | Binding): { buffer: GPUBuffer; offset: number } {
  return 'buffer' in b ? { buffer: b.buffer, offset: b.offset ?? 0 } : { buffer: b, offset: 0 };
}

/**
 * Splits W into row ranges whose bindings each fit `maxBindingBytes`. A binding must start at a
 * multiple of `alignment` (256 on most adapters) while rows start anywhere, so each binding starts at
 * the aligned offset at or below its first row and the shader skips `byteBase` bytes.
 */
export function planWeightChunks(
  weight: Pick<LinearWeight, 'format' | 'rows' | 'cols'>,
  baseOffset: number,
  maxBindingBytes: number,
  alignment: number,
): WeightChunk[] {
  const rowBytes = bytesPerRow(weight.format, weight.cols);
  if (baseOffset % 4 !== 0) throw new RangeError(`weight offset ${baseOffset} is not a multiple of 4`);
  const bind = (row0: number, rows: number): WeightChunk => {
    const start = baseOffset + row0 * rowBytes;
    const bindOffset = start - (start % alignment);
    const byteBase = start - bindOffset;
    return { row0, rows, bindOffset, byteBase, bindSize: Math.ceil((byteBase + rows * rowBytes) / 4) * 4 };
  };
  const whole = bind(0, weight.rows);
  if (whole.bindSize <= maxBindingBytes) return [whole];
  // byteBase < alignment and the size is rounded up by at most 2 bytes (rows start on even bytes).
  const perChunk = Math.floor((maxBindingBytes - alignment - 2) / rowBytes);
  if (perChunk < 1) {
    throw new LimitExceededError(
      `One row of a ${weight.format} weight [${weight.rows}, ${weight.cols}]`,
      rowBytes + alignment,
      maxBindingBytes,
      'maxStorageBufferBindingSize',
    );
  }
  const chunks: WeightChunk[] = [];
  for (let row0 = 0; row0 < weight.rows; row0 += perChunk) {
    chunks.push(bind(row0, Math.min(perChunk, weight.rows - row0)));
  }
  return chunks;
}

interface WeightParams {
  M: number;
  N: number;
  K: number;
  lda: number;
  aOffset: number;
  ldc: number;
  cOffset: number;
  chunk: WeightChunk;
  alpha: number;
  beta: number;
  kernels: KernelSet;
}

function checkActivation(ctx: GpuContext, what: string, bytes: number): void {
  const limit = ctx.adapter.limits.maxStorageBufferBindingSize;
  if (bytes > limit) throw new LimitExceededError(what, bytes, limit, 'maxStorageBufferBindingSize');
}

async function weightDispatch(
  ctx: GpuContext,
  a: GPUBuffer | Binding,
  weight: LinearWeight,
  c: GPUBuffer | Binding,
  backward: boolean,
  p: WeightParams,
): Promise<Dispatch> {
  // A's rows are read as vec4 when every row starts 16-byte aligned (binding offsets are multiples of
  // minStorageBufferOffsetAlignment ≥ 32); otherwise the scalar entry point (same algorithm).
  const vec4 = p.lda % 4 === 0 && p.aOffset % 4 === 0;
  const { shader, tile } = VARIANTS[p.kernels];
  const pipeline = await ctx.pipeline(shader, {
    entryPoint: vec4 ? 'main' : 'main_scalar',
    constants: { FORMAT: FORMAT_CODE[weight.format], BACKWARD: Number(backward) },
  });
  const params = new ArrayBuffer(52);
  new Uint32Array(params, 0, 11).set([
    p.M,
    p.N,
    p.K,
    p.lda,
    p.aOffset,
    p.ldc,
    p.cOffset,
    p.chunk.rows,
    weight.cols,
    p.chunk.byteBase,
    bytesPerRow(weight.format, weight.cols),
  ]);
  new Float32Array(params, 44, 2).set([p.alpha, p.beta]);
  const uniform = ctx.uniform('matmul_weight.params', new Uint8Array(params));
  const { buffer } = split(weight.buffer);
  const wBinding: Binding = { buffer, offset: p.chunk.bindOffset, size: p.chunk.bindSize };
  const [gx, gy] = [ceilDiv(p.N, tile), ceilDiv(p.M, tile)];
  const maxGroups = ctx.adapter.limits.maxComputeWorkgroupsPerDimension;
  if (gx > maxGroups || gy > maxGroups) {
    throw new LimitExceededError(
      'A linear layer dispatch',
      Math.max(gx, gy),
      maxGroups,
      'maxComputeWorkgroupsPerDimension',
    );
  }
  return {
    label: `linear ${backward ? 'dx' : 'fwd'} ${weight.format} ${p.M}x${p.N}x${p.K} rows ${p.chunk.row0}+${p.chunk.rows}${vec4 ? '' : ' scalar'}${p.kernels === 'gpu' ? ' tiled' : ''}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [a, wBinding, c, uniform]),
    workgroups: [gx, gy, 1],
  };
}

function chunksFor(ctx: GpuContext, weight: LinearWeight, options: LinearOptions): WeightChunk[] {
  const { buffer, offset } = split(weight.buffer);
  const need = offset + weightBytes(weight.format, weight.rows, weight.cols);
  if (need > buffer.size) {
    throw new RangeError(`weight buffer ${buffer.label} holds ${buffer.size} bytes, needs ${need}`);
  }
  const limit = ctx.adapter.limits.maxStorageBufferBindingSize;
  const maxBinding = Math.min(options.maxBindingBytes ?? limit, limit);
  return planWeightChunks(weight, offset, maxBinding, ctx.device.limits.minStorageBufferOffsetAlignment);
}

/** The shared f32 matmul applies when W is f32 in one binding that starts on an allowed offset. */
function useF32Matmul(weight: LinearWeight, chunks: WeightChunk[], options: LinearOptions): boolean {
  return (
    weight.format === 'f32' && !options.forceWeightKernel && chunks.length === 1 && chunks[0].byteBase === 0
  );
}

/**
 * Prepares y[T, out] = alpha·x[T, in]·Wᵀ + beta·y for W in any format (one dispatch per binding
 * chunk of W; each writes its own output columns).
 */
export async function linearForward(
  ctx: GpuContext,
  x: GPUBuffer | Binding,
  weight: LinearWeight,
  y: GPUBuffer | Binding,
  T: number,
  options: LinearOptions = {},
): Promise<Dispatch[]> {
  const { alpha = 1, beta = 0, kernels = ctx.kernels } = options;
  const { rows: out, cols: inF } = weight;
  checkActivation(ctx, 'The input of a linear layer', T * inF * 4);
  checkActivation(ctx, 'The output of a linear layer', T * out * 4);
  const chunks = chunksFor(ctx, weight, options);
  if (useF32Matmul(weight, chunks, options)) {
    const w = split(weight.buffer);
    const wBinding = { buffer: w.buffer, offset: chunks[0].bindOffset, size: chunks[0].bindSize };
    return [await matmul(ctx, x, wBinding, y, { M: T, N: out, K: inF, transB: true, alpha, beta, kernels })];
  }
  return Promise.all(
    chunks.map((chunk) =>
      weightDispatch(ctx, x, weight, y, false, {
        M: T,
        N: chunk.rows,
        K: inF,
        lda: inF,
        aOffset: 0,
        ldc: out,
        cOffset: chunk.row0,
        chunk,
        alpha,
        beta,
        kernels,
      }),
    ),
  );
}

/**
 * Prepares dx[T, in] = alpha·dy[T, out]·W + beta·dx for W in any format (one dispatch per binding
 * chunk of W; the first applies beta, the rest accumulate). Run in order (one compute pass).
 */
export async function linearBackwardInput(
  ctx: GpuContext,
  dy: GPUBuffer | Binding,
  weight: LinearWeight,
  dx: GPUBuffer | Binding,
  T: number,
  options: LinearOptions = {},
): Promise<Dispatch[]> {
  const { alpha = 1, beta = 0, kernels = ctx.kernels } = options;
  const { rows: out, cols: inF } = weight;
  checkActivation(ctx, 'The output gradient of a linear layer', T * out * 4);
  checkActivation(ctx, 'The input gradient of a linear layer', T * inF * 4);
  const chunks = chunksFor(ctx, weight, options);
  if (useF32Matmul(weight, chunks, options)) {
    const w = split(weight.buffer);
    const wBinding = { buffer: w.buffer, offset: chunks[0].bindOffset, size: chunks[0].bindSize };
    return [
      await matmul(ctx, dy, wBinding, dx, { M: T, N: inF, K: out, transB: false, alpha, beta, kernels }),
    ];
  }
  return Promise.all(
    chunks.map((chunk, i) =>
      weightDispatch(ctx, dy, weight, dx, true, {
        M: T,
        N: inF,
        K: chunk.rows,
        lda: out,
        aOffset: chunk.row0,
        ldc: inF,
        cOffset: 0,
        chunk,
        alpha,
        beta: i === 0 ? beta : 1,
        kernels,
      }),
    ),
  );
}

/** Uploads W's bytes (from `encodeWeight` or a GGUF tensor) into a new storage buffer. */
export async function uploadWeight(
  ctx: GpuContext,
  label: string,
  format: WeightFormat,
  rows: number,
  cols: number,
  bytes: Uint8Array,
): Promise<LinearWeight> {
  const need = weightBytes(format, rows, cols);
  if (bytes.length < need)
    throw new RangeError(`${label}: ${bytes.length} bytes, ${format} [${rows}, ${cols}] needs ${need}`);
  // storageFrom rounds the buffer up to 4 bytes; writeBuffer needs a multiple of 4 too.
  let data = bytes.subarray(0, need);
  if (need % 4 !== 0) {
    const padded = new Uint8Array(Math.ceil(need / 4) * 4);
    padded.set(data);
    data = padded;
  }
  const buffer = await ctx.storageFrom(label, data);
  return { format, rows, cols, buffer };
}
