import { describe, expect, it } from 'vitest';
import { biasBackward, biasForward } from '../../src/engine/kernels/bias.ts';
import { biasBackwardRef, biasForwardRef } from '../../src/engine/reference/bias.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Forward is one f32 add per element (within 1 ulp). Backward sums T terms of size ~1 in f32:
// error ~ sqrt(T)·2^-24 of the sum's scale; 1e-5 covers T in the thousands and catches any
// missing or doubled row.
const FORWARD_TOLERANCE = 1e-6;
const BACKWARD_TOLERANCE = 1e-5;

const shapes: [number, number][] = [
  [1, 1],
  [1, 33],
  [5, 1],
  [7, 33],
  [9, 257],
  [300, 65],
];

describe('bias on the real adapter', () => {
  for (const [T, C] of shapes) {
    it(`forward ${T}x${C}`, async () => {
      const ctx = gpu();
      const rng = new Rng(T * 100 + C);
      const y = randomArray(rng, T * C);
      const b = randomArray(rng, C);
      const bufY = await ctx.storageFrom('Y', y);
      await ctx.run([await biasForward(ctx, bufY, await ctx.storageFrom('b', b), { T, C })]);
      expect(compare(await ctx.readF32(bufY), biasForwardRef(y, b, T, C)).maxRel).toBeLessThan(
        FORWARD_TOLERANCE,
      );
    });

    it(`backward ${T}x${C}, overwrite then accumulate`, async () => {
      const ctx = gpu();
      const rng = new Rng(T * 100 + C + 1);
      const dy1 = randomArray(rng, T * C);
      const dy2 = randomArray(rng, T * C);
      const [b1, b2, db] = await Promise.all([
        ctx.storageFrom('dY1', dy1),
        ctx.storageFrom('dY2', dy2),
        ctx.storageFrom('db', new Float32Array(C).fill(NaN)),
      ]);
      await ctx.run([await biasBackward(ctx, b1, db, { T, C })]);
      const first = await ctx.readF32(db);
      const want1 = biasBackwardRef(dy1, T, C);
      expect(compare(first, want1).maxRel).toBeLessThan(BACKWARD_TOLERANCE);
      await ctx.run([await biasBackward(ctx, b2, db, { T, C }, { accumulate: true })]);
      expect(compare(await ctx.readF32(db), biasBackwardRef(dy2, T, C, first)).maxRel).toBeLessThan(
        BACKWARD_TOLERANCE,
      );
    });
  }

  it('backward is bitwise deterministic', async () => {
    const ctx = gpu();
    const [T, C] = [513, 70];
    const dy = await ctx.storageFrom('dY', randomArray(new Rng(9), T * C, 100));
    const db = await ctx.storage('db', C * 4);
    const dispatch = await biasBackward(ctx, dy, db, { T, C });
    await ctx.run([dispatch]);
    const first = await ctx.readF32(db);
    await ctx.run([dispatch]);
    expect(Array.from(await ctx.readF32(db))).toEqual(Array.from(first));
  });
});
