/**
 * Reuses GPU buffers between steps: buffers are bucketed by usage and a size rounded up to at most
 * 1/8 above the request, so a training loop with fixed shapes allocates once and then only recycles.
 */
import { InternalError } from '../errors.ts';
export function bucketSize(bytes: number): number {
  const minimum = 256;
  if (bytes <= minimum) return minimum;
  const power = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(minimum, power / 8);
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly owned = new Set<GPUBuffer>();
  private bytesHeld = 0;

  constructor(
    private readonly allocate: (size: number, usage: GPUBufferUsageFlags, label: string) => GPUBuffer,
  ) {}

  acquire(bytes: number, usage: GPUBufferUsageFlags, label = 'pooled'): GPUBuffer {
    const size = bucketSize(bytes);
    const reused = this.free.get(`${usage}:${size}`)?.pop();
    if (reused) return reused;
    const buffer = this.allocate(size, usage, label);
    this.owned.add(buffer);
    this.bytesHeld += size;
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    if (!this.owned.has(buffer))
      throw new InternalError(`Buffer "${buffer.label}" was not acquired from this pool`);
    const key = `${buffer.usage}:${buffer.size}`;
    const list = this.free.get(key) ?? [];
    if (list.includes(buffer)) throw new InternalError(`Buffer "${buffer.label}" released twice`);
    list.push(buffer);
    this.free.set(key, list);
  }

  /** Bytes of every buffer the pool created and has not destroyed (in use or waiting for reuse). */
  get bytes(): number {
    return this.bytesHeld;
  }

  /** Destroys the buffers waiting for reuse. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const buffer of list) {
        this.owned.delete(buffer);
        this.bytesHeld -= buffer.size;
        buffer.destroy();
      }
    }
    this.free.clear();
  }
}
