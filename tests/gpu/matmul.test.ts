import { describe, expect, it } from 'vitest';
import { matmul } from '../../src/engine/kernels/matmul.ts';
import { matmulRef } from '../../src/engine/reference/matmul.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// f32 accumulation over K terms of size ~1: relative error grows like sqrt(K)·2^-24; 1e-5 of the
// output scale leaves room for K up to a few thousand while catching any indexing mistake.
const TOLERANCE = 1e-5;

const shapes: [number, number, number][] = [
  [1, 1, 1],
  [17, 33, 65],
  [64, 64, 64],
  [65, 63, 17],
  [3, 130, 7],
  [129, 5, 200],
];

describe('matmul (f32, tiled) on the real adapter', () => {
  it('reports a real adapter', () => {
    const ctx = gpu();
    expect(ctx.adapter.vendor.length + ctx.adapter.architecture.length).toBeGreaterThan(0);
    expect(ctx.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
  });

  for (const [M, N, K] of shapes) {
    for (const [transA, transB] of [
      [false, true],
      [false, false],
      [true, false],
      [true, true],
    ]) {
      it(`${M}x${N}x${K} transA=${transA} transB=${transB}`, async () => {
        const ctx = gpu();
        const rng = new Rng(M * 1000 + N * 10 + K);
        const a = randomArray(rng, M * K);
        const b = randomArray(rng, K * N);
        const c0 = randomArray(rng, M * N);
        const [bufA, bufB, bufC] = await Promise.all([
          ctx.storageFrom('A', a),
          ctx.storageFrom('B', b),
          ctx.storageFrom('C', c0),
        ]);
        const opts = { transA, transB, alpha: 0.5, beta: 1 };
        await ctx.run([await matmul(ctx, bufA, bufB, bufC, { M, N, K, ...opts })]);
        const got = await ctx.readF32(bufC);
        const { maxRel } = compare(got, matmulRef(a, b, c0, M, N, K, opts));
        expect(maxRel).toBeLessThan(TOLERANCE);
        for (const buffer of [bufA, bufB, bufC]) buffer.destroy();
      });
    }
  }

  it('beta = 0 ignores NaN already in C', async () => {
    const ctx = gpu();
    const [M, N, K] = [5, 6, 7];
    const rng = new Rng(7);
    const a = randomArray(rng, M * K);
    const b = randomArray(rng, N * K);
    const c = await ctx.storageFrom('C', new Float32Array(M * N).fill(NaN));
    await ctx.run([
      await matmul(ctx, await ctx.storageFrom('A', a), await ctx.storageFrom('B', b), c, { M, N, K }),
    ]);
    const got = await ctx.readF32(c);
    expect(compare(got, matmulRef(a, b, undefined, M, N, K)).maxRel).toBeLessThan(TOLERANCE);
  });
});
