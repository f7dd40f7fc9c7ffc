import { afterAll, beforeAll } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { createNodeContext } from '../../src/engine/gpu/node.ts';

/** One real WebGPU device (Dawn) per test file; kernel tests never mock the GPU. */
export function useGpu(): () => GpuContext {
  let ctx: GpuContext | undefined;
  beforeAll(async () => {
    ctx = await createNodeContext();
  });
  afterAll(() => ctx?.destroy());
  return () => {
    if (!ctx) throw new Error('GPU context not ready');
    return ctx;
  };
}

export interface Closeness {
  maxAbs: number;
  maxRel: number;
  worstIndex: number;
}

/** Largest error of `actual` against a float64 reference, relative to the reference's scale. */
export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>): Closeness {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let maxAbs = 0;
  let worstIndex = -1;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    // A NaN anywhere fails the comparison outright (a later finite diff must not hide it).
    if (Number.isNaN(diff)) return { maxAbs: NaN, maxRel: NaN, worstIndex: i };
    if (diff > maxAbs) {
      maxAbs = diff;
      worstIndex = i;
    }
  }
  return { maxAbs, maxRel: maxAbs / Math.max(scale, 1e-30), worstIndex };
}
