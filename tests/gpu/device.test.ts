import { describe, expect, it } from 'vitest';
import {
  DeviceLostError,
  GpuValidationError,
  OutOfMemoryError,
  WebGPUUnavailableError,
} from '../../src/engine/errors.ts';
import { bucketSize, GpuContext, shaderLibraryFromRecord, timeGpu } from '../../src/engine/gpu/index.ts';
import { createNodeContext, diskShaders, nodeGpuApi } from '../../src/engine/gpu/node.ts';
import { matmul } from '../../src/engine/kernels/matmul.ts';
import { useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

describe('device layer on the real adapter', () => {
  it('negotiates the adapter maxima and enables the optional features it has', async () => {
    const ctx = gpu();
    const adapter = await (await nodeGpuApi()).requestAdapter();
    expect(ctx.device.limits.maxStorageBufferBindingSize).toBe(adapter!.limits.maxStorageBufferBindingSize);
    expect(ctx.device.limits.maxBufferSize).toBe(adapter!.limits.maxBufferSize);
    expect(ctx.adapter.features.shaderF16).toBe(adapter!.features.has('shader-f16'));
    expect(ctx.device.features.has('shader-f16')).toBe(adapter!.features.has('shader-f16'));
  });

  it('reads back what it wrote', async () => {
    const ctx = gpu();
    const data = Float32Array.from({ length: 37 }, (_, i) => i * 0.5 - 3);
    const buffer = await ctx.storageFrom('roundtrip', data);
    expect(Array.from(await ctx.readF32(buffer, 37))).toEqual(Array.from(data));
    expect(Array.from(await ctx.readF32(buffer, 5, 10))).toEqual(Array.from(data.subarray(10, 15)));
    buffer.destroy();
  });

  it('turns an impossible allocation into a typed out-of-memory error', async () => {
    const ctx = gpu();
    const tooBig = ctx.adapter.limits.maxBufferSize + 1024 * 1024;
    const error = await ctx.createBuffer('too big', tooBig, GPUBufferUsage.STORAGE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutOfMemoryError);
    expect((error as OutOfMemoryError).hint).toMatch(/pack length|q4_0/);
    // The device survives: a normal allocation still works.
    (await ctx.storage('after oom', 64)).destroy();
  });

  it('reports WGSL compile errors with file and line', async () => {
    const shaders = shaderLibraryFromRecord({
      broken: '@compute @workgroup_size(1) fn main() {\n  let x: u32 = undefined_thing;\n}\n',
    });
    const ctx = await GpuContext.create(await nodeGpuApi(), shaders, 'node');
    try {
      const error = await ctx.pipeline('broken').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GpuValidationError);
      expect((error as Error).message).toMatch(/broken\.wgsl:2:/);
    } finally {
      ctx.destroy();
    }
  });

  it('reports device loss as a typed error and refuses further work', async () => {
    const ctx = await createNodeContext(diskShaders());
    ctx.destroy();
    const lost = await ctx.lost;
    expect(lost).toBeInstanceOf(DeviceLostError);
    expect(lost.reason).toBe('destroyed');
    expect(ctx.isLost).toBe(true);
    await expect(ctx.storage('after loss', 16)).rejects.toBeInstanceOf(DeviceLostError);
  });

  it('explains a missing WebGPU with what to do', async () => {
    const browser = GpuContext.create(undefined, diskShaders(), 'browser');
    await expect(browser).rejects.toBeInstanceOf(WebGPUUnavailableError);
    await expect(browser).rejects.toMatchObject({ hint: /Chrome or Edge/ });
    await expect(GpuContext.create(undefined, diskShaders(), 'node')).rejects.toMatchObject({
      hint: /Vulkan/,
    });
  });

  it('times GPU work with timestamps when the adapter has them', async () => {
    const ctx = gpu();
    const [M, N, K] = [64, 64, 64];
    const a = await ctx.storage('A', M * K * 4);
    const b = await ctx.storage('B', N * K * 4);
    const c = await ctx.storage('C', M * N * 4);
    const dispatch = await matmul(ctx, a, b, c, { M, N, K });
    const timing = await timeGpu(ctx, (encoder) => ctx.encode(encoder, [dispatch]));
    expect(timing.source).toBe(ctx.adapter.features.timestampQuery ? 'timestamp' : 'wall');
    expect(timing.ms).toBeGreaterThan(0);
    expect(timing.ms).toBeLessThan(60_000);
  });

  it('pools buffers by usage and bucketed size', async () => {
    const ctx = gpu();
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
    const first = ctx.pool.acquire(1000, usage, 'a');
    ctx.pool.release(first);
    const second = ctx.pool.acquire(1010, usage, 'b');
    expect(second).toBe(first);
    const other = ctx.pool.acquire(1000, GPUBufferUsage.STORAGE, 'c');
    expect(other).not.toBe(first);
    expect(() => ctx.pool.release(ctx.device.createBuffer({ size: 16, usage }))).toThrow(/not acquired/);
    ctx.pool.release(second);
    expect(() => ctx.pool.release(second)).toThrow(/twice/);
    ctx.pool.release(other);
    ctx.pool.trim();
    expect(ctx.pool.bytes).toBe(0);
  });
});

describe('bucketSize', () => {
  it('rounds up by at most an eighth and never below the request', () => {
    for (const bytes of [1, 255, 256, 257, 1000, 4097, 123_457, 10_000_000, 2 ** 30 + 1]) {
      const size = bucketSize(bytes);
      expect(size).toBeGreaterThanOrEqual(bytes);
      expect(size % 4).toBe(0);
      if (bytes > 256) expect(size).toBeLessThanOrEqual(bytes * 1.125 + 256);
    }
  });
});
