import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { AdamWHyper, adamw } from '../../src/engine/kernels/adamw.ts';
import { gradNorm } from '../../src/engine/kernels/gradnorm.ts';
import { foldWorkgroups } from '../../src/engine/kernels/layer-grid.ts';
import { adamwRef } from '../../src/engine/reference/adamw.ts';
import { gradNormRef } from '../../src/engine/reference/gradnorm.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Sum of squares of ~20k positive terms in f32 with a 16-term serial run and tree levels above:
// relative error ≲ (16 + log2(n))·2^-24 ≈ 2e-6; 1e-5 holds with margin and catches any lost chunk
// (one chunk is ≥ 5% of the total here).
const TOLERANCE = 1e-5;

async function normOf(ctx: GpuContext, arrays: Float32Array[], maxNorm: number) {
  const buffers = await Promise.all(arrays.map((a, i) => ctx.storageFrom(`g${i}`, a)));
  const gn = await gradNorm(
    ctx,
    buffers.map((buffer, i) => ({ buffer, n: arrays[i].length })),
    { maxNorm },
  );
  await ctx.run(gn.dispatches);
  const out = await ctx.readF32(gn.out);
  return { out, gn, buffers };
}

const lengths = [1, 4095, 4097, 10000, 33];

describe('gradnorm on the real adapter', () => {
  for (const maxNorm of [1, 1e4, 0]) {
    it(`norm over buffers of lengths ${lengths.join(', ')}, maxNorm=${maxNorm}`, async () => {
      const ctx = gpu();
      const rng = new Rng(42);
      const arrays = lengths.map((n, i) => randomArray(rng, n, 0.5 * (i + 1)));
      const { out, gn } = await normOf(ctx, arrays, maxNorm);
      const want = gradNormRef(arrays, maxNorm);
      expect(Math.abs(out[0] - want.sumsq) / want.sumsq).toBeLessThan(TOLERANCE);
      expect(Math.abs(out[1] - want.norm) / want.norm).toBeLessThan(TOLERANCE);
      expect(Math.abs(out[2] - want.scale)).toBeLessThan(TOLERANCE * want.scale);
      expect(out[3]).toBe(0);
      if (maxNorm === 1) expect(out[2]).toBeLessThan(0.01);
      else expect(out[2]).toBe(1);

      // max_norm changes live without rebuilding the dispatches.
      gn.setMaxNorm(want.norm / 2);
      await ctx.run(gn.dispatches);
      expect((await ctx.readF32(gn.out))[2]).toBeCloseTo(0.5, 5);
      gn.destroy();
    });
  }

  for (const bad of [NaN, Infinity, -Infinity]) {
    it(`flags a ${bad} gradient and keeps the finite sum`, async () => {
      const ctx = gpu();
      const rng = new Rng(7);
      const arrays = [randomArray(rng, 5000), randomArray(rng, 70)];
      arrays[1][69] = bad;
      const { out } = await normOf(ctx, arrays, 1);
      const want = gradNormRef(arrays, 1);
      expect(want.nonFinite).toBe(true);
      expect(out[3]).toBe(1);
      expect(out[2]).toBe(0);
      expect(Math.abs(out[0] - want.sumsq) / want.sumsq).toBeLessThan(TOLERANCE);
    });
  }

  it('flags a sum of squares that overflows f32', async () => {
    const { out } = await normOf(gpu(), [new Float32Array([1e20, 1e20, 3])], 1);
    expect(out[3]).toBe(2);
    expect(out[2]).toBe(0);
  });

  it('spare workgroups of a folded grid do not overwrite the next buffer’s partials', async () => {
    const ctx = gpu();
    const rng = new Rng(8);
    const arrays = [randomArray(rng, 3 * 4096 - 5), randomArray(rng, 4096 * 2, 10)];
    const buffers = await Promise.all(arrays.map((a, i) => ctx.storageFrom(`g${i}`, a)));
    const gn = await gradNorm(
      ctx,
      buffers.map((buffer, i) => ({ buffer, n: arrays[i].length })),
      { maxNorm: 0 },
    );
    // First buffer: 3 chunks on a 2 x 2 grid, run after the second buffer's partials: its spare 4th
    // workgroup would overwrite the second buffer's first slot with zeros.
    const [first, second, finalize] = gn.dispatches;
    await ctx.run([second, { ...first, workgroups: foldWorkgroups(3, 2) }, finalize]);
    const out = await ctx.readF32(gn.out);
    const want = gradNormRef(arrays, 0);
    expect(Math.abs(out[0] - want.sumsq) / want.sumsq).toBeLessThan(TOLERANCE);
  });

  it('drives adamw: clipped update without a CPU round trip', async () => {
    const ctx = gpu();
    const n = 5000;
    const rng = new Rng(9);
    const p0 = randomArray(rng, n);
    const g = randomArray(rng, n, 2);
    const gradBuffer = await ctx.storageFrom('g', g);
    const gn = await gradNorm(ctx, [{ buffer: gradBuffer, n }], { maxNorm: 1 });
    const buf = {
      param: await ctx.storageFrom('p', p0),
      grad: gradBuffer,
      m: await ctx.storage('m', n * 4),
      v: await ctx.storage('v', n * 4),
      clip: gn.out,
    };
    const hyper = AdamWHyper.create(ctx, { lr: 0.01 });
    await ctx.run([...gn.dispatches, await adamw(ctx, hyper, buf, n, { weightDecay: 0 })]);
    const { scale } = gradNormRef([g], 1);
    const p = Float64Array.from(p0);
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    adamwRef(p, g, m, v, { step: 1, lr: 0.01, weightDecay: 0, clipScale: scale });
    expect(compare(await ctx.readF32(buf.m), m).maxRel).toBeLessThan(TOLERANCE);
    expect(compare(await ctx.readF32(buf.param), p).maxRel).toBeLessThan(TOLERANCE);
  });
});
