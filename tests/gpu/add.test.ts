import { describe, expect, it } from 'vitest';
import { add, addInto, fill } from '../../src/engine/kernels/add.ts';
import { foldWorkgroups } from '../../src/engine/kernels/layer-grid.ts';
import { addRef } from '../../src/engine/reference/add.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// One f32 multiply-add per element: the result is within 2 ulp of the float64 value.
const TOLERANCE = 1e-6;

describe('add / addInto / fill on the real adapter', () => {
  for (const n of [1, 255, 257, 1000]) {
    it(`in place a = 0.5·a + 2·b, n=${n}`, async () => {
      const ctx = gpu();
      const rng = new Rng(n);
      const a = randomArray(rng, n);
      const b = randomArray(rng, n);
      const [bufA, bufB] = await Promise.all([ctx.storageFrom('A', a), ctx.storageFrom('B', b)]);
      await ctx.run([await add(ctx, bufA, bufB, n, { scaleA: 0.5, scaleB: 2 })]);
      expect(compare(await ctx.readF32(bufA), addRef(a, b, { scaleA: 0.5, scaleB: 2 })).maxRel).toBeLessThan(
        TOLERANCE,
      );
      bufA.destroy();
      bufB.destroy();
    });
  }

  it('residual a += b leaves elements past n untouched', async () => {
    const ctx = gpu();
    const rng = new Rng(3);
    const a = randomArray(rng, 40);
    const b = randomArray(rng, 40);
    const bufA = await ctx.storageFrom('A', a);
    await ctx.run([await add(ctx, bufA, await ctx.storageFrom('B', b), 33)]);
    const got = await ctx.readF32(bufA);
    const want = addRef(a, b);
    expect(compare(got.subarray(0, 33), want.subarray(0, 33)).maxRel).toBeLessThan(TOLERANCE);
    expect(Array.from(got.subarray(33))).toEqual(Array.from(a.subarray(33)));
  });

  it('out of place c = a - b, and scaleA = 0 ignores NaN in A', async () => {
    const ctx = gpu();
    const n = 300;
    const rng = new Rng(4);
    const a = randomArray(rng, n);
    const b = randomArray(rng, n);
    const [bufA, bufB, bufC] = await Promise.all([
      ctx.storageFrom('A', a),
      ctx.storageFrom('B', b),
      ctx.storageFrom('C', new Float32Array(n).fill(NaN)),
    ]);
    await ctx.run([await addInto(ctx, bufA, bufB, bufC, n, { scaleB: -1 })]);
    expect(compare(await ctx.readF32(bufC), addRef(a, b, { scaleB: -1 })).maxRel).toBeLessThan(TOLERANCE);
    expect(Array.from(await ctx.readF32(bufA))).toEqual(Array.from(a));

    const nanA = await ctx.storageFrom('NaN', new Float32Array(n).fill(NaN));
    await ctx.run([await add(ctx, nanA, bufB, n, { scaleA: 0, scaleB: 3 })]);
    expect(compare(await ctx.readF32(nanA), addRef(a, b, { scaleA: 0, scaleB: 3 })).maxRel).toBeLessThan(
      TOLERANCE,
    );
  });

  it('fill writes exactly n elements', async () => {
    const ctx = gpu();
    const buf = await ctx.storageFrom('A', new Float32Array(600).fill(7));
    await ctx.run([await fill(ctx, buf, 513, -1.5)]);
    const got = await ctx.readF32(buf);
    expect(got.subarray(0, 513).every((v) => v === -1.5)).toBe(true);
    expect(got.subarray(513).every((v) => v === 7)).toBe(true);
  });

  it('a grid folded into y and z covers every element exactly once', async () => {
    const ctx = gpu();
    const n = 256 * 10 + 3; // 11 workgroups folded as 3 x 2 x 2 (one spare)
    const rng = new Rng(5);
    const a = randomArray(rng, n);
    const b = randomArray(rng, n);
    const bufA = await ctx.storageFrom('A', a);
    const dispatch = await add(ctx, bufA, await ctx.storageFrom('B', b), n);
    const workgroups = foldWorkgroups(11, 3);
    expect(workgroups[2]).toBeGreaterThan(1);
    await ctx.run([{ ...dispatch, workgroups }]);
    expect(compare(await ctx.readF32(bufA), addRef(a, b)).maxRel).toBeLessThan(TOLERANCE);
  });

  it('foldWorkgroups stays within the limit and covers the count', () => {
    for (const count of [0, 1, 65535, 65536, 65535 * 3 + 1, 10_000_000]) {
      const [x, y, z] = foldWorkgroups(count);
      expect(Math.max(x, y, z)).toBeLessThanOrEqual(65535);
      expect(x * y * z).toBeGreaterThanOrEqual(count);
    }
  });
});
