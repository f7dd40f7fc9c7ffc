import type { GpuContext } from './context.ts';

export interface GpuTiming {
  ms: number;
  /** "timestamp": GPU timestamps around the work; "wall": wall clock from submit to completion. */
  source: 'timestamp' | 'wall';
}

/**
 * Times the GPU work that `encode` records. With timestamp-query, an empty compute pass before and
 * after the work writes the two timestamps, so kernels need not know they are being timed.
 */
export async function timeGpu(
  ctx: GpuContext,
  encode: (encoder: GPUCommandEncoder) => void,
): Promise<GpuTiming> {
  ctx.assertAlive();
  const device = ctx.device;
  const encoder = device.createCommandEncoder({ label: 'timed' });
  if (!ctx.adapter.features.timestampQuery) {
    const start = performance.now();
    encode(encoder);
    device.queue.submit([encoder.finish()]);
    await ctx.guard(device.queue.onSubmittedWorkDone());
    return { ms: performance.now() - start, source: 'wall' };
  }
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
  const resolved = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  try {
    encoder.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 0 } }).end();
    encode(encoder);
    encoder.beginComputePass({ timestampWrites: { querySet, endOfPassWriteIndex: 1 } }).end();
    encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
    device.queue.submit([encoder.finish()]);
    const [begin, end] = new BigUint64Array(await ctx.readback(resolved, 16));
    return { ms: Number(end - begin) / 1e6, source: 'timestamp' };
  } finally {
    querySet.destroy();
    resolved.destroy();
  }
}
